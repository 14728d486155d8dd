"""Rate-distortion benchmark on a folder of images, with real file bytes.

For every image: rdcodec over an alpha grid (encode -> bytes -> decode, beta = 0 and 1),
and JPEG (libjpeg through Pillow, 4:2:0, the default a user gets) over a quality sweep.
Writes CompressAI-style JSON per codec plus a summary with JPEG's PSNR at matched bpp
(per image, interpolated in bpp on the image's own JPEG curve).

    python benchmarks/rd.py ../shared/data/kodak --out benchmarks/results/kodak
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rdcodec  # noqa: E402
from rdcodec.api import get_codec  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    import torch
    from pytorch_msssim import ms_ssim as _ms

    ta = torch.from_numpy(a).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].double()
    return float(_ms(ta, tb, data_range=255.0))


def jpeg_curve(img: np.ndarray, qualities) -> list[dict]:
    rows = []
    for q in qualities:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(q))
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        rows.append({"q": int(q), "bpp": 8 * buf.tell() / (img.shape[0] * img.shape[1]),
                     "psnr": psnr(dec, img), "ms_ssim": ms_ssim(dec, img)})
    return rows


def interp_at(bpp: float, curve: list[dict], key: str) -> float | None:
    xs = np.array([r["bpp"] for r in curve])
    ys = np.array([r[key] for r in curve])
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    if bpp < xs[0] or bpp > xs[-1]:
        return None
    return float(np.interp(np.log(bpp), np.log(xs), ys))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--out", default="benchmarks/results/kodak")
    ap.add_argument("--alphas", type=int, default=11, help="points on the alpha grid [0, 1]")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    args = ap.parse_args(argv)
    files = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if args.limit:
        files = files[: args.limit]
    alphas = np.linspace(0, 1, args.alphas)
    codec = get_codec(args.weights)
    qualities = list(range(2, 20, 2)) + list(range(20, 96, 5))
    per_image = []
    t0 = time.time()
    for i, f in enumerate(files):
        img = np.asarray(Image.open(f).convert("RGB"))
        px = img.shape[0] * img.shape[1]
        jc = jpeg_curve(img, qualities)
        rows = []
        for a in alphas:
            t = time.time()
            data = rdcodec.encode(img, alpha=float(a), weights=args.weights)
            te = time.time() - t
            t = time.time()
            recon, _ = codec.decompress(data)
            td = time.time() - t
            sizes = rdcodec.info(data)["layers"]
            row = {"alpha": float(a), "bytes": len(data), "bpp": 8 * len(data) / px,
                   "bpp_base": 8 * (sizes["header"] + sizes["base"]) / px,
                   "encode_s": te, "decode_s": td}
            for beta in (0.0, 1.0):
                out = recon.render(beta)
                bpp = row["bpp"] if beta == 0.0 else row["bpp_base"]
                row[f"beta{beta:g}"] = {"psnr": psnr(out, img), "ms_ssim": ms_ssim(out, img),
                                       "jpeg_psnr_at_bpp": interp_at(bpp, jc, "psnr")}
            rows.append(row)
        per_image.append({"file": f.name, "rdcodec": rows, "jpeg": jc})
        print(f"[{i + 1}/{len(files)}] {f.name} {time.time() - t0:.0f}s "
              f"a=0: {rows[0]['bpp']:.3f} bpp {rows[0]['beta0']['psnr']:.2f} dB | "
              f"a=1: {rows[-1]['bpp']:.3f} bpp {rows[-1]['beta0']['psnr']:.2f} dB", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "per_image.json").write_text(json.dumps(per_image, indent=1))
    summarize(per_image, alphas, out, args.weights)


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def summarize(per_image, alphas, out: Path, weights) -> None:
    from rdcodec.weights import resolve

    name = resolve(weights).name
    summary = {"weights": name, "images": len(per_image), "alpha": [], "beta0": {}, "beta1": {}}
    for beta, key, bkey in ((0.0, "beta0", "bpp"), (1.0, "beta1", "bpp_base")):
        res = {"bpp": [], "psnr-rgb": [], "ms-ssim-rgb": [], "encoding_time": [], "decoding_time": []}
        matched, wins = [], []
        for j in range(len(alphas)):
            rows = [im["rdcodec"][j] for im in per_image]
            res["bpp"].append(_mean(r[bkey] for r in rows))
            res["psnr-rgb"].append(_mean(r[key]["psnr"] for r in rows))
            res["ms-ssim-rgb"].append(_mean(r[key]["ms_ssim"] for r in rows))
            res["encoding_time"].append(_mean(r["encode_s"] for r in rows))
            res["decoding_time"].append(_mean(r["decode_s"] for r in rows))
            jm = [r[key]["jpeg_psnr_at_bpp"] for r in rows]
            matched.append(_mean(jm))
            wins.append(sum(1 for r, m in zip(rows, jm) if m is not None and r[key]["psnr"] > m))
        (out / f"rdcodec-beta{beta:g}.json").write_text(json.dumps({
            "name": f"rdcodec (beta={beta:g})",
            "description": f"rdcodec weights {name}, alpha grid {list(map(float, alphas))}, real file bytes"
                           + ("" if beta == 0 else "; bpp counts header + base layer only"),
            "results": res}, indent=1))
        summary[key] = {"bpp": res["bpp"], "psnr": res["psnr-rgb"], "jpeg_psnr_at_matched_bpp": matched,
                        "images_beating_jpeg": wins}
    summary["alpha"] = [float(a) for a in alphas]
    summary["beta0_beats_beta1_every_image"] = all(
        r["beta0"]["psnr"] > r["beta1"]["psnr"] for im in per_image for r in im["rdcodec"])
    summary["bpp_strictly_increasing_every_image"] = all(
        all(b["bpp"] > a["bpp"] for a, b in zip(im["rdcodec"], im["rdcodec"][1:])) for im in per_image)
    jres = {"bpp": [], "psnr-rgb": [], "ms-ssim-rgb": []}
    for k in range(len(per_image[0]["jpeg"])):
        jres["bpp"].append(_mean(im["jpeg"][k]["bpp"] for im in per_image))
        jres["psnr-rgb"].append(_mean(im["jpeg"][k]["psnr"] for im in per_image))
        jres["ms-ssim-rgb"].append(_mean(im["jpeg"][k]["ms_ssim"] for im in per_image))
    (out / "jpeg.json").write_text(json.dumps({
        "name": "JPEG (libjpeg via Pillow, 4:2:0)", "description": "quality sweep "
        + str([r["q"] for r in per_image[0]["jpeg"]]), "results": jres}, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

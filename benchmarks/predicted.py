"""Base-only files decoded with the predicted residual, against the same files at beta = 1.

A file without its residual layer (``--no-residual``, ``rdcodec strip``) decodes to ``x_hat_1``
at every beta; ``decode --predict-residual`` adds the residual the decoder predicts from the
base layer alone (the residual latent at its conditional mean, no bits;
``Codec.decompress(predict_residual=True)``). This measures what that prediction is worth, with
real bytes, over an alpha grid:

* ``rdcodec base beta=1``: the base-only file, ``x_hat_1`` (rate = the whole base-only file);
* ``rdcodec base predicted beta=0``: the same file, ``x_hat_1 + r_0``;
* ``rdcodec base predicted beta=0.5``: ``x_hat_1 + 0.5 r_0``;

and a Bjontegaard table of the predicted curves against the base image and against the curves
of an earlier ``rd.py`` run in ``--anchors`` (the full files at beta = 0, HEVC-intra, ...).

    python benchmarks/predicted.py ../shared/data/kodak --out benchmarks/results/kodak-predicted
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import classical  # noqa: E402
import report  # noqa: E402
from rd import prepare  # noqa: E402

from rdcodec.eval.bjontegaard import bd_table  # noqa: E402

RENDERS = {"rdcodec base beta=1": (False, 1.0), "rdcodec base predicted beta=0": (True, 0.0),
           "rdcodec base predicted beta=0.5": (True, 0.5)}


def measure(codec, img: np.ndarray, alphas) -> list[dict]:
    """Per alpha: the base-only file's bpp, decode times and PSNR / MS-SSIM of each render."""
    px = img.shape[0] * img.shape[1]
    rows = []
    for a in alphas:
        data = codec.compress(img, float(a), residual=False, reconstruct=False).data
        row = {"alpha": float(a), "bpp": 8 * len(data) / px}
        for predict in (False, True):
            t = time.perf_counter()
            recon, notes = codec.decompress(data, predict_residual=predict)
            row[f"decode_s_{'predicted' if predict else 'plain'}"] = time.perf_counter() - t
            assert notes.get("residual_predicted", False) == predict
            for name, (p, beta) in RENDERS.items():
                if p == predict:
                    out = recon.render(beta)
                    row[name] = {"psnr": classical.psnr(out, img), "ms_ssim": classical.ms_ssim(out, img)}
        rows.append(row)
    return rows


def curves(per_image: list[list[dict]]) -> dict[str, dict]:
    """CompressAI-style ``results`` of each render, means over images per alpha."""
    n = len(per_image[0])
    col = lambda f: [float(np.mean([f(rows[j]) for rows in per_image])) for j in range(n)]  # noqa: E731
    out = {}
    for name, (predict, _) in RENDERS.items():
        t = "decode_s_predicted" if predict else "decode_s_plain"
        out[name] = {"bpp": col(lambda r: r["bpp"]), "psnr-rgb": col(lambda r: r[name]["psnr"]),  # noqa: B023
                     "ms-ssim-rgb": col(lambda r: r[name]["ms_ssim"]),  # noqa: B023
                     "decoding_time": col(lambda r: r[t])}  # noqa: B023
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--out", default="benchmarks/results/kodak-predicted")
    ap.add_argument("--anchors", default="benchmarks/results/kodak",
                    help="folder of an rd.py run whose curves are the anchors (its rdcodec-beta0.json, hevc.json, ...)")
    ap.add_argument("--alphas", type=int, default=11, help="points on the alpha grid [0, 1]")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    args = ap.parse_args(argv)
    images, out, alphas, codec = prepare(args)
    per_image, t0 = [], time.time()
    for i, img in enumerate(images):
        per_image.append(measure(codec, img, alphas))
        r = per_image[-1][-1]
        print(f"[{i + 1}/{len(images)}] {time.time() - t0:.0f}s  alpha 1: {r['bpp']:.3f} bpp, "
              f"{r['rdcodec base beta=1']['psnr']:.2f} -> {r['rdcodec base predicted beta=0']['psnr']:.2f} dB",
              flush=True)
    ours = curves(per_image)
    for name, res in ours.items():
        doc = {"name": name, "description": f"weights {codec.weights_name}, base-only files (real bytes), alpha grid "
               f"{[round(float(a), 3) for a in alphas]}", "results": res}
        (out / f"{name.replace(' ', '-').replace('=', '')}.json").write_text(json.dumps(doc, indent=1))
    anchors = {"rdcodec base beta=1": ours["rdcodec base beta=1"]}
    for p in sorted(Path(args.anchors).glob("*.json")):  # every curve there, the run's own included
        if (curve := report.read_curve(p)) is not None:
            anchors[p.stem] = curve
    tests = {k: v for k, v in ours.items() if k != "rdcodec base beta=1"}
    summary = {"weights": codec.weights_name, "images": len(images), "alpha": [float(a) for a in alphas],
               "anchors_from": args.anchors, "curves": ours, "bd": bd_table(tests, anchors)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "rdcodec_per_image.json").write_text(json.dumps(per_image, indent=1))
    keep = ("rdcodec base beta=1", "rdcodec-beta0", "rdcodec-beta1", "hevc", "webp", "jpeg", "jpeg2000", "avif")
    print(json.dumps({k: v for k, v in summary["bd"].items() if k.split(" vs ")[1] in keep}, indent=1))


if __name__ == "__main__":
    main()

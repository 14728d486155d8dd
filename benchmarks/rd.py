"""Rate-distortion benchmark on a folder of images, with real file bytes.

In one run:

* rdcodec over an alpha grid (encode -> bytes -> decode), rendered at beta = 0 (fidelity,
  rate = the whole file) and beta = 1 (base layer; rate = header + base layer, what a
  stripped file costs);
* the classical codecs of ``classical.py`` over their quality sweeps;
* per image, JPEG's PSNR at rdcodec's bpp, interpolated on that image's own JPEG curve;
* a Bjontegaard table (PCHIP; ``rdcodec.eval.bjontegaard``) of rdcodec against every codec,
  the smoothness of the alpha interpolation, CompressAI-style JSON per codec, and a plot.

    python benchmarks/rd.py ../shared/data/kodak --out benchmarks/results/kodak

A new default's run over the previous one's, keeping every earlier curve as an anchor:

    python benchmarks/rd.py ../shared/data/kodak --weights rdc-v14 --codecs none \
        --archive-previous --previous all

``--archive-previous`` moves the run now in ``--out`` (made with other weights) to
``--out/<its weights>/`` and keeps its two curves as ``<its weights>-beta{0,1}.json``;
``--previous all`` reads every curve JSON in ``--out`` that is not run now.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import classical  # noqa: E402
import report  # noqa: E402

import rdcodec  # noqa: E402
from rdcodec.api import get_codec, load_backbone, refinement_steps  # noqa: E402
from rdcodec.errors import RdcError  # noqa: E402
from rdcodec.eval.bjontegaard import bd_table  # noqa: E402

TRAINED_LEVELS = 6


def rdcodec_rows(codec, img: np.ndarray, alphas, jpeg_curve: list[dict], refine: int = 0,
                 output_filter: bool = False, machines=None) -> list[dict]:
    px = img.shape[0] * img.shape[1]
    rows = []
    for a in alphas:
        t = time.perf_counter()
        data = codec.compress(img, float(a), reconstruct=False, refine=refine, output_filter=output_filter,
                              machines=machines).data
        te = time.perf_counter() - t
        t = time.perf_counter()
        recon, _ = codec.decompress(data)
        td = time.perf_counter() - t
        layers = rdcodec.info(data)["layers"]
        row = {"alpha": float(a), "bytes": len(data), "encode_s": te, "decode_s": td,
               "bpp_beta0": 8 * len(data) / px, "bpp_beta1": 8 * (layers["header"] + layers["base"]) / px}
        for beta in (0, 1):
            out = recon.render(float(beta))
            bpp = row[f"bpp_beta{beta}"]
            row[f"beta{beta}"] = {"psnr": classical.psnr(out, img), "ms_ssim": classical.ms_ssim(out, img),
                                  "jpeg_psnr_at_bpp": interp_log(bpp, jpeg_curve)}
        rows.append(row)
    return rows


def interp_log(bpp: float, curve: list[dict]) -> float | None:
    """PSNR of ``curve`` (rows with bpp, psnr-rgb) at ``bpp``, linear in log-rate; None outside it."""
    xs = np.array([r["bpp"] for r in curve])
    ys = np.array([r["psnr-rgb"] for r in curve])
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    if not xs[0] <= bpp <= xs[-1]:
        return None
    return float(np.interp(np.log(bpp), np.log(xs), ys))


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def rdcodec_results(per_image: list[list[dict]], beta: int) -> dict:
    n = len(per_image[0])
    col = lambda f: [mean(f(rows[j]) for rows in per_image) for j in range(n)]  # noqa: E731
    return {"bpp": col(lambda r: r[f"bpp_beta{beta}"]), "psnr-rgb": col(lambda r: r[f"beta{beta}"]["psnr"]),
            "ms-ssim-rgb": col(lambda r: r[f"beta{beta}"]["ms_ssim"]),
            "encoding_time": col(lambda r: r["encode_s"]), "decoding_time": col(lambda r: r["decode_s"])}


def smoothness(alphas, res: dict) -> list[dict]:
    """Interpolated alpha points against the line joining their trained neighbours (log-rate, PSNR)."""
    out = []
    t = np.asarray(alphas) * (TRAINED_LEVELS - 1)
    trained = [j for j in range(len(t)) if abs(t[j] - round(t[j])) < 1e-9]
    for j, a in enumerate(alphas):
        if j in trained:
            continue
        lo = max(t for t in trained if t < j)
        hi = min(t for t in trained if t > j)
        x = np.log([res["bpp"][lo], res["bpp"][j], res["bpp"][hi]])
        y = [res["psnr-rgb"][lo], res["psnr-rgb"][j], res["psnr-rgb"][hi]]
        line = y[0] + (y[2] - y[0]) * (x[1] - x[0]) / (x[2] - x[0])
        out.append({"alpha": float(a), "psnr": y[1], "line": float(line), "below_line_db": float(line - y[1])})
    return out


#: What a run writes at the top of ``--out`` and :func:`archive_previous` moves to ``<weights>/``.
RUN_FILES = ("summary.json", "rdcodec_per_image.json", "README.md", "rd.png")


def archive_previous(out: Path, weights: str) -> str | None:
    """Move the run in ``out`` to ``out/<its weights>/`` unless it was made with ``weights``.

    Its curves stay as anchors: ``rdcodec-beta{b}.json`` is copied to ``<its weights>-beta{b}.json``
    with that name inside. Returns the archived weights' name, or None when there was nothing to
    archive (no run in ``out``, or one of ``weights`` itself, which the new run replaces).
    Refuses (ValueError) to overwrite an archive that is already there.
    """
    summary = out / "summary.json"
    if not summary.exists():
        return None
    name = json.loads(summary.read_text())["weights"]
    if name == weights:
        return None
    dest = out / name
    curves = [out / f"{name}-beta{b}.json" for b in (0, 1)]
    clash = [p for p in [dest / "summary.json", *curves] if p.exists()]
    if clash:
        raise ValueError(f"--archive-previous: {clash[0]} exists already; move it away first")
    for b, path in zip((0, 1), curves):
        curve = json.loads((out / f"rdcodec-beta{b}.json").read_text())
        curve["name"] = path.stem
        path.write_text(json.dumps(curve, indent=1))
    dest.mkdir(exist_ok=True)
    for f in RUN_FILES:
        if (out / f).exists():
            shutil.move(str(out / f), str(dest / f))
    return name


def previous_curves(out: Path, spec: str, run_now: list[str]) -> list[str]:
    """The ``--previous`` names: a comma list, or ``all`` for every curve JSON in ``out`` not run now."""
    if spec != "all":
        return [c for c in spec.split(",") if c and c not in run_now]
    return [name for name in report.anchor_curves(out) if name not in run_now]


def prepare(args) -> tuple[list[np.ndarray], Path, np.ndarray, object]:
    """(images, output folder, alpha grid, codec) from the common options folder, limit, out, alphas, weights."""
    images = classical.load_images(Path(args.folder), args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return images, out, np.linspace(0, 1, args.alphas), get_codec(args.weights)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--out", default="benchmarks/results/kodak")
    ap.add_argument("--alphas", type=int, default=11, help="points on the alpha grid [0, 1]")
    ap.add_argument("--codecs", default="all", help="classical codecs to run ('all', 'none' or a comma list)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--refine", type=int, default=0, metavar="STEPS",
                    help="encode with latent refinement of STEPS gradient steps (rdcodec.refine)")
    ap.add_argument("--machines", default=None, metavar="NETWORK",
                    help="refine the latent for this vision network instead, a shipped one by name "
                         "(mobilenet-v1-embedding) or a TFLite file (rdcodec encode --machines; "
                         "--refine steps, by default rdcodec's: 20 at alpha 0, 10 from 0.2 on)")
    ap.add_argument("--filter", action="store_true",
                    help="encode with the Wiener output filter (rdcodec.wiener; rdcodec encode --filter)")
    ap.add_argument("--previous", default="", help="comma list of codecs not run now but read from "
                    "their JSON in --out (an earlier run, same images and settings), or 'all' for every one "
                    "there; marked in summary.json")
    ap.add_argument("--archive-previous", action="store_true", help="first move the run in --out, if it was "
                    "made with other weights, to --out/<its weights>/, keeping its curves as anchors")
    args = ap.parse_args(argv)
    images, out, alphas, codec = prepare(args)
    machines = None
    if args.machines:
        try:
            machines = load_backbone(args.machines)
        except RdcError as exc:
            ap.error(str(exc))
    # the steps each alpha gets: --refine, or for --machines without it rdcodec's schedule
    steps = [refinement_steps(float(a), args.refine, machines) for a in alphas]
    refine = steps if len(set(steps)) > 1 else steps[0]
    jpeg = classical.CODECS["jpeg"]
    per_image, t0 = [], time.time()
    for i, img in enumerate(images):
        jc = [classical.measure(jpeg, img, q, classical.psnr, None) for q in jpeg.settings]
        rows = rdcodec_rows(codec, img, alphas, jc, args.refine, args.filter, machines)
        per_image.append(rows)
        print(f"[{i + 1}/{len(images)}] {time.time() - t0:.0f}s  alpha 0: {rows[0]['bpp_beta0']:.3f} bpp "
              f"{rows[0]['beta0']['psnr']:.2f} dB  alpha 1: {rows[-1]['bpp_beta0']:.3f} bpp "
              f"{rows[-1]['beta0']['psnr']:.2f} dB", flush=True)
    if args.archive_previous:  # after measuring, so an interrupted run leaves the previous one in place
        try:
            archived = archive_previous(out, codec.weights_name)
        except ValueError as e:
            sys.exit(str(e))
        print(f"archived the run of {archived} to {out / archived}" if archived else "nothing to archive")
    (out / "rdcodec_per_image.json").write_text(json.dumps(per_image, indent=1))
    name = codec.weights_name
    ours = {}
    for beta in (0, 1):
        key = f"rdcodec beta={beta}"
        ours[key] = {"name": key, "description": f"rdcodec {rdcodec.__version__}, weights {name}, alpha grid "
                     f"{[round(float(a), 3) for a in alphas]}, real file bytes"
                     + (f", latent refinement {report.steps_text(refine)}" if refine else "")
                     + (f" for machines ({Path(args.machines).name})" if machines else "")
                     + (", Wiener output filter" if args.filter else "")
                     + ("" if beta == 0 else "; rate = header + base layer (residual stripped)"),
                     "results": rdcodec_results(per_image, beta)}
        (out / f"rdcodec-beta{beta}.json").write_text(json.dumps(ours[key], indent=1))
    others = {}
    names = [] if args.codecs == "none" else classical.parse_codecs(args.codecs)
    for cname in names:
        reason = classical.available()[cname]
        if reason:
            print(f"skipping {cname}: {reason}")
            continue
        t = time.time()
        others[cname] = classical.sweep(cname, images)
        (out / f"{cname}.json").write_text(json.dumps(others[cname], indent=1))
        print(f"{cname}: {time.time() - t:.0f}s", flush=True)
    previous = {}
    for cname in previous_curves(out, args.previous, list(others)):
        path = out / f"{cname}.json"
        if path.exists():
            others[cname] = json.loads(path.read_text())
            previous[cname] = others[cname].get("description", "")
        else:
            print(f"--previous {cname}: no {path}, skipped")
    summary = {
        "weights": name, "refine": refine, "output_filter": args.filter, "images": len(images),
        "machines": Path(args.machines).name if machines else None,
        "alpha": [float(a) for a in alphas],
        "classical_from_earlier_run": sorted(previous),
        "bpp_strictly_increasing_every_image": all(
            all(b["bpp_beta0"] > a["bpp_beta0"] for a, b in zip(rows, rows[1:])) for rows in per_image),
        "beta0_above_beta1_every_image_and_alpha": all(
            r["beta0"]["psnr"] > r["beta1"]["psnr"] for rows in per_image for r in rows),
        "jpeg_psnr_at_matched_bpp_beta0": [mean(rows[j]["beta0"]["jpeg_psnr_at_bpp"] for rows in per_image)
                                           for j in range(len(alphas))],
        "images_beating_jpeg_beta0": [sum(1 for rows in per_image if rows[j]["beta0"]["jpeg_psnr_at_bpp"] is not None
                                          and rows[j]["beta0"]["psnr"] > rows[j]["beta0"]["jpeg_psnr_at_bpp"])
                                      for j in range(len(alphas))],
        "images_in_jpeg_range_beta0": [sum(1 for rows in per_image if rows[j]["beta0"]["jpeg_psnr_at_bpp"] is not None)
                                       for j in range(len(alphas))],
        "smoothness_beta0": smoothness(alphas, ours["rdcodec beta=0"]["results"]),
        "bd": bd_table({k: v["results"] for k, v in ours.items()}, {k: v["results"] for k, v in others.items()}),
        "curves": {k: v["results"] for k, v in {**ours, **others}.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    report.write_readme(out)  # tables and rd.png; an archived run took its README along
    print(json.dumps({k: v for k, v in summary.items() if k != "curves"}, indent=1))


if __name__ == "__main__":
    main()

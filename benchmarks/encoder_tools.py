"""Do rdcodec's encoder-side tools stack? Latent refinement and the Wiener output filter, alone
and together, against the plain encode, on the same images and alphas (beta = 0, real bytes).

Both tools spend encode time only (every decoder reads their files): ``--refine N`` searches
each image's latent (``rdcodec.refine``), ``--filter`` fits a per-image output filter
(``rdcodec.wiener``). One refinement per image and alpha serves both refined variants, and every
file is decoded by the decoder before it is measured.

    python benchmarks/encoder_tools.py ../shared/data/kodak --limit 6 \\
        --out benchmarks/results/kodak-encoder-tools-6img/summary.json

Output: mean bpp and PSNR per variant and alpha, per-image values, and BD-rate / BD-PSNR
(``rdcodec.eval.bjontegaard``) of every variant against the plain, filtered and refined ones.

Runs on parts of a folder (a long run split over sessions) combine into one summary, with the
BD-rate of every variant against the classical codecs measured on the same images by
``benchmarks/rd.py``:

    python benchmarks/encoder_tools.py --merge a.json b.json --anchors benchmarks/results/kodak \
        --out benchmarks/results/kodak-encoder-tools/summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS = ("plain", "filter", "refine", "refine+filter")
#: classical curves (``benchmarks/rd.py``'s JSON files) that ``--anchors`` compares against
CLASSICAL = ("hevc", "avif", "jpeg2000", "webp", "jpegxl", "jpeg")


def summarize(per_image: dict, anchors: dict[str, dict] | None = None) -> tuple[dict, dict]:
    """(mean curves, BD table) from per-image values ``{variant: {"bpp"|"psnr": [alpha][image]}}``:
    every variant against the plain, filtered and refined ones, and against each ``anchors``
    curve (``{name: {"bpp": [...], "psnr": [...]}}``, means over the same images)."""
    from rdcodec.eval.bjontegaard import bd_quality, bd_rate

    curves = {v: {k: [float(np.mean(r)) for r in per_image[v][k]] for k in ("bpp", "psnr")} for v in VARIANTS}
    refs = {**{v: curves[v] for v in VARIANTS[:3]}, **(anchors or {})}
    bd = {}
    for a in VARIANTS:
        for b, cb in refs.items():
            if a != b and len(curves[a]["bpp"]) >= 2:
                ca = curves[a]
                bd[f"{a} vs {b}"] = {"bd_rate_percent": bd_rate(cb["bpp"], cb["psnr"], ca["bpp"], ca["psnr"]),
                                     "bd_psnr_db": bd_quality(cb["bpp"], cb["psnr"], ca["bpp"], ca["psnr"])}
    return curves, bd


def merge(parts: list[Path], out: Path, anchors: Path | None = None) -> dict:
    """One summary from the summaries of runs on disjoint images with the same alphas, weights and
    steps; ``anchors`` is a folder of ``benchmarks/rd.py`` results on all of those images."""
    docs = [json.loads(p.read_text()) for p in parts]
    for key in ("weights", "refine_steps", "alphas"):
        if len({json.dumps(d[key]) for d in docs}) != 1:
            raise SystemExit(f"cannot merge runs with different {key}: {[d[key] for d in docs]}")
    images = [im for d in docs for im in d["images"]]
    if len(set(images)) != len(images):
        raise SystemExit("cannot merge runs that share images")
    per_image = {v: {k: [sum((d["per_image"][v][k][j] for d in docs), []) for j in range(len(docs[0]["alphas"]))]
                     for k in ("bpp", "psnr")} for v in VARIANTS}
    ref = {}
    for name in CLASSICAL if anchors else ():
        path = anchors / f"{name}.json"
        if path.exists():
            curve = json.loads(path.read_text())
            if curve.get("images") != len(images):
                raise SystemExit(f"{path} is a mean over {curve.get('images')} images, these runs over {len(images)}")
            ref[name] = {"bpp": curve["results"]["bpp"], "psnr": curve["results"]["psnr-rgb"]}
    curves, bd = summarize(per_image, ref)
    doc = {**{k: docs[0][k] for k in ("weights", "refine_steps", "alphas")}, "images": images,
           "curves": curves, "bd": bd, "per_image": per_image,
           "wall_s": sum(d["wall_s"] for d in docs), "merged_from": [str(p) for p in parts]}
    if anchors:
        doc["anchors"] = str(anchors)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="SUMMARY",
                    help="measure nothing: combine these summaries (disjoint images) into --out")
    ap.add_argument("--anchors", type=Path, default=None,
                    help="with --merge: a folder of benchmarks/rd.py results on the same images")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
                    help="alphas (default: the six trained rate points)")
    ap.add_argument("--steps", type=int, default=50, help="latent refinement steps")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out, args.anchors)
    if args.folder is None:
        ap.error("give a folder of images, or --merge")

    from rdcodec import api
    from rdcodec.bitstream import container
    from rdcodec.eval.metrics import psnr
    from rdcodec.image import load_rgb8

    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    files = files[:args.limit] if args.limit else files
    if not files:
        raise SystemExit(f"no images in {args.folder}")
    codec = api.get_codec(args.weights)
    n_a = len(args.alphas)
    per_image = {v: {"bpp": [[] for _ in range(n_a)], "psnr": [[] for _ in range(n_a)]} for v in VARIANTS}
    t0 = time.perf_counter()
    for path in files:
        img = load_rgb8(str(path))
        an = codec.analyze(img)
        pixels = img.shape[0] * img.shape[1]
        for j, alpha in enumerate(args.alphas):
            refined = codec.refine(an, container.quantize_alpha(alpha) / container.ALPHA_STEPS, args.steps)
            for v in VARIANTS:
                data = codec.compress(refined if v.startswith("refine") else an, alpha, reconstruct=False,
                                      output_filter=v.endswith("filter")).data
                per_image[v]["bpp"][j].append(8 * len(data) / pixels)
                per_image[v]["psnr"][j].append(psnr(img, codec.decompress(data)[0].render(0.0)))
            print(f"[{time.perf_counter() - t0:6.0f} s] {path.name} alpha {alpha}: " + "  ".join(
                f"{v} {per_image[v]['bpp'][j][-1]:.3f} bpp {per_image[v]['psnr'][j][-1]:.2f} dB" for v in VARIANTS),
                file=sys.stderr, flush=True)
    curves, bd = summarize(per_image)
    doc = {"weights": codec.weights_name, "refine_steps": args.steps, "threads": torch.get_num_threads(),
           "images": [p.name for p in files], "alphas": args.alphas, "curves": curves, "bd": bd,
           "per_image": per_image, "wall_s": time.perf_counter() - t0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for k, v in bd.items():
        print(f"{k:28s} BD-rate {v['bd_rate_percent']:+6.2f}%  BD-PSNR {v['bd_psnr_db']:+.3f} dB")
    return doc


if __name__ == "__main__":
    main()

"""Pixel fidelity where the classifiers are scored: PSNR on protocol-A crops, rdcodec against HEVC-intra.

The ImageNet benchmark (``cognition.py``) scores classifiers on 224x224 center crops; this one
measures what those crops keep for the eye, at the same settings, so an accuracy gap can be read
against a fidelity gap. For every image (every k-th of the labelled sample): rdcodec at the given
alphas, beta 0 (whole file) and 1 (base layer only), and HEVC-intra at the given quality settings
(``classical.py``; the settings of ``cognition.py``). Writes the mean bpp and mean PSNR (RGB, over
images) per point to ``--out``, and the BD-rate / BD-PSNR of each rdcodec curve against HEVC-intra.

    python benchmarks/fidelity_gap.py ../shared/data/imagenet_sample --weights rdc-v19 --limit 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import classical  # noqa: E402
import cognition  # noqa: E402

from rdcodec.api import get_codec  # noqa: E402
from rdcodec.eval.bjontegaard import bd_table  # noqa: E402
from rdcodec.eval.metrics import psnr  # noqa: E402
from rdcodec.vision.reference import preprocess_center_crop  # noqa: E402


def measure(folder: Path, weights: str, limit: int, alphas: list[float], hevc: list[int]) -> dict:
    codec = get_codec(weights)
    rows = cognition.load_samples(folder, limit)
    points: dict[str, list[tuple[float, float]]] = {}
    t0 = time.time()
    for i, (path, _) in enumerate(rows):
        with Image.open(path) as img:
            crop = preprocess_center_crop(img)
        for b, a, bpp, dec in cognition.code_rdcodec(codec, crop, alphas, [0.0, 1.0]):
            points.setdefault(f"{weights} alpha {a:g} beta {b:g}", []).append((bpp, psnr(crop, dec)))
        for q in hevc:
            data, dec = classical.CODECS["hevc"].code(crop, q)
            points.setdefault(f"hevc {q}", []).append((8 * len(data) / (crop.shape[0] * crop.shape[1]),
                                                       psnr(crop, dec)))
        if (i + 1) % 50 == 0:
            print(f"[{i + 1}/{len(rows)}] {time.time() - t0:.0f} s", flush=True)
    mean = {k: (float(np.mean([p[0] for p in v])), float(np.mean([p[1] for p in v]))) for k, v in points.items()}

    def curve(keep) -> dict:
        pts = sorted(v for k, v in mean.items() if keep(k))
        return {"bpp": [p[0] for p in pts], "psnr-rgb": [p[1] for p in pts]}

    ours = {f"rdcodec beta={b}": curve(lambda k, b=b: k.startswith(f"{weights} alpha") and k.endswith(f" beta {b}"))
            for b in (0, 1)}
    return {"weights": weights, "images": len(rows), "protocol": "A (224x224 center crops)",
            "metric": "mean over images of bpp and of PSNR (RGB, dB)",
            "points": {k: {"bpp": v[0], "psnr": v[1]} for k, v in mean.items()},
            "bd": bd_table(ours, {"hevc": curve(lambda k: k.startswith("hevc "))})}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="the labelled ImageNet sample (labels.csv and images)")
    ap.add_argument("--weights", default=None, help="rdcodec weights (default: the registry's default)")
    ap.add_argument("--limit", type=int, default=200, help="images (every k-th; 0 = all)")
    ap.add_argument("--alphas", type=float, nargs="+", default=cognition.ALPHAS)
    ap.add_argument("--hevc", type=int, nargs="+", default=[6, 16, 26, 36, 46],
                    help="HEVC-intra settings (default: up to 46, past rdcodec's top rate; the committed runs')")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/imagenet/fidelity-gap.json"))
    args = ap.parse_args(argv)
    if not (args.folder / "labels.csv").exists():
        ap.error(f"{args.folder} has no labels.csv (the labelled ImageNet sample)")
    missing = classical.CODECS["hevc"].missing()
    if missing:
        ap.error(f"HEVC-intra is not available: {missing}")
    from rdcodec.errors import WeightsError
    from rdcodec.weights import resolve

    try:
        weights = resolve(args.weights).name
    except WeightsError as e:
        ap.error(str(e))
    result = measure(args.folder, weights, args.limit, args.alphas, args.hevc)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for k, v in result["points"].items():
        print(f"{k:32s} bpp {v['bpp']:.3f}  PSNR {v['psnr']:.2f} dB")
    for k, v in result["bd"].items():
        print(k, {m: round(x, 2) for m, x in v.items()})


if __name__ == "__main__":
    main()

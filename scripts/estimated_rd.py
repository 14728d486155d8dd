"""Model-estimated rate-distortion of a checkpoint or weights file on a whole folder (no coding).

For training runs whose layers the codec cannot code yet (or to compare two models without
writing files): every image at every alpha, in ``eval()`` mode (rounded latents, the entropy
models' estimate of the coded bits, which the real files match within about 1%,
``tests/test_codec.py``), float32, no autocast. Bits are base + residual layer; PSNR is of
the 8-bit output at beta = 0 and beta = 1. Writes a CompressAI-style JSON per beta and prints
BD-rates against the given anchors (``benchmarks/results/kodak/<name>.json`` curves).

    python scripts/estimated_rd.py runs/det27/last.pt --name det27 --out /tmp/est
    python scripts/estimated_rd.py weights/rdc-v22.safetensors --name rdc-v22 --out /tmp/est \\
        --anchor hevc --anchor /tmp/est/det27-beta0.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdcodec.eval.bjontegaard import bd_rate  # noqa: E402
from rdcodec.model.rdc import RDCModel  # noqa: E402
from rdcodec.train.loop import load_checkpoint  # noqa: E402
from rdcodec.train.monitor import load_eval_images  # noqa: E402


def load_model(path: str) -> RDCModel:
    if path.endswith(".safetensors"):
        from rdcodec.weights import load

        return load(path)[0].eval()
    model, _, missing = load_checkpoint(path)
    if missing:
        raise SystemExit(f"{path} lacks {len(missing)} tensors of its own model, e.g. {missing[0]}")
    return model.eval()


def psnr8(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """PSNR of the rounded 8-bit image, as the codec writes it."""
    q = (x_hat.clamp(0, 1) * 255).round()
    mse = float((q - (x * 255).round()).pow(2).mean())
    return 10 * math.log10(255 ** 2 / max(mse, 1e-12))


@torch.no_grad()
def measure(model: RDCModel, x: torch.Tensor, alphas: list[float]) -> list[dict]:
    """One (1, 3, H, W) image at every alpha: total bpp, base bpp, PSNR at beta = 0 and 1."""
    a = torch.tensor(alphas)
    xs = x.expand(len(alphas), -1, -1, -1).contiguous()
    gains = {n: getattr(model, f"gain_{n}").at_alphas(a) for n in ("y", "z", "s")}
    base = model.base_from_latent(model.g_a(xs), gains["y"], gains["z"])
    gains_e = model.gain_e.at_alphas(a) if model.config.enhance else None
    res = model.residual_from_base(base, gains["s"], x=xs, gains_e=gains_e)
    pixels = x.shape[-1] * x.shape[-2]
    rows = []
    for j in range(len(alphas)):
        b = float(res["bits_base"][j]) / pixels
        rows.append({"bpp": b + float(res["bits_s"][j]) / pixels, "bpp_base": b,
                     "psnr0": psnr8(res["x_hat_1"][j] + res["r"][j], x[0]),
                     "psnr1": psnr8(res["x_hat_1"][j], x[0])})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a training checkpoint (last.pt) or a weights file")
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True, help="folder for <name>-beta0.json / -beta1.json")
    ap.add_argument("--images", default=str(ROOT.parent / "shared/data/kodak"))
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--alphas", type=int, default=11, help="evenly spaced alphas from 0 to 1")
    ap.add_argument("--anchor", action="append", default=[],
                    help="a curve to print BD-rates against: a name in benchmarks/results/kodak or a JSON path")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    alphas = [i / (args.alphas - 1) for i in range(args.alphas)]
    images = load_eval_images(args.images, args.count)
    per_image = []
    for i, x in enumerate(images):
        per_image.append(measure(model, x, alphas))
        print(f"image {i + 1}/{len(images)}", file=sys.stderr, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = {}
    for beta, key in ((0, "psnr0"), (1, "psnr1")):
        bpp_key = "bpp" if beta == 0 else "bpp_base"
        results = {"bpp": [float(np.mean([r[j][bpp_key] for r in per_image])) for j in range(len(alphas))],
                   "psnr-rgb": [float(np.mean([r[j][key] for r in per_image])) for j in range(len(alphas))]}
        curves[beta] = results
        doc = {"name": f"{args.name}-beta{beta}", "description": f"model-estimated bits of {args.model} "
               f"at beta = {beta} (scripts/estimated_rd.py, no coding)", "alphas": alphas,
               "images": len(images), "results": results}
        (out / f"{args.name}-beta{beta}.json").write_text(json.dumps(doc, indent=1) + "\n")
    for beta in (0, 1):
        c = curves[beta]
        print(f"beta {beta}: " + " ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(c["bpp"], c["psnr-rgb"])))
    for spec in args.anchor:
        path = Path(spec) if spec.endswith(".json") else ROOT / "benchmarks/results/kodak" / f"{spec}.json"
        anchor = json.loads(path.read_text())["results"]
        for beta in (0, 1):
            c = curves[beta]
            try:
                d = bd_rate(anchor["bpp"], anchor["psnr-rgb"], c["bpp"], c["psnr-rgb"])
                print(f"BD-rate beta {beta} vs {spec}: {d:+.2f}%")
            except ValueError as e:
                print(f"BD-rate beta {beta} vs {spec}: {e}")


if __name__ == "__main__":
    main()

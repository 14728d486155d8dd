"""Quick model-estimated RD of a training checkpoint on a few Kodak images (no coding).

    python scripts/quick_eval.py runs/base1/last.pt [--images 4] [--residual]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import classical  # noqa: E402
from rd import interp_log  # noqa: E402

from rdcodec.train.loop import load_checkpoint  # noqa: E402
from rdcodec.train.monitor import load_eval_images, quick_eval  # noqa: E402


def jpeg_psnr_at(img: np.ndarray, bpp: float) -> float:
    """libjpeg PSNR at ``bpp`` on this image (the benchmark's JPEG sweep, linear in log-rate); NaN outside it."""
    jpeg = classical.CODECS["jpeg"]
    curve = [classical.measure(jpeg, img, q, classical.psnr, None) for q in jpeg.settings]
    value = interp_log(bpp, curve)
    return float("nan") if value is None else value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--kodak", default=str(Path(__file__).resolve().parents[2] / "shared/data/kodak"))
    ap.add_argument("--residual", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, state, _ = load_checkpoint(args.checkpoint)
    model.eval()
    images = load_eval_images(args.kodak, args.images)
    print(f"step {state.get('step')}")
    per_image = [quick_eval(model, [x], levels=range(6), residual=args.residual) for x in images]
    jpeg = [[jpeg_psnr_at((x[0].permute(1, 2, 0) * 255).round().byte().numpy(), b) for b in rec["bpp"]]
            for x, rec in zip(images, per_image)]
    for n in range(6):
        mean = {k: np.mean([rec[k][n] for rec in per_image]) for k in per_image[0] if k != "levels"}
        line = (f"level {n}: base {mean['bpp']:.3f} bpp {mean['psnr_b1']:.2f} dB "
                f"(JPEG at same bpp {np.mean([j[n] for j in jpeg]):.2f})")
        if args.residual:
            line += (f" | +res {mean['bpp_res']:.3f} bpp -> {mean['bpp'] + mean['bpp_res']:.3f} bpp "
                     f"{mean['psnr_b0']:.2f} dB")
        print(line, flush=True)


if __name__ == "__main__":
    main()

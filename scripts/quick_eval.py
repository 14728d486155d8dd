"""Quick model-estimated RD of a training checkpoint on a few Kodak images (no coding).

    python scripts/quick_eval.py runs/base1/last.pt [--images 4] [--residual]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import classical  # noqa: E402
from rd import interp_log  # noqa: E402

from rdcodec.model.rdc import ModelConfig, RDCModel  # noqa: E402
from rdcodec.train.loop import load_matching  # noqa: E402


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
    model = RDCModel(ModelConfig())
    state = torch.load(args.checkpoint, weights_only=False)
    load_matching(model, state["model"])
    model.eval()
    files = sorted(Path(args.kodak).glob("*.png"))[: args.images]
    print(f"step {state.get('step')}")
    for n in range(6):
        bpp, psnr, bpp_s, psnr2, jpeg = [], [], [], [], []
        for f in files:
            img = np.asarray(Image.open(f).convert("RGB"))
            x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
            idx = torch.tensor([n])
            with torch.no_grad():
                if args.residual:
                    o = model.forward_residual(x, idx)
                    b = o["bits_base"]
                    bpp_s.append(float(o["bits_s"]) / (x.shape[2] * x.shape[3]))
                    x2 = (o["x_hat_1"] + o["r"]).clamp(0, 1)
                    psnr2.append(-10 * math.log10(float((x2 - x).pow(2).mean())))
                    xh = o["x_hat_1"]
                else:
                    o = model.forward_base(x, idx)
                    b, xh = o["bits_y"] + o["bits_z"], o["x_hat"]
            bpp.append(float(b) / (x.shape[2] * x.shape[3]))
            jpeg.append(jpeg_psnr_at(img, bpp[-1]))
            psnr.append(-10 * math.log10(float((xh.clamp(0, 1) - x).pow(2).mean())))
        line = f"level {n}: base {np.mean(bpp):.3f} bpp {np.mean(psnr):.2f} dB (JPEG at same bpp {np.mean(jpeg):.2f})"
        if args.residual:
            total = np.mean(bpp) + np.mean(bpp_s)
            line += f" | +res {np.mean(bpp_s):.3f} bpp -> {total:.3f} bpp {np.mean(psnr2):.2f} dB"
        print(line, flush=True)


if __name__ == "__main__":
    main()

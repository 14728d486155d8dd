"""Fit the eye share: how much of the machine head's image the beta = 0 image takes (not in the paper).

With a machine head (:mod:`rdcodec.model.head`) a file decodes to two estimates of the original
``x``: the eyes' ``x_0 = x_hat_1 + r`` (Eq. 9 at beta = 0) and the machines' ``P = P(x_hat_1)``.
Their errors are partly independent, so a mix lies closer to ``x`` than ``x_0`` does: with
rdc-v29 the Kodak PSNR at beta = 0.25 was 0.05 dB above beta = 0, not monotone in beta. The eye
share ``c`` (per level ``n`` and colour ``k``, ``ModelConfig.eye_share``) puts that mix into the
beta = 0 image, ``x_eye = x_0 + c (P - x_0)``. It is the least-squares solution over training crops
coded at ``alpha = n / 5`` on the real coding path::

    c[n, k] = sum (x - x_0)(P - x_0) / sum (P - x_0)^2              (sums over pixels of colour k)

Along Eq. 9, ``x_bar = P + (1 - beta)(x_eye - P)`` takes the share ``c + beta (1 - c)`` of ``P``,
and the squared error is a parabola in that share with its minimum at ``c`` on the fitting set:
as beta goes from 1 to 0 the error falls all the way (for an image whose own best share lies
above ``c``, only down to the beta where the share passes it). A decoder sees ``c(alpha)``
linear in alpha between the levels.

    python -m rdcodec.train.eye_share rdc-v29 --name rdc-v30 \\
        --data ../shared/data/train/bsds500 --data ../shared/data/train/sun_hays80
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .. import weights
from ..codec import Codec
from ..model.gain import LAMBDAS, level_alpha
from ..model.rdc import CodingModel, ModelConfig, RDCModel
from .data import build_crop_cache
from .export import WEIGHTS, register
from .loop import load_matching


def fit(codec: Codec, crops: torch.Tensor,
        progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares eye shares of ``codec`` (weights with a machine head) over ``crops``
    (n, 3, S, S) uint8 -> (shares (L, 3) in [0, 1], the mean-squared-error gain they give on the
    crops, in dB per level (L,)). Sums in float64."""
    if not codec.m.has_head:
        raise ValueError("an eye share mixes in the machine head's image: these weights have no head")
    levels = len(LAMBDAS)
    de, dd, ee = (torch.zeros(levels, 3, dtype=torch.float64) for _ in range(3))
    for i, crop in enumerate(crops):
        image = crop.permute(1, 2, 0).contiguous().numpy()
        x = crop.double() / 255.0
        for n in range(levels):
            rec = codec.compress(image, level_alpha(n)).recon
            x_0 = (rec.x_hat_1 + rec.r)[0].double()
            d, e = rec.base_image()[0].double() - x_0, x - x_0
            de[n] += (d * e).sum((1, 2))
            dd[n] += (d * d).sum((1, 2))
            ee[n] += (e * e).sum((1, 2))
        if progress is not None:
            progress(i + 1, len(crops))
    c = (de / dd).clamp(0.0, 1.0)
    mixed = ee - 2.0 * c * de + c * c * dd  # sum (e - c d)^2
    gain_db = 10.0 * torch.log10(ee.sum(1) / mixed.sum(1))
    return c.float(), gain_db.float()


def with_share(base: RDCModel, share: torch.Tensor) -> RDCModel:
    """``base`` (weights with a machine head) as a model with the eye share ``share`` (L, 3)."""
    model = RDCModel(ModelConfig(**{**base.config.to_dict(), "eye_share": True}))
    missing = load_matching(model, base.state_dict())
    if missing != ["eye_share"]:
        raise ValueError(f"{missing[:3]} do not come from the base weights")
    with torch.no_grad():
        model.eye_share.copy_(share)
    return model.eval()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rdcodec.train.eye_share", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", help="shipped weights with a machine head (name or file)")
    ap.add_argument("--name", required=True, help="name of the weights to write")
    ap.add_argument("--data", action="append", required=True, help="folder of training photos (repeatable)")
    ap.add_argument("--crops", type=int, default=512, help="random crops to fit on (default 512)")
    ap.add_argument("--size", type=int, default=256, help="crop side (default 256)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out-dir", default=str(WEIGHTS))
    ap.add_argument("--default", action="store_true", help="make them the default weights")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    base, z_pmf, info = weights.load(args.weights)
    crops = build_crop_cache(args.data, args.crops, args.size, seed=args.seed)
    t0 = time.perf_counter()

    def progress(i: int, n: int) -> None:
        if i % 32 == 0 or i == n:
            print(f"{i}/{n} crops, {time.perf_counter() - t0:.0f} s", flush=True)

    share, gain_db = fit(Codec(CodingModel(base, z_pmf), info.weights_id, info.name), crops, progress)
    for n in range(len(LAMBDAS)):
        print(f"level {n}: c = {', '.join(f'{v:.4f}' for v in share[n].tolist())}, "
              f"MSE gain {gain_db[n]:.4f} dB on the crops")
    if not torch.isfinite(share).all():
        raise SystemExit("the fit gave non-finite shares (a level whose head image equals x_0?)")
    path = Path(args.out_dir) / f"{args.name}.safetensors"
    meta = {"name": args.name, "stage": "eye_share", "from": info.name,
            "eye_share_fit": f"{args.crops} crops of {args.size} px, seed {args.seed}, "
                             f"{', '.join(Path(d).name for d in args.data)}"}
    digest = weights.export(with_share(base, share), path, meta)
    register(path, digest, args.name, args.default)


if __name__ == "__main__":
    main()

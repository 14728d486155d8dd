"""PSNR against beta: does the decode-time control move fidelity monotonically?

For every image of a folder and every alpha, one file is encoded and its reconstruction
rendered at each beta (x_bar = x_hat_1 + (1 - beta) r, Eq. 9; the encoder's reconstruction
equals the decoder's pixel for pixel). Writes the mean PSNR per (alpha, beta) and how many
image/alpha pairs have PSNR strictly falling as beta goes 0 -> 1.

    python benchmarks/beta.py ../shared/data/kodak --weights rdc-v17 --out benchmarks/results/kodak/beta/rdc-v17.json

(A folder of its own, one file per weights, apart from ``rd.py``'s runs.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rdcodec.api import get_codec  # noqa: E402
from rdcodec.eval.evaluate import list_images  # noqa: E402
from rdcodec.eval.metrics import psnr  # noqa: E402
from rdcodec.image import load_rgb8  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--alphas", default="0,0.5,1")
    ap.add_argument("--betas", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--weights", default=None)
    args = ap.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",")]
    betas = sorted(float(b) for b in args.betas.split(","))
    codec = get_codec(args.weights)
    rows = []  # per image: alpha x beta
    files = list_images(args.folder)
    for n, path in enumerate(files):
        img = load_rgb8(path.read_bytes())
        an = codec.analyze(img)
        rows.append([[psnr(img, codec.compress(an, a).recon.render(b)) for b in betas] for a in alphas])
        print(f"[{n + 1}/{len(files)}] {path.name}", flush=True)
    table = np.array(rows)  # image x alpha x beta
    strictly = (np.diff(table, axis=2) < 0).all(axis=2)  # PSNR falls with every step of beta
    result = {
        "weights": codec.weights_name, "images": len(files), "alphas": alphas, "betas": betas,
        "mean_psnr": {str(a): dict(zip(map(str, betas), table[:, i].mean(0).round(4).tolist()))
                      for i, a in enumerate(alphas)},
        "pairs_strictly_falling_with_beta": int(strictly.sum()), "pairs": int(strictly.size),
        "mean_monotone": bool((np.diff(table.mean(0), axis=1) < 0).all()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Probe (session 29): encoder-side latent refinement for machines, at beta = 1.

The measurement behind ``docs/cognition.md`` "Refining the latent for machines", which became
``rdcodec encode --machines`` (session 30). It runs :func:`rdcodec.refine.refine_for_machines`,
Adam on this image's latent ``y`` with the decoder fixed, on

    L(y) = bits_base / (H W) + m * lambda(alpha) * 255^2 * MSE(x_hat_1, x) + nu(alpha) * D_feat(x_hat_1, x)

with ``D_feat`` stage I's feature-fidelity term (``rdcodec.vision.features.feature_distance``) on the
training backbone (the MobileNetV1 extractor, never the reported classifiers), at the probe's step
size 0.01 (the product's default is 10 steps at 0.02). ``nu < 0`` takes ``-nu`` times run 21's per-level weights
0.5 / 0.8 / 1.3 / 2 / 3.2 / 5 (``rdcodec.refine.FEATURE_WEIGHTS``), interpolated like the gains. For each
image (protocol A crop) and alpha it codes the base-only file plainly and once per setting, and
records bytes, PSNR of x_hat_1, and each LiteRT classifier's top-1 hit and true-class score.
With ``RDC_PROBE_BETA0=1`` (session 32) the file keeps its residual layer and the record also has
the whole file's bytes, PSNR and hits at beta = 0, from the same file (is beta = 1 ahead for machines?).

    python scripts/probe_machine_refine.py N STEPS NU:M[,NU:M...] A[,A...] I/SHARDS out.json [OFFSET [LR]]

N images, every (1000 // N)-th from OFFSET (default 0), so another OFFSET gives disjoint images;
LR is Adam's initial step size (default 0.01, the probe's; the product's default is 0.02).

    python scripts/probe_machine_refine.py --summary out.0of2.json out.1of2.json

prints, per alpha and setting, the mean bytes and top-1 (%) of each classifier at beta = 1 (and at
beta = 0 with the paired top-1 gap beta 1 - beta 0 and its 95% bootstrap interval, where recorded).
"""

import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rdcodec.api import get_codec, load_backbone
from rdcodec.bitstream.container import base_only_size
from rdcodec.codec import Analysis
from rdcodec.refine import FEATURE_WEIGHTS, LEARNING_RATE, per_level, refine_for_machines
from rdcodec.vision.reference import Classifier, preprocess_center_crop

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLASSIFIERS = ["mobilenet_v2_1.0_224_quant", "tf2_mobilenet_v2_1.0_224_ptq", "mobilenet_v1_0.75_192_quant"]


def feature_weight(nu: float, alpha: float) -> float:
    """``nu`` itself, or for ``nu < 0`` ``-nu`` times run 21's weights ``FEATURE_WEIGHTS`` at ``alpha``."""
    return nu if nu >= 0 else -nu * per_level(FEATURE_WEIGHTS, alpha)


def refined(codec, backbone, an: Analysis, alpha: float, steps: int, nu: float, m: float,
            lr: float = LEARNING_RATE) -> Analysis:
    """``an`` with its latent refined for machines with weights ``nu`` and ``m``."""
    x = codec._padded(an.image)
    lat = refine_for_machines(codec.m.model, x, an.y, alpha, codec.m.gains(alpha), steps, an.height, an.width,
                              backbone, codec.m.bf16, lr=lr, nu=nu, share=m)
    return Analysis(lat, an.height, an.width, an.image)


def main() -> None:
    torch.set_num_threads(1)
    n, steps = int(sys.argv[1]), int(sys.argv[2])
    sets = [tuple(map(float, t.split(":"))) for t in sys.argv[3].split(",")]
    alphas = [float(a) for a in sys.argv[4].split(",")]
    shard, shards = (int(v) for v in sys.argv[5].split("/"))
    folder = SHARED / "data" / "imagenet_sample"
    with open(folder / "labels.csv") as f:
        rows = sorted((folder / r["file"], int(r["class_index"])) for r in csv.DictReader(f))
    offset = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    lr = float(sys.argv[8]) if len(sys.argv) > 8 else LEARNING_RATE
    rows = rows[offset:: len(rows) // n][:n][shard::shards]
    codec = get_codec("rdc-v22")
    backbone = load_backbone(SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")
    clfs = [Classifier(SHARED / "models" / f"{c}.tflite") for c in CLASSIFIERS]
    beta0 = os.environ.get("RDC_PROBE_BETA0") == "1"
    out, t0 = [], time.time()
    for k, (path, label) in enumerate(rows):
        crop = preprocess_center_crop(Image.open(path))
        an = codec.analyze(crop)
        rec = {"file": path.name, "label": label}
        for a in alphas:
            for kind in ["plain"] + [f"{nu:g}:{m:g}" for nu, m in sets]:
                if kind == "plain":
                    a_n = an
                else:
                    nu, m = map(float, kind.split(":"))
                    a_n = refined(codec, backbone, an, a, steps, feature_weight(nu, a), m, lr)
                c = codec.compress(a_n, a, residual=beta0)
                entry = []
                for beta, size in [(1.0, base_only_size(c.data))] + ([(0.0, len(c.data))] if beta0 else []):
                    dec = c.recon.render(beta)
                    psnr = 10 * np.log10(255 ** 2 / ((dec - crop.astype(np.float64)) ** 2).mean())
                    hits = []
                    for clf in clfs:
                        sc = clf.scores(dec)
                        off = 1 if len(sc) == 1001 else 0
                        hits.append([int(np.argmax(sc)) - off == label, float(sc[label + off])])
                    entry += [size, psnr, hits]
                rec.setdefault(kind, {})[str(a)] = entry
        out.append(rec)
        print(k, f"{time.time() - t0:.0f} s", flush=True)
    Path(sys.argv[6]).write_text(json.dumps(out))


def summary(files: list[str]) -> None:
    """Print the mean bytes and top-1 per alpha and setting of the records in ``files``."""
    recs = [r for f in files for r in json.loads(Path(f).read_text())]
    rng = np.random.default_rng(0)
    boot = rng.integers(0, len(recs), (2000, len(recs)))
    print(f"{len(recs)} images; top-1 % of {', '.join(CLASSIFIERS)}")
    for kind in [k for k in recs[0] if k not in ("file", "label")]:
        for a in recs[0][kind]:
            e = [r[kind][a] for r in recs]
            hit = np.array([[[h[0] for h in x[2]]] + ([[h[0] for h in x[5]]] if len(x) > 3 else []) for x in e],
                           dtype=np.float64)  # (images, betas, classifiers)
            top1 = np.round(100 * hit.mean(0), 1)
            line = f"alpha {a} {kind:>8}: beta 1 {np.mean([x[0] for x in e]):7.1f} B top1 {top1[0]}"
            if hit.shape[1] > 1:
                gap = hit[:, 0, 0] - hit[:, 1, 0]
                lo, hi = np.percentile(100 * gap[boot].mean(1), [2.5, 97.5])
                line += (f" | beta 0 {np.mean([x[3] for x in e]):7.1f} B top1 {top1[1]}"
                         f" | V2 beta1-beta0 {100 * gap.mean():+.1f} [{lo:+.1f}, {hi:+.1f}]")
            print(line)


if __name__ == "__main__":
    summary(sys.argv[2:]) if sys.argv[1:2] == ["--summary"] else main()

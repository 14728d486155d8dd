"""Probe (session 29): encoder-side latent refinement for machines, at beta = 1.

The measurement behind ``docs/cognition.md`` "Refining the latent for machines", which became
``rdcodec encode --machines`` (session 30). It runs :func:`rdcodec.refine.refine_for_machines`,
Adam on this image's latent ``y`` with the decoder fixed, on

    L(y) = bits_base / (H W) + m * lambda(alpha) * 255^2 * MSE(x_hat_1, x) + nu(alpha) * D_feat(x_hat_1, x)

with ``D_feat`` stage I's feature-fidelity term (``rdcodec.vision.features.feature_distance``) on the
training backbone (the MobileNetV1 extractor, never the reported classifiers), at the probe's step
size 0.01 (the product's default is 10 steps at 0.02). ``nu < 0`` takes run 21's per-level weights
0.5 / 0.8 / 1.3 / 2 / 3.2 / 5 (``rdcodec.refine.FEATURE_WEIGHTS``), interpolated like the gains. For each
image (protocol A crop) and alpha it codes the base-only file plainly and once per setting, and
records bytes, PSNR of x_hat_1, and each LiteRT classifier's top-1 hit and true-class score.

    python scripts/probe_machine_refine.py N STEPS NU:M[,NU:M...] A[,A...] I/SHARDS out.json [OFFSET [LR]]

N images, every (1000 // N)-th from OFFSET (default 0), so another OFFSET gives disjoint images;
LR is Adam's initial step size (default 0.01, the probe's; the product's default is 0.02).
"""

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rdcodec.api import get_codec, load_backbone
from rdcodec.codec import Analysis
from rdcodec.refine import FEATURE_WEIGHTS, LEARNING_RATE, per_level, refine_for_machines
from rdcodec.vision.reference import Classifier, preprocess_center_crop

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLASSIFIERS = ["mobilenet_v2_1.0_224_quant", "tf2_mobilenet_v2_1.0_224_ptq", "mobilenet_v1_0.75_192_quant"]


def feature_weight(nu: float, alpha: float) -> float:
    """``nu`` itself, or for ``nu < 0`` run 21's weights ``FEATURE_WEIGHTS`` at ``alpha``."""
    return nu if nu >= 0 else per_level(FEATURE_WEIGHTS, alpha)


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
                c = codec.compress(a_n, a, residual=False)
                dec = c.recon.render(1.0)
                psnr = 10 * np.log10(255 ** 2 / ((dec - crop.astype(np.float64)) ** 2).mean())
                hits = []
                for clf in clfs:
                    sc = clf.scores(dec)
                    off = 1 if len(sc) == 1001 else 0
                    hits.append([int(np.argmax(sc)) - off == label, float(sc[label + off])])
                rec.setdefault(kind, {})[str(a)] = [len(c.data), psnr, hits]
        out.append(rec)
        print(k, f"{time.time() - t0:.0f} s", flush=True)
    Path(sys.argv[6]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()

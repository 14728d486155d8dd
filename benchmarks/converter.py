"""Agreement of the TFLite -> PyTorch conversion with LiteRT on the ImageNet sample.

For every classifier in ``../shared/models``: top-1 agreement of the float PyTorch module
(``rdcodec.vision.tflite``) with LiteRT running the uint8 file, and both models' top-1
accuracy against the labels; for the embedding extractor, the cosine similarity of the
pooled embeddings. Writes ``benchmarks/results/imagenet/converter.json``.

    python benchmarks/converter.py ../shared/data/imagenet_sample
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rdcodec.vision.reference import Classifier, preprocess_center_crop  # noqa: E402
from rdcodec.vision.tflite import load_tflite  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def main() -> None:
    folder = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("benchmarks/results/imagenet/converter.json")
    rows = [line.split(",") for line in (folder / "labels.csv").read_text().splitlines()[1:]]
    crops = [preprocess_center_crop(Image.open(folder / r[0])) for r in rows]
    labels = [int(r[1]) for r in rows]
    result = {"images": len(crops)}
    for name in ("mobilenet_v2_1.0_224_quant", "tf2_mobilenet_v2_1.0_224_ptq", "mobilenet_v1_0.75_192_quant"):
        ref, net = Classifier(MODELS / f"{name}.tflite"), load_tflite(MODELS / f"{name}.tflite")
        ref_top1, ours_top1 = [], []
        for i in range(0, len(crops), 50):
            imgs = [c if ref.size == 224 else np.asarray(Image.fromarray(c).resize((ref.size,) * 2, Image.BILINEAR))
                    for c in crops[i:i + 50]]
            with torch.no_grad():
                x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
                ours_top1 += (net(x)["logits"].argmax(1) - 1).tolist()
            ref_top1 += [ref.top5(im)[0] for im in imgs]
        n = len(crops)
        result[name] = {"top1_agreement": sum(a == b for a, b in zip(ref_top1, ours_top1)) / n,
                        "top1_litert": sum(a == y for a, y in zip(ref_top1, labels)) / n,
                        "top1_pytorch": sum(a == y for a, y in zip(ours_top1, labels)) / n}
        print(name, result[name], flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

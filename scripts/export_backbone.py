"""Save a TFLite vision network as the safetensors graph rdcodec ships for ``--machines``.

    python scripts/export_backbone.py ../shared/models/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite \
        weights/mobilenet-v1-embedding.safetensors

The file keeps every constant as the TFLite file stores it (quantized, with its scales and zero
points) and the graph as JSON metadata (:class:`rdcodec.vision.tflite.TFLiteGraph`), so the network
built from it equals the one built from the TFLite file to the bit, without ``ai-edge-litert``.
Record the printed SHA-256 under ``"backbones"`` in ``weights/registry.json``.
"""

import sys
from pathlib import Path

from rdcodec.vision.tflite import read_tflite
from rdcodec.weights import sha256_file


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    source, out = argv
    read_tflite(source).save(out)
    print(f"{out} sha256={sha256_file(Path(out))}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Reference runs of the TFLite vision networks with LiteRT (the networks as shipped, uint8).

    >>> clf = Classifier("../shared/models/mobilenet_v2_1.0_224_quant.tflite")  # doctest: +SKIP
    >>> clf.top5(image_224)        # (224, 224, 3) uint8 RGB -> 5 ImageNet class indices  # doctest: +SKIP

Outputs with 1001 entries have "background" at index 0; :meth:`Classifier.top5` returns
ImageNet class indices (output index - 1), best first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Classifier", "preprocess_center_crop"]


def preprocess_center_crop(img: Image.Image, short: int = 256, crop: int = 224) -> np.ndarray:
    """Resize the shorter side to ``short`` (bicubic), center-crop ``crop``; (crop, crop, 3) uint8."""
    img = img.convert("RGB")
    w, h = img.size
    s = short / min(w, h)
    img = img.resize((max(crop, round(w * s)), max(crop, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - crop) // 2, (h - crop) // 2
    return np.asarray(img.crop((left, top, left + crop, top + crop)))


class Classifier:
    """A uint8 TFLite image classifier run with LiteRT, one image at a time."""

    def __init__(self, path: str | Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.name = Path(path).stem
        self.it = Interpreter(str(path), num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        self.size = int(self.inp["shape"][1])

    def scores(self, image: np.ndarray) -> np.ndarray:
        """Class scores for an (H, W, 3) uint8 image, resized (bilinear) to the network's input if needed."""
        if image.shape[:2] != (self.size, self.size):
            image = np.asarray(Image.fromarray(image).resize((self.size, self.size), Image.BILINEAR))
        self.it.set_tensor(self.inp["index"], image[None].astype(self.inp["dtype"]))
        self.it.invoke()
        return self.it.get_tensor(self.out["index"])[0].astype(np.float32)

    def top5(self, image: np.ndarray) -> list[int]:
        s = self.scores(image)
        # stable order: a higher score first, ties by lower index
        order = np.lexsort((np.arange(len(s)), -s))[:5]
        offset = 1 if len(s) == 1001 else 0
        return [int(i) - offset for i in order]

"""Reference runs of the TFLite vision networks with LiteRT (the networks as shipped, uint8).

    >>> clf = Classifier("../shared/models/mobilenet_v2_1.0_224_quant.tflite")  # doctest: +SKIP
    >>> clf.top5(image_224)        # (224, 224, 3) uint8 RGB -> 5 ImageNet class indices  # doctest: +SKIP

Outputs with 1001 entries have "background" at index 0; :meth:`Classifier.top5` returns
ImageNet class indices (output index - 1), best first.

    >>> seg = Segmenter("../shared/models/deeplabv3_mnv2_pascal_quant.tflite")  # doctest: +SKIP
    >>> seg.predict(image)         # (H, W, 3) uint8 RGB -> (H, W) uint8 PASCAL VOC class map  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Classifier", "Segmenter", "preprocess_center_crop"]


def preprocess_center_crop(img: Image.Image, short: int = 256, crop: int = 224) -> np.ndarray:
    """Resize the shorter side to ``short`` (bicubic), center-crop ``crop``; (crop, crop, 3) uint8."""
    img = img.convert("RGB")
    w, h = img.size
    s = short / min(w, h)
    img = img.resize((max(crop, round(w * s)), max(crop, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - crop) // 2, (h - crop) // 2
    return np.asarray(img.crop((left, top, left + crop, top + crop)))


class _LiteRTModel:
    """A TFLite file loaded into a LiteRT interpreter (one input, one output tensor)."""

    def __init__(self, path: str | Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.name = Path(path).stem
        self.it = Interpreter(str(path), num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]


class Classifier(_LiteRTModel):
    """A uint8 TFLite image classifier run with LiteRT, one image at a time."""

    def __init__(self, path: str | Path, threads: int = 1):
        super().__init__(path, threads)
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


class Segmenter(_LiteRTModel):
    """A uint8 TFLite semantic segmenter (DeepLabV3-MobileNetV2, PASCAL VOC) run with LiteRT.

    DeepLab's own preprocessing: the image is resized (bilinear) so that its longer side equals
    the network's input side (513), keeping its aspect ratio, and the rest of the square is
    padded with the mean pixel, uint8 128, which the input quantization (scale 1/128, zero
    point 128) maps to 0.0. The network's ``ArgMax`` output on the valid (unpadded) region is
    then resized (nearest) back to the image's own size, so :meth:`predict` returns one class
    id (0 = background, 1..20 the VOC classes) per input pixel.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        super().__init__(path, threads)
        _, self.height, self.width, _ = (int(v) for v in self.inp["shape"])
        scale, zero = self.inp["quantization"]
        if self.inp["dtype"] != np.uint8:
            raise ValueError(f"{self.name}: expected a uint8 input, got {self.inp['dtype']}")
        # the pad value: the quantized 0.0 (the mean pixel) where the input is quantized, else mid-grey
        self.pad = int(zero) if scale else 128

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W) uint8 class map for an (H, W, 3) uint8 RGB image."""
        h, w = image.shape[:2]
        s = min(self.height / h, self.width / w)
        nh, nw = min(self.height, max(1, round(h * s))), min(self.width, max(1, round(w * s)))
        x = np.full((self.height, self.width, 3), self.pad, np.uint8)
        if (nh, nw) != (h, w):
            image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
        x[:nh, :nw] = image
        self.it.set_tensor(self.inp["index"], x[None])
        self.it.invoke()
        labels = self.it.get_tensor(self.out["index"])[0, :nh, :nw].astype(np.uint8)
        if (nh, nw) != (h, w):
            labels = np.asarray(Image.fromarray(labels).resize((w, h), Image.NEAREST))
        return labels

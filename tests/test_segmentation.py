"""Segmentation agreement: the ``miou`` metric and the LiteRT DeepLabV3 segmenter.

The segmenter check needs ../shared/models and ai-edge-litert; it skips cleanly without them.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from rdcodec.eval.metrics import miou


def test_miou_identical_maps_is_one():
    ref = np.array([[0, 0, 3], [15, 15, 3]])
    assert miou(ref, ref) == 1.0


def test_miou_hand_computed():
    ref = np.array([[0, 0], [1, 1]])
    pred = np.array([[0, 1], [1, 1]])
    # class 0: 1 shared pixel of 2 in the union; class 1: 2 of 3; classes 2..20 absent from both: skipped
    assert miou(pred, ref) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert miou(pred, ref, num_classes=2) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_miou_counts_a_class_present_in_only_one_map_as_zero():
    ref = np.zeros((2, 2), int)
    pred = ref.copy()
    pred[0, 0] = 7  # a spurious class: IoU 0 for class 7, 3/4 for background
    assert miou(pred, ref) == pytest.approx((3 / 4 + 0) / 2)
    assert miou(np.full((2, 2), 5), ref) == 0.0


def test_miou_ignores_void_reference_pixels():
    ref = np.array([[0, 255], [1, 1]])
    pred = np.array([[0, 4], [1, 1]])  # the only disagreement is under the void label
    assert miou(pred, ref) == 1.0
    assert miou(pred, ref, ignore=None, num_classes=256) < 1.0


def test_miou_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        miou(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="outside"):
        miou(np.full((2, 2), 21), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="no pixel"):
        miou(np.zeros((2, 2), int), np.full((2, 2), 255))


def test_segmenter_on_the_example_image(shared, example):
    pytest.importorskip("ai_edge_litert")
    from rdcodec.vision.reference import Segmenter, preprocess_center_crop

    seg = Segmenter(shared / "models" / "deeplabv3_mnv2_pascal_quant.tflite")
    assert (seg.height, seg.width, seg.pad) == (513, 513, 128)
    ref = seg.predict(example)  # 768x512: resized to 513x342, padded to 513x513
    assert ref.shape == example.shape[:2] and ref.dtype == np.uint8
    classes, counts = np.unique(ref, return_counts=True)
    assert set(classes) <= set(range(21))
    assert 3 in classes and counts[classes == 3][0] > 0.2 * ref.size  # kodim23: two parrots ("bird")

    buf = io.BytesIO()
    Image.fromarray(example).save(buf, "JPEG", quality=10)
    decoded = np.asarray(Image.open(buf).convert("RGB"))
    agreement = miou(seg.predict(decoded), ref)
    assert 0.5 < agreement < 1.0

    crop = preprocess_center_crop(Image.fromarray(example))  # protocol A's 224 crop
    assert seg.predict(crop).shape == (224, 224)

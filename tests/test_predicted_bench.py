"""benchmarks/predicted.py: base-only files decoded with and without the predicted residual."""

import numpy as np
import pytest

from .conftest import load_script

predicted = load_script("benchmarks/predicted.py")


def test_predicted_benchmark_measures_base_only_files(codec22, example):
    """On weights without a machine head (with one, beta = 1 is the head's image, not x_hat_1)."""
    img = np.ascontiguousarray(example[160:352, 256:512])   # MS-SSIM needs 161 pixels a side
    rows = predicted.measure(codec22, img, [0.0, 1.0])
    assert rows[0]["bpp"] < rows[1]["bpp"]
    for r in rows:   # the prediction moves the base-only file toward the original, at no bits
        assert r["rdcodec base predicted beta=0"]["psnr"] > r["rdcodec base beta=1"]["psnr"]
    res = predicted.curves([rows, rows])
    assert res["rdcodec base beta=1"]["bpp"] == pytest.approx([r["bpp"] for r in rows])
    assert sorted(res) == sorted(predicted.RENDERS)

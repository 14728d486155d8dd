"""Checks on a full-size Kodak photo from ../shared (skipped when it is absent)."""

import numpy as np
from PIL import Image

from .conftest import psnr


def test_full_size_round_trip_and_beta(shared, codec):
    img = np.asarray(Image.open(shared / "data" / "kodak" / "kodim05.png").convert("RGB"))
    c = codec.compress(img, 0.7)
    recon, _ = codec.decompress(c.data)
    np.testing.assert_array_equal(recon.render(0.0), c.recon.render(0.0))
    assert psnr(recon.render(0.0), img) > psnr(recon.render(1.0), img)
    assert 0.05 < 8 * len(c.data) / img[..., 0].size < 4.0

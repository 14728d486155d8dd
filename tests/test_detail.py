"""The residual layer's detail latent (rdcodec/model/detail.py): training forward, coding, files.

The model is the shipped one with a detail latent added whose decoder does not start at zero
(random, scaled down), exported as full weights to a temporary folder, so that every path
that carries ``e`` changes the pixels and a dropped or mis-decoded ``e`` shows.
"""

import numpy as np
import pytest
import torch

from rdcodec.bitstream import container
from rdcodec.errors import CorruptError
from rdcodec.model import tiling
from rdcodec.model.rdc import RDCModel

from .conftest import exported_codec, extended_model, load_script, psnr

E = 8


def _detail_model(seed: int = 0) -> RDCModel:
    torch.manual_seed(seed)
    model, _ = extended_model(None, ("detail_", "gain_e."), enhance=E)
    with torch.no_grad():  # a decoder that does something from the start
        last = model.detail_s.layers[-1]
        last.weight.normal_(0, 0.01)
    return model.eval()


@pytest.fixture(scope="module")
def dcodec(tmp_path_factory):
    codec = exported_codec(_detail_model(), tmp_path_factory.mktemp("w"), "detail")
    assert codec.m.model.config.enhance == E
    return codec


def test_zero_started_decoder_keeps_the_residual_branch():
    """A detail latent added to a trained branch starts as exactly that branch (warm start)."""
    model, base = extended_model(None, ("detail_", "gain_e."), enhance=E)
    model.eval()
    x, idx = torch.rand(2, 3, 64, 64), torch.tensor([0, 5])
    with torch.no_grad():
        a, b = base.forward_residual(x, idx), model.forward_residual(x, idx)
    assert torch.equal(a["r"], b["r"])
    assert torch.all(b["bits_e"] > 0) and torch.allclose(b["bits_s"], a["bits_s"] + b["bits_e"])


def test_training_forward_needs_the_image():
    model = _detail_model()
    base = model.forward_base(torch.rand(1, 3, 64, 64), torch.tensor([2]))
    with pytest.raises(ValueError, match="needs x"):
        model.residual_from_base(base, model.gain_s.at_levels(torch.tensor([2])))


def test_round_trip_and_layers(dcodec, crop):
    c = dcodec.compress(crop, 0.5, estimate=True)
    recon, notes = dcodec.decompress(c.data)
    assert notes == {}
    assert torch.equal(recon.x_hat_1, c.recon.x_hat_1) and torch.equal(recon.r, c.recon.r)
    # the residual layer holds s and then e; real bytes follow the model's estimate
    f = container.unpack(c.data)
    s_str, e_str = container.split_strings(f.residual, "residual layer", "s")
    assert len(s_str) > 0 and len(e_str) > 0
    assert c.estimated_bits["e"] > 0
    assert abs(8 * len(e_str) - c.estimated_bits["e"]) < 0.05 * c.estimated_bits["e"] + 64
    # beta moves quality: the residual (with e) brings the image closer
    assert psnr(recon.render(0.0), crop) > psnr(recon.render(1.0), crop)
    # the file is deterministic
    assert dcodec.compress(crop, 0.5).data == c.data


def test_detail_changes_the_residual(dcodec, crop):
    """e reaches the pixels: with every e symbol at its mean the residual differs."""
    c = dcodec.compress(crop, 0.8)
    stripped = container.strip_residual(c.data)
    predicted, notes = dcodec.decompress(stripped, predict_residual=True)
    assert notes.get("residual_predicted")
    assert not torch.equal(predicted.r, c.recon.r)
    # a stripped file still decodes, to the base image at every beta
    base_only, _ = dcodec.decompress(stripped)
    assert base_only.r is None and torch.equal(base_only.x_hat_1, c.recon.x_hat_1)


def test_damaged_detail_string(dcodec, crop):
    c = dcodec.compress(crop, 0.3)
    f = container.unpack(c.data)
    head = container.parse_header(c.data)
    bad = bytes([0xFF] * 6)  # a varint longer than the layer
    damaged = container.pack(head.weights_id, head.width, head.height, head.alpha_q, f.base, bad)
    with pytest.raises(CorruptError, match="residual layer is malformed"):
        dcodec.decompress(damaged)
    recon, notes = dcodec.decompress(damaged, ignore_residual_errors=True)
    assert "residual_dropped" in notes and recon.r is None


def test_tiled_images_decode(dcodec, example):
    """Over the tiling threshold the encoder sends e at its predicted mean; the file decodes
    tile by tile to what the encoder reconstructed, up to float rounding."""
    image = np.ascontiguousarray(example[100:280, 200:450])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiling, "MIN_TILED_PIXELS", 0)
        mp.setattr(tiling, "TILE", 6)
        c = dcodec.compress(image, 0.5)
        recon, _ = dcodec.decompress(c.data)
    whole, _ = dcodec.decompress(c.data)  # the same file, untiled
    assert torch.allclose(recon.r, whole.r, atol=1e-3)
    assert torch.allclose(recon.x_hat_1, c.recon.x_hat_1, atol=1e-3)


def test_estimated_rd_counts_both_layers_and_the_detail_latent(dcodec, crop):
    """scripts/estimated_rd.py: bits grow with alpha, beta = 0 counts the residual layer (with e),
    and its estimate is the coded file's size within a few percent."""
    est = load_script("scripts/estimated_rd.py")
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    rows = est.measure(dcodec.m.model, x, [0.0, 1.0])
    assert rows[0]["bpp"] < rows[1]["bpp"] and all(r["bpp"] > r["bpp_base"] for r in rows)
    assert all(r["psnr0"] > r["psnr1"] for r in rows)
    c = dcodec.compress(crop, 1.0)
    real = 8 * (len(c.data) - container.parse_header(c.data).size) / (crop.shape[0] * crop.shape[1])
    assert real == pytest.approx(rows[1]["bpp"], rel=0.05)

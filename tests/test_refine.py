"""Encoder-side latent refinement (rdcodec.refine): same format, a better file, reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rdcodec import api
from rdcodec.cli import main
from rdcodec.codec import Analysis
from rdcodec.errors import RdcError
from rdcodec.model import tiling
from rdcodec.model.gain import LAMBDAS
from rdcodec.refine import distortion_weight, refine_latent

from .conftest import EXAMPLE, psnr


def rd_cost(codec, data: bytes, image: np.ndarray, alpha: float) -> float:
    """The refinement objective measured for real: file bits per pixel + lambda 255^2 MSE at beta = 0."""
    recon, _ = codec.decompress(data)
    mse = 255.0 ** 2 / 10 ** (psnr(recon.render(0.0), image) / 10)
    return 8 * len(data) / image[..., 0].size + distortion_weight(codec.m.model, alpha) * mse


def test_distortion_weight_follows_the_trained_levels(codec):
    m = codec.m.model
    for n, lam in enumerate(LAMBDAS):
        assert distortion_weight(m, n / 5) == pytest.approx(lam * m.config.base_lambda_scale)
    # between neighbours: log-linear, like the gains (the geometric mean at the midpoint)
    mid = distortion_weight(m, 0.5)
    assert mid == pytest.approx(math.sqrt(LAMBDAS[2] * LAMBDAS[3]) * m.config.base_lambda_scale)


def test_zero_steps_is_the_plain_encoder(codec, crop):
    assert codec.compress(crop, 0.4, refine=0).data == codec.compress(crop, 0.4).data
    an = codec.analyze(crop)
    assert refine_latent(codec.m.model, codec._padded(crop), an.y, 0.4, codec.m.gains(0.4), 0, *crop.shape[:2]) is an.y


@pytest.mark.parametrize("alpha", [0.2, 0.8])
def test_refined_file_decodes_exactly_and_costs_less(codec, crop, alpha):
    plain = codec.compress(crop, alpha)
    refined = codec.compress(crop, alpha, refine=30)
    assert refined.data != plain.data
    recon, _ = codec.decompress(refined.data)  # the ordinary decoder, no refinement knowledge
    for beta in (0.0, 1.0):
        assert np.array_equal(recon.render(beta), refined.recon.render(beta))
    assert rd_cost(codec, refined.data, crop, alpha) < rd_cost(codec, plain.data, crop, alpha)


def test_refinement_on_the_32_pixel_grid(codec, example):
    """A 96x160 image has 6x10 latents (not a multiple of 4): the refinement's hyper path pads and
    crops like the coder's, and the refined version-5 file decodes exactly and costs less."""
    img = np.ascontiguousarray(example[300:396, 100:260])
    plain, refined = codec.compress(img, 0.6), codec.compress(img, 0.6, refine=20)
    assert refined.data[4] == plain.data[4] == 5 and refined.data != plain.data
    recon, _ = codec.decompress(refined.data)
    assert np.array_equal(recon.render(0.0), refined.recon.render(0.0))
    assert rd_cost(codec, refined.data, img, 0.6) < rd_cost(codec, plain.data, img, 0.6)


def test_refinement_is_reproducible_and_leaves_global_state_alone(codec, crop):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    flags = [p.requires_grad for p in codec.m.model.parameters()]
    steps = []
    a = codec.compress(crop, 0.6, refine=5, progress=lambda i, n: steps.append((i, n)))
    assert steps == [(i, 5) for i in range(1, 6)]
    assert torch.equal(torch.get_rng_state(), before)
    assert [p.requires_grad for p in codec.m.model.parameters()] == flags
    assert all(p.grad is None for p in codec.m.model.parameters())
    assert codec.compress(crop, 0.6, refine=5).data == a.data


def test_refinement_errors(codec, crop, monkeypatch):
    with pytest.raises(ValueError, match="refine"):
        codec.compress(crop, 0.5, refine=-1)
    an = codec.analyze(crop)
    with pytest.raises(ValueError, match="original image"):
        codec.compress(Analysis(an.y, an.height, an.width), 0.5, refine=2)
    monkeypatch.setattr(tiling, "MIN_TILED_PIXELS", 64 * 64)  # the crop now counts as a tiled image
    with pytest.raises(RdcError, match="up to 4096 pixels"):
        codec.compress(crop, 0.5, refine=2)


def test_cli_refine(tmp_path, crop):
    from PIL import Image

    src = tmp_path / "crop.png"
    Image.fromarray(crop).save(src)
    out = tmp_path / "crop.rdc"
    r = CliRunner().invoke(main, ["encode", str(src), "-a", "0.5", "--refine", "4", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "refining the latent (4 steps)" in r.output
    assert out.read_bytes() == api.encode(crop, 0.5, refine=4)
    dec = tmp_path / "crop_dec.png"
    assert CliRunner().invoke(main, ["decode", str(out), "-b", "0", "-o", str(dec)]).exit_code == 0
    assert np.asarray(Image.open(dec)).shape == crop.shape


@pytest.mark.parametrize("target", [["--target-size", "2KB"], ["--target-psnr", "30"], ["--target-bpp", "0.5"]])
def test_cli_refine_with_a_target_is_a_usage_error(tmp_path, target):
    out = tmp_path / "x.rdc"
    r = CliRunner().invoke(main, ["encode", str(EXAMPLE), "--refine", "10", *target, "-o", str(out)])
    assert r.exit_code == 2
    assert "work with --alpha, not with" in r.output
    assert not out.exists()


def test_refinement_takes_another_objective(codec, crop):
    an = codec.analyze(crop)
    target = torch.zeros_like(an.y)
    y = refine_latent(codec.m.model, codec._padded(crop), an.y, 0.4, codec.m.gains(0.4), 5, *crop.shape[:2],
                      objective=lambda lat: (lat - target).square().sum())
    assert (y - target).square().sum() < (an.y - target).square().sum()   # it minimized the given loss

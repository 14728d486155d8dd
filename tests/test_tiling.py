"""Tiled transforms for large images (rdcodec.model.tiling), checked on a small image by
forcing tiling with a small tile size."""

import contextlib

import numpy as np
import pytest
import torch

from rdcodec.codec import PAD
from rdcodec.model import tiling

from .conftest import psnr

H, W = 180, 250  # pads to 192 x 256: a 12 x 16 latent grid, not a multiple of the tile
FORCED_TILE = 6  # latent positions: 2 x 3 tiles, each with interior and border edges


def _no_clock(_stage):
    return contextlib.nullcontext()


@pytest.fixture(scope="module")
def image(example):
    return np.ascontiguousarray(example[100:100 + H, 200:200 + W])


def _force(mp: pytest.MonkeyPatch) -> None:
    """Tile every image, with small tiles."""
    mp.setattr(tiling, "MIN_TILED_PIXELS", 0)
    mp.setattr(tiling, "TILE", FORCED_TILE)


@pytest.fixture
def forced(monkeypatch):
    _force(monkeypatch)


@pytest.fixture(scope="module")
def untiled(codec, image):
    an = codec.analyze(image)
    c = codec.compress(an, 0.5)
    recon, _ = codec.decompress(c.data)
    return an, c, recon


@pytest.fixture(scope="module")
def tiled(codec, image):
    with pytest.MonkeyPatch.context() as mp:
        _force(mp)
        c = codec.compress(image, 0.5)
        recon, notes = codec.decompress(c.data)
    return c, recon, notes


def test_spans_partition_evenly():
    for n in (1, 7, 64, 65, 250, 376):
        s = tiling.spans(n, 64)
        assert s[0][0] == 0 and s[-1][1] == n
        assert all(b == c for (_, b), (c, _) in zip(s, s[1:]))
        sizes = [b - a for a, b in s]
        assert max(sizes) <= 64 and max(sizes) - min(sizes) <= 1
    assert len(list(tiling.tiles(16, 24, tiled=False))) == 1


def test_threshold():
    """Kodak-size and up to 4 MP images run whole (unchanged bytes); a 24 MP one is tiled."""
    assert not tiling.is_tiled(512, 768)
    assert not tiling.is_tiled(2048, 2048)
    assert tiling.is_tiled(2048, 2112)
    hp, wp = 4000 + (-4000 % PAD), 6000 + (-6000 % PAD)
    assert tiling.is_tiled(hp, wp)
    assert len(list(tiling.tiles(hp // 16, wp // 16, tiled=True))) == 4 * 6


def test_tiled_analysis_equals_untiled(codec, image, untiled, forced):
    y = codec.analyze(image).y
    assert torch.allclose(y, untiled[0].y, rtol=0, atol=1e-4), (y - untiled[0].y).abs().max()


def test_tiled_synthesis_equals_untiled(codec, untiled, forced):
    y_hat = torch.round(untiled[0].y)
    y_hat_2 = y_hat * 0.9
    m = codec.m.model
    x1, r1 = tiling.synthesis(m.g_s, m.rrn, y_hat, y_hat_2, H, W, _no_clock)
    x0, feats = m.g_s(y_hat)
    r0 = m.rrn(y_hat_2, feats)
    assert x1.shape == r1.shape == (1, 3, H, W)
    assert torch.allclose(x1, x0[..., :H, :W], rtol=0, atol=1e-4)
    assert torch.allclose(r1, r0[..., :H, :W], rtol=0, atol=1e-4)


def with_random_blocks(codec, module: str, **fields):
    """The shipped model with the config ``fields`` (block counts) changed, its other tensors
    loaded and the new blocks of ``module`` (``"rrn"``, ``"g_s"``, ``"g_a"``) set to random,
    nonzero values (zero-started blocks would compute nothing)."""
    from rdcodec.model.rdc import ModelConfig, RDCModel
    from rdcodec.train.loop import load_matching

    m = RDCModel(ModelConfig(**{**codec.m.model.config.to_dict(), **fields}))
    load_matching(m, codec.m.model.state_dict())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in getattr(m, module).refine.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return m.eval()


def _as_codec(model, codec):
    from rdcodec.codec import Codec
    from rdcodec.model.rdc import CodingModel

    return Codec(CodingModel(model, torch.from_numpy(codec.m.z_pmf)), 7, "blocky")


@pytest.fixture(scope="module")
def blocky(codec):
    """The shipped model with 2 refinement blocks per scale of rrn, at random (nonzero) values."""
    return with_random_blocks(codec, "rrn", rrn_blocks=2)


def test_synthesis_halo_follows_the_receptive_field():
    assert tiling.synthesis_halo(0) == tiling.HALO == 2  # the paper's branch: as derived by hand
    assert [tiling.synthesis_halo(b) for b in (1, 2, 3)] == [4, 6, 8]
    # g_s's blocks at H/4 and H/8 only: the walk of the docstring, by hand
    assert [tiling.synthesis_halo(0, b) for b in (1, 2)] == [4, 5]
    assert tiling.synthesis_halo(1, 1) >= max(tiling.synthesis_halo(1), tiling.synthesis_halo(0, 1))


def _blocky_synthesis(blocky, untiled):
    y_hat = torch.round(untiled[0].y)
    with torch.no_grad():
        x1, r1 = tiling.synthesis(blocky.g_s, blocky.rrn, y_hat, y_hat * 0.9, H, W, _no_clock,
                                  blocky.config.rrn_blocks)
        x0, feats = blocky.g_s(y_hat)
        r0 = blocky.rrn(y_hat * 0.9, feats)
    return r1, r0[..., :H, :W]


def test_tiled_synthesis_with_refinement_blocks_equals_untiled(blocky, untiled, forced):
    r1, r0 = _blocky_synthesis(blocky, untiled)
    assert r0.abs().max() > 0.01
    assert torch.allclose(r1, r0, rtol=0, atol=1e-4), (r1 - r0).abs().max()


def test_refinement_blocks_need_their_wider_halo(blocky, untiled, forced, monkeypatch):
    """One position less than synthesis_halo reaches the kept core: errors well above float
    rounding (the lost inputs enter only through edge taps, hence the relative bound)."""
    right = (lambda r: (r[0] - r[1]).abs().max())(_blocky_synthesis(blocky, untiled))
    halo = tiling.synthesis_halo(2)
    monkeypatch.setattr(tiling, "synthesis_halo", lambda *blocks: halo - 1)
    short = (lambda r: (r[0] - r[1]).abs().max())(_blocky_synthesis(blocky, untiled))
    assert short > 1e-5 and short > 5 * right, (short, right)


def test_analysis_halo_follows_the_receptive_field():
    assert tiling.analysis_halo(0) == tiling.HALO == 2  # as derived by hand
    assert [tiling.analysis_halo(b) for b in (1, 2, 3)] == [4, 5, 7]


def test_codec_tiles_an_analysis_with_encoder_blocks_with_its_wider_halo(codec, image, monkeypatch):
    """g_a with refinement blocks (from the model config, through ``Codec``): a tiled analysis
    equals the untiled one, and the no-block halo would not."""
    bc = _as_codec(with_random_blocks(codec, "g_a", encoder_blocks=1), codec)
    ref = bc.analyze(image).y
    _force(monkeypatch)
    y = bc.analyze(image).y
    assert (ref - codec.analyze(image).y).abs().max() > 0.1  # the blocks do something
    assert torch.allclose(y, ref, rtol=0, atol=1e-4), (y - ref).abs().max()
    monkeypatch.setattr(tiling, "analysis_halo", lambda blocks: tiling.HALO)
    assert (bc.analyze(image).y - ref).abs().max() > 1e-3


def test_halo_below_the_receptive_field_is_wrong(codec, image, untiled, forced, monkeypatch):
    """The halo is not larger than it must be: one latent position less changes the result."""
    monkeypatch.setattr(tiling, "analysis_halo", lambda blocks: tiling.HALO - 1)
    assert (codec.analyze(image).y - untiled[0].y).abs().max() > 1e-2


def test_tiled_file_round_trip(image, untiled, tiled):
    c, recon, notes = tiled
    assert notes == {}
    for beta in (0.0, 0.5, 1.0):
        out = recon.render(beta)
        np.testing.assert_array_equal(out, c.recon.render(beta))  # encoder and decoder agree exactly
        ref = untiled[2].render(beta)
        assert np.abs(out.astype(int) - ref).max() <= 1
        assert abs(psnr(out, image) - psnr(ref, image)) < 0.05


def test_tiled_bytes_are_deterministic(codec, image, tiled, forced):
    """Same bytes again, and with one thread (the residual layer is kept, so the layer decision
    after the synthesis cannot change them)."""
    assert tiled[0].recon.r is not None
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        again = codec.compress(image, 0.5, reconstruct=False, check_residual=False).data
    finally:
        torch.set_num_threads(n)
    assert again == tiled[0].data


def test_timings_are_reported(codec, crop):
    t_enc, t_dec = {}, {}
    c = codec.compress(crop, 0.5, check_residual=True, timings=t_enc)
    codec.decompress(c.data, timings=t_dec)
    assert {"analysis", "hyper", "entropy", "synthesis", "residual", "decision"} <= set(t_enc)
    t_fast = {}
    codec.compress(crop, 0.5, reconstruct=False, timings=t_fast)  # what `rdcodec encode` runs
    assert "synthesis" not in t_fast and "decision" not in t_fast
    assert {"hyper", "entropy", "synthesis", "residual"} <= set(t_dec)
    assert all(v >= 0 for v in (*t_enc.values(), *t_dec.values()))


def test_codec_tiles_a_blocks_model_with_its_wider_halo(blocky, codec, image, monkeypatch):
    """Through ``Codec`` (whose coding copy wraps the residual reconstruction, so the block count
    must come from the model config): a tiled decode of a model with refinement blocks equals
    the untiled one, and the no-block halo would not."""
    bc = _as_codec(blocky, codec)
    data = bc.compress(image, 0.5, reconstruct=False).data
    ref, _ = bc.decompress(data)
    _force(monkeypatch)
    rec, _ = bc.decompress(data)
    assert ref.r.abs().max() > 0.01
    assert torch.allclose(rec.r, ref.r, rtol=0, atol=1e-4), (rec.r - ref.r).abs().max()
    monkeypatch.setattr(tiling, "synthesis_halo", lambda *blocks: tiling.HALO)
    short, _ = bc.decompress(data)
    assert (short.r - ref.r).abs().max() > 1e-3


@pytest.fixture(scope="module")
def synthesis_blocky(codec):
    """The shipped model with one refinement block at H/8 and at H/4 of g_s, at random values."""
    return _as_codec(with_random_blocks(codec, "g_s", synthesis_blocks=1), codec)


@pytest.mark.parametrize("halo", ["exact", "one less"])
def test_codec_tiles_a_synthesis_blocks_model_with_its_wider_halo(synthesis_blocky, codec, image, monkeypatch, halo):
    """g_s with refinement blocks (from the model config, through ``Codec``): a tiled decode
    equals the untiled one in both layers, and one latent position less of halo does not."""
    data = synthesis_blocky.compress(image, 0.5, reconstruct=False).data
    ref, _ = synthesis_blocky.decompress(data)
    plain, _ = codec.decompress(codec.compress(image, 0.5, reconstruct=False).data)
    assert (ref.x_hat_1 - plain.x_hat_1).abs().max() > 0.01  # the blocks do something
    _force(monkeypatch)
    if halo == "one less":
        short = tiling.synthesis_halo(0, 1) - 1
        monkeypatch.setattr(tiling, "synthesis_halo", lambda *blocks: short)
    rec, _ = synthesis_blocky.decompress(data)
    err = max((rec.x_hat_1 - ref.x_hat_1).abs().max(), (rec.r - ref.r).abs().max())
    assert (err <= 1e-4) == (halo == "exact"), err

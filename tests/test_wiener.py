"""The Wiener output filter (rdcodec.wiener): its definition, fit, bytes, and its files."""

import doctest

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rdcodec import wiener
from rdcodec.bitstream import container
from rdcodec.entropy.tables import Y_RANGE
from rdcodec.errors import CorruptError
from rdcodec.wiener import OutputFilter, diamond

from .conftest import psnr

SHAPES = [(r, p) for r in wiener.RADII for p in wiener.PHASES]


def test_module_examples():
    assert doctest.testmod(wiener).failed == 0


def test_diamonds_nest_and_have_their_sizes():
    for r in wiener.RADII:
        d = diamond(r)
        assert len(d) == len(set(d)) == 2 * r * (r + 1) and (0, 0) not in d
        assert all(abs(dy) + abs(dx) <= r for dy, dx in d)
        if r > 2:
            assert d[:len(diamond(r - 1))] == diamond(r - 1)  # the fit reads smaller shapes as prefixes


def _random_filter(rng, radius, phases, scale=40):
    taps = len(diamond(radius))
    coef = rng.integers(-scale, scale + 1, size=(phases, 3, taps + 4)).astype(np.int32)
    return OutputFilter(radius, phases, coef)


@pytest.mark.parametrize("radius, phases", SHAPES)
def test_bytes_round_trip(radius, phases):
    f = _random_filter(np.random.default_rng(radius * 10 + phases), radius, phases)
    g = OutputFilter.from_bytes(f.to_bytes())
    assert g == f and g.coef.dtype == np.int32


def test_extreme_coefficients_round_trip():
    coef = np.full((4, 3, len(diamond(5)) + 4), Y_RANGE, dtype=np.int32)
    coef[:, 1] = -Y_RANGE
    f = OutputFilter(5, 4, coef)
    assert OutputFilter.from_bytes(f.to_bytes()) == f


@pytest.mark.parametrize("data, why", [(b"", "empty"), (b"\x07" + bytes(9), "radius 7"),
                                       (b"\x02" + bytes(5), "truncated"), (b"\x02" + bytes(9) + b"\x01", "words")])
def test_malformed_bytes_are_refused(data, why):
    with pytest.raises(CorruptError):
        OutputFilter.from_bytes(data)


def test_shape_and_coefficients_must_agree():
    with pytest.raises(ValueError):
        OutputFilter(6, 1, np.zeros((1, 3, 4), dtype=np.int32))
    with pytest.raises(ValueError):
        OutputFilter(2, 4, np.zeros((1, 3, 16), dtype=np.int32))


def _image(rng, h=37, w=52):
    """A smooth random (1, 3, h, w) float32 image in [0.1, 0.9] (odd sizes on purpose)."""
    x = torch.from_numpy(rng.random((1, 3, h + 4, w + 4))).float()
    x = F.avg_pool2d(x, 5, stride=1)
    return 0.1 + 0.8 * (x - x.min()) / (x.max() - x.min())


def _by_definition(f: OutputFilter, x: torch.Tensor) -> np.ndarray:
    """The module docstring's formula, pixel by pixel in float64 with the border replicated."""
    v = x[0].double().numpy() * 255
    h, w = v.shape[1:]
    taps = len(diamond(f.radius))
    steps = np.array([2.0 ** -wiener.TAP_SHIFT] * taps + [2.0 ** -wiener.CROSS_SHIFT] * 3
                     + [2.0 ** -wiener.BIAS_SHIFT])
    out = np.empty_like(v)
    for c in range(3):
        for i in range(h):
            for j in range(w):
                k = (i % 2) * 2 + j % 2 if f.phases == 4 else 0
                q = f.coef[k, c] * steps
                acc = v[c, i, j]
                for t, (dy, dx) in enumerate(diamond(f.radius)):
                    acc += q[t] * (v[c, min(max(i + dy, 0), h - 1), min(max(j + dx, 0), w - 1)] - v[c, i, j])
                acc += sum(q[taps + cc] * (v[cc, i, j] - 128) for cc in range(3)) + q[-1]
                out[c, i, j] = acc
    return out / 255


@pytest.mark.parametrize("radius, phases", [(2, 1), (3, 4), (5, 1)])
def test_apply_is_the_documented_formula(radius, phases):
    rng = np.random.default_rng(radius)
    x, f = _image(rng), _random_filter(rng, radius, phases)
    want = _by_definition(f, x)
    for band_rows in (512, 4):  # one band, and bands smaller than the filter's reach
        got = f.apply(x, band_rows=band_rows)[0].double().numpy()
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_zero_filter_is_the_identity():
    x = _image(np.random.default_rng(0))
    f = OutputFilter(3, 4, np.zeros((4, 3, len(diamond(3)) + 4), dtype=np.int32))
    assert torch.equal(f.apply(x), x)


def test_fit_finds_a_known_filter():
    """On an image whose target is a known filter of it, the fit gives that filter back (to the
    target's 8-bit rounding) and predicts the squared error that is left."""
    rng = np.random.default_rng(5)
    x = _image(rng, 96, 128)
    true = _random_filter(rng, 2, 4, scale=60)
    target = (true.apply(x)[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    stats = wiener.normal_equations(x, target)
    got, sse = wiener.fit(stats, 2, 4)
    assert np.abs(got.coef - true.coef).max() <= 3
    measured = float(((got.apply(x)[0].permute(1, 2, 0).double().numpy() * 255 - target) ** 2).sum())
    assert sse == pytest.approx(measured, rel=1e-3)
    assert sse < 0.2 * target.size  # about the rounding noise (1/12 per value), far below the unfiltered error
    assert float(stats[2].sum()) > 20 * sse


def test_choose_declines_when_there_is_nothing_to_gain():
    x = _image(np.random.default_rng(1), 64, 64)
    x = (x * 255).round() / 255  # the target exactly: no filter can help
    target = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    x = x + 1e-3 * torch.randn_like(x) / 255  # a little noise no filter should pay to remove
    assert wiener.choose(x, target, file_bits=8 * 2000) is None


def test_choose_pays_only_when_the_file_is_large_enough():
    """The same gain is worth a filter in a large file (cheap bits) and not in a tiny one."""
    rng = np.random.default_rng(2)
    x = _image(rng, 128, 128)
    blur = OutputFilter(2, 1, np.tile(np.array([40] * 4 + [10] * 8 + [0, 0, 0, 0], dtype=np.int32), (1, 3, 1)))
    target = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    blurred = blur.apply(x)
    assert wiener.choose(blurred, target, file_bits=8 * 200_000) is not None
    assert wiener.choose(blurred, target, file_bits=8 * 20) is None


# -- files ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def filtered(codec, example):
    """The bundled 768x512 example at alpha 1 with and without the filter."""
    return codec.compress(example, 1.0, output_filter=True), codec.compress(example, 1.0)


def test_filtered_file_is_version_2_and_decodes_as_encoded(codec, example, filtered):
    with_f, without = filtered
    h = container.parse_header(with_f.data)
    assert (h.version, h.has_filter) == (2, True)
    assert container.parse_header(without.data).version == 1
    rec, notes = codec.decompress(with_f.data)
    assert notes == {}
    for beta in (0.0, 0.5, 1.0):
        np.testing.assert_array_equal(rec.render(beta), with_f.recon.render(beta))
    assert container.unpack(with_f.data).base == container.unpack(without.data).base
    np.testing.assert_array_equal(rec.render(1.0), without.recon.render(1.0))  # the base image is untouched
    gain = psnr(rec.render(0.0), example) - psnr(without.recon.render(0.0), example)
    n_with, n_without = len(with_f.data), len(without.data)
    # worth more than its bytes: the dB that its extra bytes would buy at the codec's own slope
    assert gain > 0.1 and gain > wiener.RD_SLOPE_DB * np.log(n_with / n_without), (gain, n_with, n_without)


def test_filtered_file_without_its_residual_layer_is_the_base_image(codec, filtered):
    with_f, _ = filtered
    stripped = container.strip_residual(with_f.data)
    assert container.parse_header(stripped).version == 1
    for data in (stripped, with_f.data[:container.base_only_size(with_f.data)]):
        rec, _ = codec.decompress(data)
        np.testing.assert_array_equal(rec.render(0.0), with_f.recon.render(1.0))


def test_filtered_decode_does_not_depend_on_threads(codec, filtered):
    n = torch.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out.append(codec.decompress(filtered[0].data)[0].render(0.0))
    finally:
        torch.set_num_threads(n)
    np.testing.assert_array_equal(out[0], out[1])


def _with_filter_bytes(data: bytes, flt: bytes) -> bytes:
    f = container.unpack(data)
    h = f.header
    _, s = container.split_strings(f.residual, "residual layer", "output filter")
    return container.pack(h.weights_id, h.width, h.height, h.alpha_q, f.base, s, flt)


def test_damaged_filter_is_refused_or_dropped(codec, filtered):
    bad = _with_filter_bytes(filtered[0].data, b"\x09" + bytes(9))  # checksums fine, radius 9
    with pytest.raises(CorruptError, match="output filter"):
        codec.decompress(bad)
    rec, notes = codec.decompress(bad, ignore_residual_errors=True)
    assert "radius" in notes["residual_dropped"]
    np.testing.assert_array_equal(rec.render(0.0), filtered[0].recon.render(1.0))


def test_output_filter_needs_the_residual_layer(codec, crop):
    c = codec.compress(crop, 0.5, residual=False, output_filter=True)
    assert container.parse_header(c.data).version == 1

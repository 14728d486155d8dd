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
# every radius and phase count plain, and with each merge table and tap layout at some radius
LAYOUTS = ([(r, p, wiener.MERGES[0], False) for r, p in SHAPES]
           + [(2 + i % 4, (1, 4)[i % 2], m, bool(sh)) for i, (m, sh) in
              enumerate((m, sh) for m in wiener.MERGES for sh in (0, 1)) if m != wiener.MERGES[0] or sh])


def test_module_examples():
    assert doctest.testmod(wiener).failed == 0


def test_diamonds_nest_and_have_their_sizes():
    for r in wiener.RADII:
        d = diamond(r)
        assert len(d) == len(set(d)) == 2 * r * (r + 1) and (0, 0) not in d
        assert all(abs(dy) + abs(dx) <= r for dy, dx in d)
        if r > 2:
            assert d[:len(diamond(r - 1))] == diamond(r - 1)  # the fit reads smaller shapes as prefixes


def _random_filter(rng, radius, phases, scale=40, merge=wiener.MERGES[0], shared=False):
    taps = len(diamond(radius))
    coef = rng.integers(-scale, scale + 1, size=(phases, max(merge) + 1, 3, taps + 4)).astype(np.int32)
    if shared:
        coef[:, :, 1:, :taps] = coef[:, :, :1, :taps]
    return OutputFilter(radius, phases, coef, merge, shared)


@pytest.mark.parametrize("radius, phases, merge, shared", LAYOUTS)
def test_bytes_round_trip(radius, phases, merge, shared):
    f = _random_filter(np.random.default_rng(radius * 10 + phases), radius, phases, merge=merge, shared=shared)
    data = f.to_bytes()
    g = OutputFilter.from_bytes(data)
    assert g == f and g.coef.dtype == np.int32
    assert f.format_version == (3 if shared or max(merge) else 2)
    if f.format_version == 3:  # classes and shared taps are refused in a version-2 file
        with pytest.raises(CorruptError, match="version 2"):
            OutputFilter.from_bytes(data, version=2)
    else:
        assert OutputFilter.from_bytes(data, version=2) == f


def test_shared_taps_cost_fewer_bytes():
    rng = np.random.default_rng(3)
    f = _random_filter(rng, 5, 4, shared=True)
    unshared = OutputFilter(5, 4, f.coef)
    assert f.nbytes < 0.5 * unshared.nbytes


def test_extreme_coefficients_round_trip():
    coef = np.full((4, 1, 3, len(diamond(5)) + 4), Y_RANGE, dtype=np.int32)
    coef[:, :, 1] = -Y_RANGE
    f = OutputFilter(5, 4, coef)
    assert OutputFilter.from_bytes(f.to_bytes()) == f


@pytest.mark.parametrize("data, why", [(b"", "empty"), (b"\x07" + bytes(9), "radius 7"),
                                       (b"\x02" + bytes(5), "truncated"), (b"\x02" + bytes(9) + b"\x01", "words"),
                                       (b"\x22" + bytes([0, 2, 1, 0, 0]) + bytes(40), "merge not in first-use order"),
                                       (b"\x22" + bytes([0, 0, 0, 0, 0]) + bytes(40), "classes flag, one group"),
                                       (b"\x22" + bytes([0, 1, 2, 3, 5]) + bytes(60), "merge group 5"),
                                       (b"\x22" + bytes([0, 1]), "merge table truncated")])
def test_malformed_bytes_are_refused(data, why):
    with pytest.raises(CorruptError):
        OutputFilter.from_bytes(data)


def test_shape_and_coefficients_must_agree():
    with pytest.raises(ValueError):
        OutputFilter(6, 1, np.zeros((1, 1, 3, 4), dtype=np.int32))
    with pytest.raises(ValueError):
        OutputFilter(2, 4, np.zeros((1, 1, 3, 16), dtype=np.int32))
    with pytest.raises(ValueError):  # three groups need three coefficient sets
        OutputFilter(2, 1, np.zeros((1, 1, 3, 16), dtype=np.int32), merge=(0, 1, 2, 0, 0))
    with pytest.raises(ValueError):  # groups named out of first-use order
        OutputFilter(2, 1, np.zeros((1, 2, 3, 16), dtype=np.int32), merge=(0, 0, 0, 0, 1)[::-1])
    coef = np.zeros((1, 1, 3, 16), dtype=np.int32)
    coef[0, 0, 2, 0] = 1
    with pytest.raises(ValueError):  # shared taps that differ between channels
        OutputFilter(2, 1, coef, shared=True)


def _image(rng, h=37, w=52):
    """A smooth random (1, 3, h, w) float32 image in [0.1, 0.9] (odd sizes on purpose)."""
    x = torch.from_numpy(rng.random((1, 3, h + 4, w + 4))).float()
    x = F.avg_pool2d(x, 5, stride=1)
    return 0.1 + 0.8 * (x - x.min()) / (x.max() - x.min())


def _classes_by_definition(x: torch.Tensor) -> np.ndarray:
    """``classify``'s docstring, pixel by pixel in Python integers with the borders replicated."""
    q = np.rint(np.clip(x[0].double().numpy(), 0, 1) * 255).astype(np.int64)
    y = (77 * q[0] + 150 * q[1] + 29 * q[2] + 128) >> 8
    h, w = y.shape

    def at(i, j):
        return int(y[min(max(i, 0), h - 1), min(max(j, 0), w - 1)])

    def lap(i, j):
        i, j = min(max(i, 0), h - 1), min(max(j, 0), w - 1)
        c = 2 * at(i, j)
        return (abs(c - at(i, j - 1) - at(i, j + 1)), abs(c - at(i - 1, j) - at(i + 1, j)),
                abs(c - at(i - 1, j - 1) - at(i + 1, j + 1)), abs(c - at(i - 1, j + 1) - at(i + 1, j - 1)))

    laps = {(i, j): lap(i, j) for i in range(h) for j in range(w)}
    out = np.zeros((h, w), dtype=np.int64)
    for i in range(h):
        for j in range(w):
            gh, gv, gd, ga = (sum(laps[min(max(i + a, 0), h - 1), min(max(j + b, 0), w - 1)][k]
                                  for a in range(-2, 3) for b in range(-2, 3)) for k in range(4))
            hv, da = (max(gh, gv), min(gh, gv)), (max(gd, ga), min(gd, ga))
            if hv[0] * da[1] >= da[0] * hv[1]:
                out[i, j] = (1 if gh > gv else 2) if hv[0] > 2 * hv[1] else 0
            else:
                out[i, j] = (3 if gd > ga else 4) if da[0] > 2 * da[1] else 0
    return out


def _textured(rng, h=37, w=52):
    """An image with oriented stripes, flat areas and noise, so that every class occurs."""
    yy, xx = np.mgrid[0:h, 0:w]
    chans = []
    for f in (1.3, 0.9, 1.7):  # a frequency per channel, so that no channel is a mix of the others
        img = np.where(xx < w // 4, 0.5 + 0.3 * np.sin(xx * f), 0.5)  # vertical stripes
        img = np.where((xx >= w // 4) & (xx < w // 2), 0.5 + 0.3 * np.sin(yy * f), img)  # horizontal
        img = np.where((xx >= w // 2) & (yy < h // 2), 0.5 + 0.3 * np.sin((xx + yy) * f), img)
        chans.append(np.where((xx >= w // 2) & (yy >= h // 2), 0.5 + 0.3 * np.sin((xx - yy) * f), img))
    x = np.stack(chans) + 0.02 * rng.standard_normal((3, h, w))
    return torch.from_numpy(x[None]).float()


def test_classify_is_its_documented_definition_in_every_band():
    x = _textured(np.random.default_rng(0))
    want = _classes_by_definition(x)
    assert set(np.unique(want)) == {0, 1, 2, 3, 4}
    got = wiener.classify(x)
    np.testing.assert_array_equal(got.numpy(), want)
    for top, bottom in ((0, 1), (0, 5), (3, 4), (10, 23), (30, 37)):
        np.testing.assert_array_equal(wiener.classify(x, top, bottom).numpy(), want[top:bottom])


def test_classify_names_the_directions():
    """Vertical stripes vary along rows (horizontal second differences dominate): class 1;
    horizontal stripes class 2; the two diagonals 3 and 4; a flat image 0."""
    yy, xx = np.mgrid[0:24, 0:24]
    for pattern, want in ((xx, 1), (yy, 2), (xx - yy, 4), (xx + yy, 3)):
        v = 0.5 + 0.3 * np.cos(pattern * 2.0)
        got = wiener.classify(torch.from_numpy(np.stack([v] * 3)[None]).float())
        assert (got[4:-4, 4:-4] == want).all(), (want, got[4:-4, 4:-4])
    assert (wiener.classify(torch.full((1, 3, 9, 9), 0.3)) == 0).all()


def _by_definition(f: OutputFilter, x: torch.Tensor) -> np.ndarray:
    """The module docstring's formula, pixel by pixel in float64 with the border replicated."""
    group = np.asarray(f.merge)[_classes_by_definition(x)]
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
                q = f.coef[k, group[i, j], c] * steps
                acc = v[c, i, j]
                for t, (dy, dx) in enumerate(diamond(f.radius)):
                    acc += q[t] * (v[c, min(max(i + dy, 0), h - 1), min(max(j + dx, 0), w - 1)] - v[c, i, j])
                acc += sum(q[taps + cc] * (v[cc, i, j] - 128) for cc in range(3)) + q[-1]
                out[c, i, j] = acc
    return out / 255


@pytest.mark.parametrize("radius, phases, merge, shared", [(2, 1, (0,) * 5, False), (3, 4, (0,) * 5, False),
                                                            (5, 1, (0,) * 5, False), (2, 4, (0, 1, 2, 3, 4), False),
                                                            (3, 1, (0, 1, 2, 0, 0), True)])
def test_apply_is_the_documented_formula(radius, phases, merge, shared):
    rng = np.random.default_rng(radius)
    x = _textured(rng) if max(merge) else _image(rng)
    f = _random_filter(rng, radius, phases, merge=merge, shared=shared)
    want = _by_definition(f, x)
    for band_rows in (512, 4):  # one band, and bands smaller than the filter's reach
        got = f.apply(x, band_rows=band_rows)[0].double().numpy()
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_zero_filter_is_the_identity():
    x = _image(np.random.default_rng(0))
    f = OutputFilter(3, 4, np.zeros((4, 3, 3, len(diamond(3)) + 4), dtype=np.int32), merge=(0, 1, 2, 0, 0))
    assert torch.equal(f.apply(x), x)


@pytest.mark.parametrize("merge, shared", [((0,) * 5, False), ((0, 1, 2, 0, 0), False), ((0,) * 5, True),
                                           ((0, 1, 2, 3, 3), True)])
def test_fit_finds_a_known_filter(merge, shared):
    """On an image whose target is a known filter of it, the fit gives that filter back (to the
    target's 8-bit rounding) and predicts the squared error that is left."""
    rng = np.random.default_rng(5)
    x = 0.7 * _textured(rng, 96, 128) + 0.3 * _image(rng, 96, 128) if max(merge) else _image(rng, 96, 128)
    true = _random_filter(rng, 2, 4, scale=60, merge=merge, shared=shared)
    target = (true.apply(x)[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    stats = wiener.normal_equations(x, target)
    got, sse = wiener.fit(stats, 2, 4, merge, shared)
    assert got.merge == merge and got.shared == shared
    off = np.abs(got.coef - true.coef).max(axis=(0, 1, 2))
    assert off[:12].max() <= 3 and off[12:15].max() <= 12 and off[15] <= 3  # cross terms: 4x finer steps
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
    blur = OutputFilter(2, 1, np.tile(np.array([40] * 4 + [10] * 8 + [0, 0, 0, 0], dtype=np.int32), (1, 1, 3, 1)))
    target = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    blurred = blur.apply(x)
    assert wiener.choose(blurred, target, file_bits=8 * 200_000) is not None
    assert wiener.choose(blurred, target, file_bits=8 * 5) is None  # a filter costs more than the file


# -- files ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def filtered(codec, example):
    """The bundled 768x512 example at alpha 1 with and without the filter."""
    return codec.compress(example, 1.0, output_filter=True), codec.compress(example, 1.0)


def test_filtered_file_decodes_as_encoded(codec, example, filtered):
    with_f, without = filtered
    h = container.parse_header(with_f.data)
    OutputFilter.split_layer(container.unpack(with_f.data).residual, h.version)
    assert h.has_filter and h.version == 5  # version 5 carries any filter (version 3's rules)
    assert not container.parse_header(without.data).has_filter
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
    head = container.parse_header(stripped)
    assert head.version == 5 and not head.has_filter and not head.has_residual
    cut = with_f.data[:container.parse_header(with_f.data).size + head.base_len]  # a prefix: the first layer
    for data in (stripped, cut):
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


def _with_filter_bytes(data: bytes, flt: bytes, version: int = 5) -> bytes:
    """``data``'s layers with the filter ``flt``, in a file of format ``version`` (2, 3 or 5)."""
    f = container.unpack(data)
    h = f.header
    _, s = container.split_strings(f.residual, "residual layer", "output filter")
    return container.pack(h.weights_id, h.width, h.height, h.alpha_q, f.base, s, flt,
                          filter_version=min(version, 3), compact=version == 5)


def test_damaged_filter_is_refused_or_dropped(codec, filtered):
    bad = _with_filter_bytes(filtered[0].data, b"\x09" + bytes(9))  # checksums fine, radius 9
    with pytest.raises(CorruptError, match="output filter"):
        codec.decompress(bad)
    rec, notes = codec.decompress(bad, ignore_residual_errors=True)
    assert "radius" in notes["residual_dropped"]
    np.testing.assert_array_equal(rec.render(0.0), filtered[0].recon.render(1.0))


def test_version_3_filter_in_a_version_2_file_is_refused(codec, filtered):
    flt = _random_filter(np.random.default_rng(0), 2, 1, scale=2, merge=(0, 1, 2, 0, 0)).to_bytes()
    with pytest.raises(CorruptError, match="version 2"):
        codec.decompress(_with_filter_bytes(filtered[0].data, flt, version=2))
    for version in (3, 5):
        rec, notes = codec.decompress(_with_filter_bytes(filtered[0].data, flt, version=version))
        assert notes == {} and rec.r is not None


def test_output_filter_needs_the_residual_layer(codec, crop):
    c = codec.compress(crop, 0.5, residual=False, output_filter=True)
    head = container.parse_header(c.data)
    assert not head.has_filter and not head.has_residual


def test_size_and_psnr_targets_count_the_filter(codec, example):
    """With a target, every probe fits its filter: the file fits the size with the filter's
    bytes in it, and the decoded file (filter applied) reaches the PSNR."""
    from rdcodec import api

    img = np.ascontiguousarray(example[:256, :384])
    c, _ = codec.compress_to_size(img, 3000, output_filter=True, reconstruct=False)
    assert 2900 < len(c.data) <= 3000 and container.parse_header(c.data).has_filter
    c, alpha, quality = api.compress_to_psnr(img, 33.5, output_filter=True)
    assert container.parse_header(c.data).has_filter and 0 < alpha < 1
    assert quality >= 33.5 and psnr(codec.decompress(c.data)[0].render(0.0), img) == pytest.approx(quality, abs=1e-9)

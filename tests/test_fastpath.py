"""The coding-time forms of the transforms compute the training-time functions."""

import pytest
import torch
from compressai.layers import GDN
from torch import nn

from rdcodec.errors import RdcError
from rdcodec.model import fastpath
from rdcodec.model.fastpath import Bf16Conv, FastGDN, MinSize, SubpixelDeconv, coding_copy
from rdcodec.model.transforms import SynthesisTransform, deconv


@pytest.mark.parametrize("c_in,c_out,h,w", [(8, 3, 5, 7), (16, 12, 4, 4), (3, 1, 1, 1)])
def test_subpixel_deconv_equals_transposed_convolution(c_in, c_out, h, w):
    torch.manual_seed(0)
    d = deconv(c_in, c_out).eval()
    x = torch.randn(2, c_in, h, w)
    with torch.no_grad():
        ref, out = d(x), SubpixelDeconv(d)(x)
    assert out.shape == ref.shape == (2, c_out, 2 * h, 2 * w)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_subpixel_deconv_refuses_other_geometries():
    with pytest.raises(ValueError):
        SubpixelDeconv(nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1))


@pytest.mark.parametrize("inverse", [False, True])
def test_fast_gdn_equals_gdn(inverse):
    torch.manual_seed(1)
    g = GDN(16, inverse=inverse)
    with torch.no_grad():  # move the parameters off their identity initialisation
        g.gamma.add_(0.05 * torch.rand_like(g.gamma))
        g.beta.add_(0.3 * torch.rand_like(g.beta))
    x = torch.randn(2, 16, 6, 5)
    with torch.no_grad():
        ref = g(x)
        out = FastGDN(g)(x.contiguous(memory_format=torch.channels_last))
        plain = FastGDN(g)(x)  # a non-channels-last input is accepted too
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain, ref, rtol=1e-5, atol=1e-6)


def test_coding_copy_of_synthesis_matches_and_leaves_the_original_alone():
    torch.manual_seed(2)
    g_s = SynthesisTransform(16, 24).eval()
    fast = coding_copy(g_s)
    y = torch.randn(1, 24, 3, 5)
    with torch.no_grad():
        (x_ref, f_ref), (x_out, f_out) = g_s(y), fast(y)
    torch.testing.assert_close(x_out, x_ref, rtol=0, atol=1e-5)
    for a, b in zip(f_out, f_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert isinstance(g_s.up4, nn.ConvTranspose2d) and isinstance(g_s.up1[1], GDN)
    kinds = {type(m) for m in fast.modules()}
    assert SubpixelDeconv in kinds and FastGDN in kinds and GDN not in kinds
    assert not any(p.requires_grad for p in fast.parameters())


def test_coding_model_matches_training_model(codec32, crop):
    codec = codec32
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y_ref, y = codec.m.model.g_a(x), codec.m.g_a(x)
        (x_ref, _), (x_out, _) = codec.m.model.g_s(y_ref), codec.m.g_s(y_ref)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-4 * y_ref.abs().max().item())
    torch.testing.assert_close(x_out, x_ref, rtol=0, atol=1e-5)


def test_bf16_synthesis_is_float32_synthesis_to_bfloat16_rounding(codec32, codec16, crop):
    """Only the inner layers change form; the output stays within a level of float32."""
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = codec32.m.g_a(x)
        (x32, f32), (x16, f16) = codec32.m.g_s(y), codec16.m.g_s(y)
    assert x16.dtype == torch.float32 and all(f.dtype == torch.float32 for f in f16)
    for a, b in zip(f16, f32):  # the features the residual branch reads: bfloat16's 3 digits
        torch.testing.assert_close(a, b, rtol=0, atol=0.02 * b.abs().max().item())
    diff = (x16 - x32).abs()
    # mean 0.13 / 255 where bfloat16 is emulated (AVX2, AMD EPYC), less with native bfloat16
    assert 0 < diff.max() < 2 / 255 and diff.mean() < 0.25 / 255
    for net in ("g_s", "rrn"):  # three inner layers each; the 3-channel output layers stay float32
        inner = [m for m in getattr(codec16.m, net).modules() if isinstance(m, Bf16Conv)]
        assert len(inner) == 3 and all(m.out_channels > 3 and m.in_channels > 3 for m in inner)
        assert not any(isinstance(m, Bf16Conv) for m in getattr(codec32.m, net).modules())
    assert codec16.m.bf16 and not codec32.m.bf16


def test_bf16_analysis_is_float32_analysis_to_bfloat16_rounding(codec32, codec16, crop):
    """g_a's three convolutions after the first one run in bfloat16; y stays within bfloat16's
    3 significant digits of float32 and keeps its float32 dtype."""
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y32, y16 = codec32.m.g_a(x), codec16.m.g_a(x)
    assert y16.dtype == torch.float32 and y16.shape == y32.shape
    diff = (y16 - y32).abs()
    assert 0 < diff.max() < 0.02 * y32.abs().max() and diff.mean() < 0.01 * y32.abs().mean()
    inner = [m for m in codec16.m.g_a.modules() if isinstance(m, Bf16Conv)]
    assert [m.in_channels > 3 for m in inner] == [True] * 3
    assert not any(isinstance(m, Bf16Conv) for m in codec32.m.g_a.modules())


def test_bf16_conv_wraps_only_stride_2_layers_with_wide_inputs_and_outputs():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.Conv2d(8, 8, 5, stride=2, padding=2),
                        nn.Conv2d(8, 8, 1), deconv(8, 8), deconv(8, 3)).eval()
    fast = coding_copy(net, bf16=True).inner
    assert all(isinstance(m, MinSize) for m in fast)
    kinds = [type(m.inner) for m in fast]
    assert kinds == [nn.Conv2d, Bf16Conv, nn.Conv2d, Bf16Conv, SubpixelDeconv]
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref, out = net(x), coding_copy(net, bf16=True)(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0.05 * ref.abs().max().item())


@pytest.mark.parametrize("avx512_bf16,amx,device,expected", [
    (True, False, "cpu", True), (False, True, "cpu", True), (False, False, "cpu", False),
    (True, True, "cuda", False)])
def test_bf16_default_follows_the_cpu(monkeypatch, avx512_bf16, amx, device, expected):
    monkeypatch.delenv(fastpath.PRECISION_ENV, raising=False)
    monkeypatch.delenv(fastpath.LEGACY_PRECISION_ENV, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert fastpath.bf16_default(device) is expected


@pytest.mark.parametrize("value,expected", [("float32", False), ("FP32", False), ("bfloat16", True), ("bf16 ", True)])
def test_bf16_default_obeys_the_environment(monkeypatch, value, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: not expected)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: not expected)
    monkeypatch.setenv(fastpath.PRECISION_ENV, value)
    assert fastpath.bf16_default("cpu") is expected


def test_bf16_default_refuses_an_unknown_setting(monkeypatch):
    monkeypatch.setenv(fastpath.PRECISION_ENV, "float16")
    with pytest.raises(RdcError, match="float32 or bfloat16"):
        fastpath.bf16_default("cpu")


def test_bf16_default_reads_the_old_variable_name_when_the_new_one_is_unset(monkeypatch):
    monkeypatch.delenv(fastpath.PRECISION_ENV, raising=False)
    monkeypatch.setenv(fastpath.LEGACY_PRECISION_ENV, "float32")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert fastpath.bf16_default("cpu") is False
    monkeypatch.setenv(fastpath.PRECISION_ENV, "bfloat16")  # the new name wins
    assert fastpath.bf16_default("cpu") is True
    monkeypatch.setenv(fastpath.LEGACY_PRECISION_ENV, "half")
    monkeypatch.delenv(fastpath.PRECISION_ENV)
    with pytest.raises(RdcError, match=fastpath.LEGACY_PRECISION_ENV):
        fastpath.bf16_default("cpu")


def test_get_codec_resolves_the_default_precision_per_call(monkeypatch):
    """``bf16=None`` means "what the CPU and $RDCODEC_TRANSFORMS say now", and shares the cache
    with the explicit choice it resolves to (asked for just after: the cache is small, and other
    tests' codecs may have pushed the fixtures' out)."""
    from rdcodec.api import get_codec

    monkeypatch.setenv(fastpath.PRECISION_ENV, "float32")
    as32 = get_codec()
    assert as32 is get_codec(bf16=False)
    monkeypatch.setenv(fastpath.PRECISION_ENV, "bfloat16")
    as16 = get_codec()
    assert as16 is get_codec(bf16=True) and as16 is not as32


@pytest.mark.parametrize("layer", [nn.Conv2d(6, 5, 3, padding=1), nn.Conv2d(6, 5, 5, stride=2, padding=2),
                                   nn.Conv2d(6, 5, 1), deconv(6, 5)])
@pytest.mark.parametrize("h,w", [(1, 1), (3, 7), (8, 12), (15, 16), (17, 5)])
def test_min_size_padding_computes_the_same_function(layer, h, w):
    """Zero-padding to MIN_SIDE and cropping back changes the algorithm, not the values."""
    torch.manual_seed(4)
    layer = layer.eval()
    x = torch.randn(1, 6, h, w)
    with torch.no_grad():
        ref, out = layer(x), MinSize(layer)(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)

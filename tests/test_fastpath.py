"""The coding-time forms of the transforms compute the training-time functions."""

import pytest
import torch
from compressai.layers import GDN
from torch import nn

from rdcodec.model.fastpath import FastGDN, SubpixelDeconv, coding_copy
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


def test_coding_model_matches_training_model(codec, crop):
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y_ref, y = codec.m.model.g_a(x), codec.m.g_a(x)
        (x_ref, _), (x_out, _) = codec.m.model.g_s(y_ref), codec.m.g_s(y_ref)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-4 * y_ref.abs().max().item())
    torch.testing.assert_close(x_out, x_ref, rtol=0, atol=1e-5)

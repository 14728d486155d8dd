"""Decoded pixels: identical across runs and across torch thread counts.

Files are identical across thread counts (``test_codec.test_encode_is_thread_count_independent``):
everything that reaches the entropy coder runs in float64 and is snapped to tables. The
synthesis runs in its coding form (:mod:`rdcodec.model.fastpath`; float32, or bfloat16 for
the inner layers of g_s and of the residual branch on CPUs with native bfloat16), whose sums do not depend on the thread
count in either precision. The training-time form did: oneDNN's 1x1 convolutions (GDN)
moved samples by one level on 1.8e-5 of kodim23, and its transposed convolutions in the
residual branch split their sums at some sizes (8x12 and 10x10 latents, the two crops here).
docs/robustness.md has the details.
"""

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def files(codec, example):
    crops = [example[200:328, 300:492], example[100:260, 40:200]]  # 8x12 and 10x10 latents
    return [codec.compress(np.ascontiguousarray(c), a, reconstruct=False).data
            for c in crops for a in (0.0, 1.0)]


def _decode(codec, data, threads):
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        recon, _ = codec.decompress(data)
    finally:
        torch.set_num_threads(n)
    return recon


def test_decoding_is_repeatable(codec, files):
    for data in files:
        a, b = _decode(codec, data, 2), _decode(codec, data, 2)
        assert torch.equal(a.x_hat_1, b.x_hat_1) and torch.equal(a.r, b.r)
        for beta in (0.0, 0.5, 1.0):
            np.testing.assert_array_equal(a.render(beta), b.render(beta))


@pytest.mark.parametrize("form", ["float32", "bfloat16"])
def test_decoding_is_identical_across_thread_counts(codec32, codec16, files, form):
    codec = codec32 if form == "float32" else codec16
    for data in files:
        one, two = _decode(codec, data, 1), _decode(codec, data, 2)
        assert torch.equal(one.x_hat_1, two.x_hat_1) and torch.equal(one.r, two.r)
        for beta in (0.0, 0.5, 1.0):
            np.testing.assert_array_equal(one.render(beta), two.render(beta))


@pytest.mark.parametrize("threads", [1, 2])
def test_training_form_and_coding_form_agree(codec32, files, threads):
    """The fast coding form computes the training-time synthesis (to float rounding)."""
    codec = codec32
    recon = _decode(codec, files[1], threads)
    m = codec.m
    saved = m.g_s, m.rrn
    try:
        m.g_s, m.rrn = m.model.g_s, m.model.rrn  # the training-time modules
        ref = _decode(codec, files[1], threads)
    finally:
        m.g_s, m.rrn = saved
    assert (recon.x_hat_1 - ref.x_hat_1).abs().max() < 1e-5 and (recon.r - ref.r).abs().max() < 1e-5
    diff = np.abs(recon.render(0.0).astype(np.int16) - ref.render(0.0))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-3 * diff.size

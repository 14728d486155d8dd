"""The space-channel context model: it starts as the checkerboard it is added to, every pass
reads only what was coded before it, exact multi-pass coding, and its training stage."""

from __future__ import annotations

import pytest
import torch

from rdcodec.codec import Codec
from rdcodec.model.channel import ChannelContext, rounding_code, run_passes
from rdcodec.model.context import SCALE_BOUND, CheckerboardContext, anchor_mask
from rdcodec.model.rdc import CodingModel, ModelConfig, RDCModel
from rdcodec.train import loop
from rdcodec.weights import load

from .conftest import EXAMPLE, ROOT, check_context_coding

M, GROUPS = 12, (2, 4, 6)


def _randomize(module: torch.nn.Module, seed=1, std=0.1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def _latent(seed=0, h=6, w=8):
    g = torch.Generator().manual_seed(seed)
    yg = torch.randn(1, M, h, w, generator=g) * 4
    means = torch.randn(1, M, h, w, generator=g)
    scales = torch.rand(1, M, h, w, generator=g) * 3 + 0.05
    return yg, means, scales


def _contexts(trained=True):
    cb = CheckerboardContext(M, hidden=8, width=16)
    ch = ChannelContext(M, GROUPS)
    _randomize(cb, seed=2)
    if trained:
        _randomize(ch, seed=3)
    ch.order.copy_(torch.randperm(M, generator=torch.Generator().manual_seed(4)))
    return cb.double().eval(), ch.double().eval()


def test_untrained_channel_context_is_the_checkerboard():
    cb, ch = _contexts(trained=False)
    yg, means, scales = (t.double() for t in _latent())
    code = rounding_code(yg)
    m0, s0, q0 = run_passes(means, scales, cb, None, code)
    m1, s1, q1 = run_passes(means, scales, cb, ch, code)
    assert torch.equal(m0, m1) and torch.equal(q0, q1)
    # scales agree where coding can tell them apart (both coders bound them below at 0.11)
    torch.testing.assert_close(s0.clamp_min(SCALE_BOUND), s1.clamp_min(SCALE_BOUND), rtol=1e-12, atol=0)
    # and the checkerboard alone is its training form: anchors keep the hyperprior
    anchor = anchor_mask(*means.shape[-2:])
    mc, sc = cb(q0.masked_fill(~anchor, 0.0), means, scales)
    assert torch.equal(m0, mc) and torch.equal(s0, sc)


def _coding_rank(ch: ChannelContext, h: int, w: int) -> torch.Tensor:
    """(M, h, w) index of the pass that codes each element."""
    anchor = anchor_mask(h, w)[0, 0]
    rank = torch.empty(M, h, w, dtype=torch.long)
    for k, chans in enumerate(ch.group_channels()):
        for c in chans.tolist():
            rank[c] = torch.where(anchor, k, len(GROUPS) + k)
    return rank


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_pass_reads_only_earlier_passes(seed):
    """Changing one element of the latent changes no parameter of an element coded in an
    earlier pass or earlier in the same pass (the decoder could not know it yet)."""
    cb, ch = _contexts()
    yg, means, scales = (t.double() for t in _latent(seed))
    h, w = yg.shape[-2:]
    rank = _coding_rank(ch, h, w)
    m0, s0, _ = run_passes(means, scales, cb, ch, rounding_code(yg))
    g = torch.Generator().manual_seed(seed)
    changed_later = 0
    for _ in range(6):
        c, i, j = (int(torch.randint(n, (1,), generator=g)) for n in (M, h, w))
        bumped = yg.clone()
        bumped[0, c, i, j] += 7.0
        m1, s1, _ = run_passes(means, scales, cb, ch, rounding_code(bumped))
        moved = ((m1 - m0).abs() + (s1 - s0).abs())[0] > 0
        assert not (moved & (rank <= rank[c, i, j])).any()
        changed_later += int(moved.any())
    assert changed_later > 0  # the context does read the earlier passes


def test_order_and_groups():
    ch = ChannelContext(M, GROUPS)
    ch.order.copy_(torch.arange(M).flip(0))
    assert [c.tolist() for c in ch.group_channels()] == [[11, 10], [9, 8, 7, 6], [5, 4, 3, 2, 1, 0]]
    assert len(ch.refiners) == 2 * (len(GROUPS) - 1)
    with pytest.raises(ValueError, match="do not split"):
        ChannelContext(M, (4, 4))


@pytest.fixture(scope="module")
def channel_codec():
    """The shipped default with a randomized channel context on top of its checkerboard."""
    base, z_pmf, _ = load()
    model = RDCModel(ModelConfig(**{**base.config.to_dict(), "context": "space-channel"}))
    loop.load_matching(model, base.state_dict())
    for r in model.channel_context.refiners:
        _randomize(r.params[-1], std=0.01)
    model.channel_context.order.copy_(torch.randperm(model.config.M, generator=torch.Generator().manual_seed(0)))
    return Codec(CodingModel(model, z_pmf), 0x2468ACE0, "sc-test"), Codec(CodingModel(base, z_pmf), 1, "base")


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_multi_pass_coding_is_exact(channel_codec, crop, alpha):
    check_context_coding(*channel_codec, crop, alpha)


def test_context_stage_trains_the_channel_context(tmp_path):
    """Stage context with --context space-channel from a checkerboard model: the channel order
    comes from the latents, the refiners learn, the codec stays frozen; the export keeps all."""
    from rdcodec import weights
    from rdcodec.train import export

    init = ROOT / "weights/rdc-v8.safetensors"
    out = tmp_path / "run"
    loop.main(["--stage", "context", "--context", "space-channel", "--init", str(init),
               "--data", str(EXAMPLE.parent), "--cache", str(tmp_path / "crops.pt"), "--n-crops", "8",
               "--latent-cache", str(tmp_path / "lat.pt"), "--batch", "2", "--lr", "1e-3",
               "--budget-minutes", "0.2", "--log-every", "1", "--out", str(out)])
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["step"] >= 2
    base = load(init)[0].state_dict()
    moved = {k.split(".")[0] for k, v in state["model"].items() if k in base and not torch.equal(v, base[k])}
    assert moved <= {"context"}
    order = state["model"]["channel_context.order"]
    assert sorted(order.tolist()) == list(range(192)) and not torch.equal(order, torch.arange(192))
    assert any(state["model"][f"channel_context.refiners.{i}.params.4.weight"].abs().max() > 0 for i in range(8))
    export.main([str(out / "last.pt"), "--name", "t-sc", "--out-dir", str(tmp_path / "w")])
    loaded = weights.load(tmp_path / "w" / "t-sc.safetensors")[0]
    assert loaded.config.context == "space-channel"
    assert torch.equal(loaded.channel_context.order, order)


def test_a_run_from_a_channel_context_must_keep_it(tmp_path):
    init = tmp_path / "init.pt"
    torch.save({"model": RDCModel(ModelConfig(context="space-channel")).state_dict()}, init)
    with pytest.raises(SystemExit, match="--context space-channel"):
        loop.main(["--stage", "residual", "--context", "checkerboard", "--init", str(init),
                   "--out", str(tmp_path / "run"), "--data", str(EXAMPLE.parent),
                   "--cache", str(tmp_path / "c.pt"), "--n-crops", "4"])


@pytest.mark.parametrize("h, w", [(4, 4), (6, 10)])
def test_phased_coding_form_is_the_same_function(h, w):
    from rdcodec.model.channel import PhasedChannelContext

    cb, ch = _contexts()
    yg, means, scales = (t.double() for t in _latent(5, h, w))
    code = rounding_code(yg)
    full = run_passes(means, scales, cb, ch, code)
    phased = run_passes(means, scales, cb, PhasedChannelContext(ch), code)
    for a, b in zip(full, phased):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="even"):
        run_passes(*(t[..., :-1] for t in (means, scales)), cb, PhasedChannelContext(ch), rounding_code(yg[..., :-1]))


def test_stage_timings_do_not_overlap(channel_codec, crop):
    """The decoder's range coding between passes counts as "entropy" only, not also as "hyper"."""
    import time

    codec, _ = channel_codec
    data = codec.compress(crop, 0.5, reconstruct=False).data
    timings = {}
    t0 = time.perf_counter()
    codec.decompress(data, timings=timings)
    wall = time.perf_counter() - t0
    assert timings["entropy"] > 0 and timings["hyper"] > 0
    assert sum(timings.values()) <= wall

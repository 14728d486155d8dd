"""The checkerboard context model: what it reads, that it starts as the hyperprior, exact
two-pass coding, and its training stage."""

from __future__ import annotations

import json

import pytest
import torch

from rdcodec.codec import Codec
from rdcodec.model.context import CheckerboardContext, PhasedContext, anchor_mask
from rdcodec.model.rdc import CodingModel, ModelConfig, RDCModel
from rdcodec.train import loop
from rdcodec.weights import load

from .conftest import EXAMPLE, ROOT, check_context_coding

M = 8


def _inputs(seed=0, h=6, w=7):
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-3, 4, (1, M, h, w), generator=g).float()
    means = torch.randn(1, M, h, w, generator=g)
    scales = torch.rand(1, M, h, w, generator=g) * 3 + 0.05
    return q, means, scales


def _randomized(ctx: CheckerboardContext, seed=1, std=0.1) -> CheckerboardContext:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ctx.params[-1].parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return ctx


def test_anchor_mask_is_a_checkerboard():
    a = anchor_mask(3, 4)[0, 0].int().tolist()
    assert a == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]


def test_untrained_context_is_the_hyperprior():
    q, means, scales = _inputs()
    mu, sigma = CheckerboardContext(M)(q, means, scales)
    assert torch.equal(mu, means)
    torch.testing.assert_close(sigma[:, :, ~anchor_mask(6, 7)[0, 0]],
                               scales.clamp_min(0.11)[:, :, ~anchor_mask(6, 7)[0, 0]])


def test_anchors_keep_the_hyperprior_and_others_read_only_anchors():
    ctx = _randomized(CheckerboardContext(M)).eval()
    q, means, scales = _inputs()
    anchor = anchor_mask(6, 7)
    mu, sigma = ctx(q, means, scales)
    assert torch.equal(mu.masked_select(anchor), means.masked_select(anchor))
    assert not torch.equal(mu, means)  # the non-anchors moved
    # non-anchor symbols are not known to the decoder when it needs the model: they must not matter
    q2 = torch.where(anchor, q, q + 5)
    mu2, sigma2 = ctx(q2, means, scales)
    assert torch.equal(mu, mu2) and torch.equal(sigma, sigma2)
    # an anchor symbol does: its neighbour (0, 1) changes
    q3 = q.clone()
    q3[0, :, 0, 0] += 2
    mu3, _ = ctx(q3, means, scales)
    assert not torch.equal(mu[0, :, 0, 1], mu3[0, :, 0, 1])


@pytest.mark.parametrize("h, w", [(4, 4), (6, 10), (8, 12)])
def test_phased_coding_form_is_the_same_function(h, w):
    """The coding form (only the non-anchor phases, 3x3 on the stacked anchor phases) equals
    the training form in float64, edges included."""
    ctx = _randomized(CheckerboardContext(M, hidden=6, width=10), std=0.3).double().eval()
    torch.manual_seed(h * w)
    ctx.ctx.weight.data.normal_()
    q, means, scales = (t.double() for t in _inputs(seed=h, h=h, w=w))
    with torch.no_grad():
        mu, sigma = ctx(q, means, scales)
        mu2, sigma2 = PhasedContext(ctx)(q, means, scales)
    torch.testing.assert_close(mu2, mu, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sigma2, sigma, rtol=1e-12, atol=1e-12)
    assert not torch.equal(mu, means)


def test_phased_form_needs_even_sides():
    ctx = PhasedContext(CheckerboardContext(M))
    with pytest.raises(ValueError, match="even"):
        ctx(*_inputs(h=5, w=6))


@pytest.fixture(scope="module")
def context_codec():
    """The shipped default with an untrained-but-randomized context model on top."""
    base, z_pmf, info = load()
    model = RDCModel(ModelConfig(**{**base.config.to_dict(), "context": "checkerboard"}))
    loop.load_matching(model, base.state_dict())
    _randomized(model.context, std=0.02)
    return Codec(CodingModel(model, z_pmf), 0x12345678, "ctx-test"), Codec(CodingModel(base, z_pmf), 1, "base")


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_two_pass_coding_is_exact(context_codec, crop, alpha):
    check_context_coding(*context_codec, crop, alpha)


def _tiny_context_run(tmp_path, *extra: str):
    """Stage context from rdc-v7b for 9 seconds on the bundled example: (run folder, last.pt,
    names of rdc-v7b's tensors that moved)."""
    out = tmp_path / "run"
    argv = ["--stage", "context", "--context", "checkerboard", "--init", str(ROOT / "weights/rdc-v7b.safetensors"),
            "--data", str(EXAMPLE.parent), "--cache", str(tmp_path / "crops.pt"), "--n-crops", "8",
            "--latent-cache", str(tmp_path / "lat.pt"), "--batch", "2", "--lr", "1e-3", "--budget-minutes", "0.15",
            "--log-every", "1", "--out", str(out), *extra]
    loop.main(argv)
    state = torch.load(out / "last.pt", weights_only=False)
    base = load(ROOT / "weights/rdc-v7b.safetensors")[0].state_dict()
    moved = {k for k, v in state["model"].items() if k in base and not torch.equal(v, base[k])}
    return out, state, moved


def test_context_stage_trains_only_the_context(tmp_path):
    """A tiny run of stage context: rate goes into the log, nothing but the context moves."""
    _, state, moved = _tiny_context_run(tmp_path)
    assert state["step"] >= 2 and (tmp_path / "lat.pt").exists()  # the first step has lr 0 (warm-up from zero)
    assert moved == set()
    assert any(k.startswith("context.") for k in state["model"])
    assert state["model"]["context.params.4.weight"].abs().max() > 0  # it learned (started at zero)


def test_context_stage_with_hyper_lr_moves_only_the_entropy_models(tmp_path):
    """``--hyper-lr``: the hyper path and the prior of z learn with the context (rate of y plus
    z); the transforms, the gains of y (the quantization) and the residual branch stay put."""
    from rdcodec.train.context import CONTEXT_PREFIXES, is_hyper_param

    out, state, moved = _tiny_context_run(tmp_path, "--hyper-lr", "1e-3")
    assert state["step"] >= 2
    assert moved and all(is_hyper_param(k) for k in moved)
    assert {k.split(".")[0] for k in moved} >= {"h_a", "h_s", "entropy_z"}
    assert not any(k.startswith(CONTEXT_PREFIXES) for k in moved)  # not in v7b: new, not moved
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "bpp_z" in r and "event" not in r]
    assert steps and all(r["bpp_z"] > 0 for r in steps)


def test_export_keeps_the_context_model(tmp_path):
    """A stage context checkpoint exports weights that load with their context and code with it."""
    from rdcodec import weights
    from rdcodec.train import export

    full = RDCModel(ModelConfig(context="checkerboard"))
    _randomized(full.context, std=0.05)
    ckpt = tmp_path / "last.pt"
    args = vars(loop.parse_args(["--stage", "context", "--out", "x", "--context", "checkerboard"]))
    torch.save({"model": full.state_dict(), "step": 3, "stage": "context", "args": args}, ckpt)
    export.main([str(ckpt), "--name", "t-c1", "--out-dir", str(tmp_path / "w")])
    loaded = weights.load(tmp_path / "w" / "t-c1.safetensors")[0]
    assert loaded.config.context == "checkerboard"
    torch.testing.assert_close(loaded.context.params[-1].weight, full.context.params[-1].weight.half().float())


def test_unknown_context_is_refused():
    with pytest.raises(ValueError, match="context must be one of"):
        ModelConfig(context="autoregressive")


def test_a_run_from_a_context_model_must_keep_it(tmp_path):
    """Starting a stage from weights with a context model but without --context is refused
    (load_matching would silently drop the trained context otherwise)."""
    init = tmp_path / "init.pt"
    torch.save({"model": RDCModel(ModelConfig(context="checkerboard")).state_dict()}, init)
    with pytest.raises(SystemExit, match="--context checkerboard"):
        loop.main(["--stage", "residual", "--init", str(init), "--out", str(tmp_path / "run"),
                   "--data", str(EXAMPLE.parent), "--cache", str(tmp_path / "c.pt"), "--n-crops", "4"])

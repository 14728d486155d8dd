"""The training command: config files, resume, and the in-loop evaluation (tiny budgets)."""

from __future__ import annotations

import json
import stat

import pytest
import torch

from rdcodec import fileio
from rdcodec.model.rdc import ModelConfig, RDCModel
from rdcodec.train import loop
from rdcodec.train.monitor import load_eval_images, quick_eval

from .conftest import EXAMPLE


def test_config_file_sets_defaults_and_command_line_wins(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('stage = "cognition"\nout = "runs/x"\nmse_anchor = 0.1\nlr = 3e-5\n')
    args = loop.parse_args(["--config", str(cfg), "--lr", "1e-4"])
    assert (args.stage, args.out, args.mse_anchor, args.lr) == ("cognition", "runs/x", (0.1,) * 6, 1e-4)


def test_mse_anchor_per_level_from_config_and_command_line(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('stage = "cognition"\nout = "o"\nmse_anchor = [0.1, 0.1, 0.1, 0.15, 0.25, 0.35]\n')
    assert loop.parse_args(["--config", str(cfg)]).mse_anchor == (0.1, 0.1, 0.1, 0.15, 0.25, 0.35)
    args = loop.parse_args(["--config", str(cfg), "--mse-anchor", "0", "0", "0", "0", "0", "1"])
    assert args.mse_anchor == (0.0,) * 5 + (1.0,)
    assert loop.parse_args(["--stage", "base", "--out", "o"]).mse_anchor == (0.0,) * 6


def test_cognition_loss_weights_the_mse_by_the_anchor_of_each_sample_level():
    idx = torch.tensor([0, 3, 5])
    bpp, c, d_local, mse = torch.full((3,), 0.5), torch.full((3,), 2.0), torch.zeros(3), torch.full((3,), 1e-3)
    lam = RDCModel(ModelConfig()).base_lambda(idx)
    without = loop.cognition_loss(bpp, c, d_local, mse, idx, lam, (0.0,) * 6, 1e-5)
    assert torch.allclose(without, bpp + torch.tensor([0.0625, 0.5, 2.0]) * c)  # paper Eq. 7
    anchored = loop.cognition_loss(bpp, c, d_local, mse, idx, lam, (0.1, 0.1, 0.1, 0.2, 0.2, 0.4), 1e-5)
    assert torch.allclose(anchored - without, torch.tensor([0.1, 0.2, 0.4]) * lam * 255 ** 2 * mse)


def test_cognition_loss_adds_the_feature_term_weighted_per_level():
    idx = torch.tensor([0, 3, 5])
    bpp, c, d_local, mse = torch.full((3,), 0.5), torch.full((3,), 2.0), torch.zeros(3), torch.full((3,), 1e-3)
    lam = RDCModel(ModelConfig()).base_lambda(idx)
    feat = torch.tensor([0.4, 0.2, 0.1])
    nu = (1.0, 0.0, 0.0, 2.0, 0.0, 8.0)
    without = loop.cognition_loss(bpp, c, d_local, mse, idx, lam, (0.1,) * 6, 1e-5)
    with_feat = loop.cognition_loss(bpp, c, d_local, mse, idx, lam, (0.1,) * 6, 1e-5, feat, nu)
    assert torch.allclose(with_feat - without, torch.tensor([1.0, 2.0, 8.0]) * feat)


def test_feature_weight_takes_one_or_one_per_level(tmp_path, capsys):
    assert loop.parse_args(["--stage", "cognition", "--out", "o"]).feature_weight == (0.0,) * 6
    assert loop.parse_args(["--stage", "cognition", "--out", "o", "--feature-weight", "2"]).feature_weight == (2.0,) * 6
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--stage", "cognition", "--out", "o", "--feature-weight", "1", "2"])
    assert e.value.code == 2 and "feature_weight" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--mse-anchor", "0.3"], ["--feature-weight", "1"]])
def test_stage_i_loss_terms_in_another_stage_are_a_usage_error(capsys, option):
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--stage", "residual", "--out", "o", *option])
    assert e.value.code == 2 and f"{option[0]} only apply to --stage cognition" in capsys.readouterr().err
    assert loop.parse_args(["--stage", "residual", "--out", "o", option[0], "0"])  # 0 = off is fine anywhere


def test_feature_distance_compares_channel_directions_per_position():
    from rdcodec.train.cognition import feature_distance

    gen = torch.Generator().manual_seed(0)
    f = [torch.randn(2, 8, 6, 6, generator=gen), torch.randn(2, 16, 3, 3, generator=gen)]
    assert torch.allclose(feature_distance(f, f), torch.zeros(2), atol=1e-6)
    scaled = [a * torch.rand(2, 1, *a.shape[2:], generator=gen).add(0.5) for a in f]
    assert torch.allclose(feature_distance(scaled, f), torch.zeros(2), atol=1e-5)  # length per position is free
    flipped = [-a for a in f]
    assert torch.allclose(feature_distance(flipped, f), torch.full((2,), 4.0), atol=1e-5)  # the farthest apart
    noisy = [a + 0.3 * torch.randn(a.shape, generator=gen) for a in f]
    far = [a + 1.0 * torch.randn(a.shape, generator=gen) for a in f]
    assert (0 < feature_distance(noisy, f)).all() and (feature_distance(noisy, f) < feature_distance(far, f)).all()


@pytest.mark.parametrize("anchor", ["[0.1, 0.2]", "[0.1, 0.1, 0.1, 0.1, 0.1, -1]", '"high"'])
def test_bad_mse_anchor_is_a_usage_error(tmp_path, capsys, anchor):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'stage = "cognition"\nout = "o"\nmse_anchor = {anchor}\n')
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--config", str(cfg)])
    assert e.value.code == 2
    assert "anchor" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ('stage = "base"\nout = "o"\nlearning_rate = 1\n', "unknown option"),
    ('out = "o"\n', "--stage is required"),
    ('stage = "final"\nout = "o"\n', "stage must be"),
])
def test_bad_config_is_a_usage_error(tmp_path, capsys, text, message):
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--config", str(cfg)])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_quick_eval_reports_rate_and_quality_per_level():
    torch.manual_seed(0)
    model = RDCModel(ModelConfig()).train()
    images = load_eval_images(EXAMPLE.parent, 1)
    assert images[0].shape == (1, 3, 512, 768)
    small = [images[0][..., :128, :192]]
    rec = quick_eval(model, small, levels=(0, 5), residual=True)
    assert rec["levels"] == [0, 5]
    assert all(v > 0 for v in rec["bpp"]) and all(v >= 0 for v in rec["bpp_res"])
    assert all(0 < v < 60 for v in rec["psnr_b1"] + rec["psnr_b0"])
    assert model.training  # mode restored


def test_training_runs_checkpoints_and_resumes(tmp_path):
    """Two tiny runs into one folder: the second resumes (steps go on) and both evaluate in-loop."""
    out, cache = tmp_path / "run", tmp_path / "crops.pt"
    argv = ["--stage", "base", "--data", str(EXAMPLE.parent), "--cache", str(cache), "--n-crops", "8",
            "--crop", "64", "--batch", "2", "--budget-minutes", "0.05", "--log-every", "1",
            "--eval-every", "3", "--eval-dir", str(EXAMPLE.parent), "--eval-images", "1", "--out", str(out)]
    loop.main(argv)
    ckpt = torch.load(out / "last.pt", weights_only=False)
    first = ckpt["step"]
    assert first >= 1 and cache.exists()
    # a budget 3 s past the clock the first run left (a step on busy cores can take longer than 3 s)
    loop.main([*argv[:-4], "--budget-minutes", str((ckpt["elapsed"] + 3) / 60), "--out", str(out)])
    second = torch.load(out / "last.pt", weights_only=False)["step"]
    assert second > first
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("event") == "eval"]
    assert len(evals) >= 2 and all(len(r["bpp"]) == 3 for r in evals)
    assert [r["step"] for r in records if "loss" in r] == sorted(r["step"] for r in records if "loss" in r)


def test_a_cognition_run_with_the_feature_term_logs_it(tmp_path, shared):
    """Stage I with ``--feature-weight`` steps on the contrastive and feature terms and logs D_feat."""
    pytest.importorskip("ai_edge_litert")
    out, cache = tmp_path / "run", tmp_path / "crops.pt"
    loop.main(["--stage", "cognition", "--data", str(EXAMPLE.parent), "--cache", str(cache), "--n-crops", "4",
               "--crop", "64", "--batch", "2", "--budget-minutes", "0.05", "--log-every", "1", "--eval-every", "0",
               "--queue", "4", "--feature-weight", "0.5", "--out", str(out),
               "--backbone", str(shared / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert records and all(0 < r["feat"] <= 4 and r["c"] > 0 for r in records)


def test_the_schedule_warms_up_from_above_zero_peaks_and_decays_to_its_floor():
    """Every step moves the weights, the first one included (a run cut to one step by its budget
    trains), then the rate rises to the peak and decays to ``floor * peak``."""
    peak = 2e-4
    assert loop.lr_at(0.0, peak) == pytest.approx(loop.WARMUP_START * peak) and loop.lr_at(0.0, peak) > 0
    warm = [loop.lr_at(p, peak) for p in (0.0, 0.005, 0.01, 0.015, 0.02)]
    assert warm == sorted(warm) and warm[-1] == pytest.approx(peak)
    decay = [loop.lr_at(p, peak) for p in (0.02, 0.3, 0.6, 0.9, 1.0, 1.5)]
    assert decay == sorted(decay, reverse=True) and decay[-1] == pytest.approx(0.05 * peak)


def test_optimizer_step_skips_a_non_finite_loss_without_touching_the_weights():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w], lr=0.1)
    assert not loop.optimizer_step(opt, (w * float("nan")).sum(), [w])
    assert torch.equal(w.detach(), torch.ones(3))
    assert loop.optimizer_step(opt, (w * 2).sum(), [w])
    assert not torch.equal(w.detach(), torch.ones(3))


def test_non_finite_guard_stops_only_a_run_of_skips():
    guard = loop.NonFiniteGuard(limit=3)
    assert [guard(s, 0) for s in (False, False, True, False, False)] == [False, False, True, False, False]
    assert guard.total == 4
    with pytest.raises(SystemExit, match="3 non-finite losses in a row after step 7"):
        guard(False, 7)


def test_a_run_that_only_gets_non_finite_losses_stops_with_an_error(tmp_path, monkeypatch):
    """Skipped steps do not move the budget clock: without the guard this run would never end."""
    monkeypatch.setattr(loop, "optimizer_step", lambda opt, loss, params: False)
    out = tmp_path / "run"
    argv = ["--stage", "base", "--data", str(EXAMPLE.parent), "--cache", str(tmp_path / "crops.pt"),
            "--n-crops", "4", "--crop", "64", "--batch", "2", "--budget-minutes", "0.05", "--log-every", "1",
            "--eval-every", "0", "--out", str(out)]
    with pytest.raises(SystemExit, match="non-finite losses in a row after step 0"):
        loop.main(argv)
    assert not [line for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]


def test_training_with_a_mix_crop_of_its_own_steps_on_both_parts(tmp_path):
    """--mix-crop runs the second source as its own forward pass; every step uses both parts."""
    out = tmp_path / "run"
    loop.main(["--stage", "base", "--data", str(EXAMPLE.parent), "--cache", str(tmp_path / "a.pt"),
               "--n-crops", "4", "--mix-data", str(EXAMPLE.parent), "--mix-cache", str(tmp_path / "b.pt"),
               "--mix-size", "128", "--mix-crops", "4", "--mix-fraction", "0.5", "--crop", "128",
               "--mix-crop", "64", "--batch", "2", "--budget-minutes", "0.03", "--log-every", "1",
               "--eval-every", "0", "--out", str(out)])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert steps and all(r["bpp"] > 0 and r["mse"] > 0 for r in steps)
    assert torch.load(out / "last.pt", weights_only=False)["step"] == len(steps)


def test_mixed_batch_draws_the_requested_share_from_each_cache():
    from rdcodec.train.data import mixed_batch

    big = torch.zeros((4, 3, 32, 32), dtype=torch.uint8)           # e.g. 256-px photo crops
    small = torch.full((4, 3, 24, 24), 255, dtype=torch.uint8)     # e.g. 224-px Imagenette images
    gen = torch.Generator().manual_seed(0)
    (x,) = mixed_batch(big, small, 8, 3, 16, gen)
    assert x.shape == (8, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)
    per_sample = x.mean(dim=(1, 2, 3))
    assert per_sample.tolist() == [1.0] * 3 + [0.0] * 5
    (x,) = mixed_batch(big, None, 8, 3, 16, gen)  # no second cache: all from the first
    assert x.shape == (8, 3, 16, 16) and x.max() == 0


def test_mixed_batch_with_its_own_mix_crop_comes_in_two_parts():
    from rdcodec.train.data import mixed_batch

    big = torch.zeros((4, 3, 32, 32), dtype=torch.uint8)
    small = torch.full((4, 3, 24, 24), 255, dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    mix, main = mixed_batch(big, small, 8, 3, 32, gen, mix_crop=16)
    assert mix.shape == (3, 3, 16, 16) and main.shape == (5, 3, 32, 32)
    assert mix.min() == 1.0 and main.max() == 0.0
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in (mix, main))


def test_export_keeps_the_trained_residual_lambda_and_registers(tmp_path):
    from rdcodec import weights
    from rdcodec.train import export

    ckpt = tmp_path / "last.pt"
    model = RDCModel(ModelConfig(residual_lambda_factor=8.0))
    torch.save({"model": model.state_dict(), "step": 7, "stage": "residual",
                "args": {"residual_lambda_factor": 8.0}}, ckpt)
    export.main([str(ckpt), "--name", "t-v1", "--out-dir", str(tmp_path / "w")])
    reg = json.loads((tmp_path / "w" / "registry.json").read_text())
    assert reg["default"] == "t-v1" and reg["weights"]["t-v1"]["file"] == "t-v1.safetensors"
    loaded, _, info = weights.load(tmp_path / "w" / "t-v1.safetensors")
    assert loaded.config.residual_lambda_factor == 8.0
    assert info.sha256 == reg["weights"]["t-v1"]["sha256"]
    umask = fileio._UMASK  # the process's umask, as the package read it once at import
    for written in ("t-v1.safetensors", "registry.json"):  # readable like any file the user writes
        assert stat.S_IMODE((tmp_path / "w" / written).stat().st_mode) == 0o666 & ~umask


def test_an_export_that_fails_while_writing_leaves_the_weights_that_were_there(tmp_path, monkeypatch):
    import safetensors.torch

    from rdcodec import weights

    path = tmp_path / "t.safetensors"
    model = RDCModel(ModelConfig())
    weights.export(model, path)
    before = path.read_bytes()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    monkeypatch.setattr(safetensors.torch, "save", lambda *a, **k: "not bytes")  # the write raises
    with pytest.raises(TypeError):
        weights.export(model, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors"]


def test_export_keeps_refinement_blocks(tmp_path):
    """A stage II run with --rrn-blocks exports a model that loads with its blocks and values."""
    from rdcodec import weights
    from rdcodec.train import export

    model = RDCModel(ModelConfig(rrn_blocks=1))
    with torch.no_grad():
        model.rrn.refine[2][0].body[2].weight.normal_()
    ckpt = tmp_path / "last.pt"
    torch.save({"model": model.state_dict(), "step": 3, "stage": "residual",
                "args": vars(loop.parse_args(["--stage", "residual", "--out", "x", "--rrn-blocks", "1"]))}, ckpt)
    export.main([str(ckpt), "--name", "t-b1", "--out-dir", str(tmp_path / "w")])
    loaded = weights.load(tmp_path / "w" / "t-b1.safetensors")[0]
    assert loaded.config.rrn_blocks == 1 and len(loaded.rrn.refine[0]) == 1
    w = loaded.rrn.refine[2][0].body[2].weight
    assert w.abs().max() > 0
    torch.testing.assert_close(w, model.rrn.refine[2][0].body[2].weight.half().float())


def test_new_refinement_blocks_start_as_the_identity(codec):
    """Warm start: the shipped residual branch loaded into a model with blocks computes the same r."""
    base = RDCModel(ModelConfig())  # the shipped weights' branch without any blocks
    loop.load_matching(base, codec.m.model.state_dict())
    base.eval()
    wide = RDCModel(ModelConfig(rrn_blocks=2))
    assert set(loop.load_matching(wide, base.state_dict())) == {
        k for k in wide.state_dict() if k.startswith("rrn.refine.")}
    wide.eval()
    torch.manual_seed(0)
    y_hat = torch.round(torch.randn(1, base.config.M, 4, 6) * 3)
    with torch.no_grad():
        x0, feats = base.g_s(y_hat)
        r0 = base.rrn(y_hat, feats)
        r1 = wide.rrn(y_hat, feats)
    torch.testing.assert_close(r1, r0, rtol=0, atol=0)
    # and the blocks can learn: the zero-initialised convolution gets a gradient
    wide.train()
    x0, feats = wide.g_s(y_hat)
    wide.rrn(y_hat, feats).square().mean().backward()
    assert wide.rrn.refine[0][0].body[2].weight.grad.abs().max() > 0


def test_new_synthesis_blocks_start_as_the_identity(codec):
    """Warm start of a deeper g_s: the shipped weights in a model with synthesis blocks give the
    same x_hat_1 and the same features f1, f2, f3, so stage II's inputs start where they were."""
    wide = RDCModel(ModelConfig(**{**codec.m.model.config.to_dict(), "synthesis_blocks": 1}))
    assert set(loop.load_matching(wide, codec.m.model.state_dict())) == {
        k for k in wide.state_dict() if k.startswith("g_s.refine.")}
    torch.manual_seed(0)
    y_hat = torch.round(torch.randn(1, wide.config.M, 4, 6) * 3)
    with torch.no_grad():
        x0, f0 = codec.m.model.g_s(y_hat)
        x1, f1 = wide.eval().g_s(y_hat)
    for a, b in zip([x0, *f0], [x1, *f1]):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_block_lr_puts_the_refinement_blocks_in_a_group_of_their_own():
    model = RDCModel(ModelConfig(synthesis_blocks=1))
    params = [p for n, p in model.named_parameters() if loop.is_base_param(n)]
    assert loop.param_groups(model, params) == [{"params": params}]
    rest, blocks = loop.param_groups(model, params, block_lr=1e-4)
    assert "blocks" not in rest and blocks["blocks"]
    names = {id(p): n for n, p in model.named_parameters()}
    expected = {n for n, _ in model.g_s.refine.named_parameters(prefix="g_s.refine")}
    assert {names[id(p)] for p in blocks["params"]} == expected
    assert len(rest["params"]) + len(blocks["params"]) == len(params)
    # a model without blocks: one group, even with a block lr
    plain = RDCModel(ModelConfig())
    base = [p for n, p in plain.named_parameters() if loop.is_base_param(n)]
    assert len(loop.param_groups(plain, base, block_lr=1e-4)) == 1


def test_a_base_run_with_synthesis_blocks_trains_them_at_the_block_lr(tmp_path):
    """--synthesis-blocks with --block-lr: the new g_s blocks (absent from the init) learn, the
    block group follows its own schedule (logged lr is the rest's), and the run resumes."""
    torch.manual_seed(0)
    init = tmp_path / "init.pt"
    torch.save({"model": RDCModel(ModelConfig()).state_dict()}, init)
    out = tmp_path / "run"
    argv = ["--stage", "base", "--init", str(init), "--data", str(EXAMPLE.parent),
            "--cache", str(tmp_path / "crops.pt"), "--n-crops", "4", "--crop", "64", "--batch", "2",
            "--lr", "1e-6", "--block-lr", "1e-3", "--budget-minutes", "0.05", "--log-every", "1",
            "--eval-every", "0", "--out", str(out), "--synthesis-blocks", "1"]
    loop.main(argv)
    first = torch.load(out / "last.pt", weights_only=False)
    # resume with a budget 2 s past the first run's clock (the last value wins): its steps run at a
    # learning rate above 0 even if busy cores let the first run make only its step at progress 0
    loop.main([*argv, "--budget-minutes", str((first["elapsed"] + 2) / 60)])
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["step"] > first["step"]
    after = ckpt["model"]
    new = [k for k in after if k.startswith("g_s.refine.")]
    assert len(new) == 8 and all(after[k].abs().max() > 0 for k in new if k.endswith("body.2.weight"))
    groups = ckpt["opt"]["param_groups"]
    assert len(groups) == 2 and groups[1]["blocks"] and groups[1]["lr"] > 100 * groups[0]["lr"] > 0


@pytest.mark.parametrize("blocks", [0, 1])
def test_an_encoder_run_trains_g_a_and_h_a_and_leaves_the_decoder_bit_for_bit(tmp_path, blocks):
    """Stage ``encoder``: only the encoder-only modules move, so files made with the new ``g_a``/``h_a``
    decode with the old decoder; the in-loop evaluation reports the beta = 0 side as well. With
    ``--encoder-blocks`` the new blocks (absent from the init) train too."""
    torch.manual_seed(0)
    init = tmp_path / "init.pt"
    torch.save({"model": RDCModel(ModelConfig()).state_dict()}, init)
    out = tmp_path / "run"
    loop.main(["--stage", "encoder", "--init", str(init), "--data", str(EXAMPLE.parent),
               "--cache", str(tmp_path / "crops.pt"), "--n-crops", "4", "--crop", "64", "--batch", "2",
               "--lr", "1e-3", "--budget-minutes", "0.1", "--log-every", "1", "--eval-every", "1000",
               "--eval-dir", str(EXAMPLE.parent), "--eval-images", "1", "--out", str(out),
               "--encoder-blocks", str(blocks)])
    before = torch.load(init, weights_only=False)["model"]
    after = torch.load(out / "last.pt", weights_only=False)["model"]
    moved = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert moved and all(k.startswith(loop.ENCODER_PREFIXES) for k in moved)
    assert any(k.startswith("g_a.") for k in moved) and any(k.startswith("h_a.") for k in moved)
    new = [k for k in after if k not in before]
    assert all(k.startswith("g_a.refine.") for k in new) and len(new) == 8 * blocks  # 2 scales x 2 convs
    assert all(after[k].abs().max() > 0 for k in new if k.endswith("body.2.weight"))  # left zero, learnt
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert steps and all(r["bpp"] > 0 and r["mse"] > 0 for r in steps)
    final = [r for r in records if r.get("event") == "eval"][-1]
    assert len(final["psnr_b0"]) == len(final["bpp_res"]) == 3


def test_objective_cognition_is_for_stage_encoder_and_takes_stage_i_terms(capsys):
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--stage", "residual", "--out", "o", "--objective", "cognition"])
    assert e.value.code == 2 and "--objective cognition is for --stage encoder" in capsys.readouterr().err
    args = loop.parse_args(["--stage", "encoder", "--out", "o", "--objective", "cognition", "--mse-anchor", "0.3"])
    assert args.mse_anchor == (0.3,) * 6
    with pytest.raises(SystemExit):  # the rate-distortion encoder has no use for them
        loop.parse_args(["--stage", "encoder", "--out", "o", "--mse-anchor", "0.3"])


def test_objective_machines_defaults_to_the_refinements_weights(capsys):
    """``--objective machines`` is the refinement for machines' loss: unless given, its MSE share and
    feature weights are :mod:`rdcodec.refine`'s, and it is for stage encoder only."""
    from rdcodec.refine import FEATURE_WEIGHTS, MACHINE_MSE_SHARE

    args = loop.parse_args(["--stage", "encoder", "--out", "o", "--objective", "machines"])
    assert args.mse_anchor == (MACHINE_MSE_SHARE,) * 6 and args.feature_weight == tuple(FEATURE_WEIGHTS)
    args = loop.parse_args(["--stage", "encoder", "--out", "o", "--objective", "machines", "--feature-weight", "2"])
    assert args.feature_weight == (2.0,) * 6 and args.mse_anchor == (MACHINE_MSE_SHARE,) * 6
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--stage", "cognition", "--out", "o", "--objective", "machines"])
    assert e.value.code == 2 and "--objective machines is for --stage encoder" in capsys.readouterr().err


def test_machine_loss_weighs_each_sample_at_its_level():
    """Per sample: bpp + mu_n lam 255^2 MSE + nu_n D_feat, with mu and nu picked by the sample's level."""
    bpp, mse, feat = torch.tensor([0.2, 0.5]), torch.tensor([1e-3, 2e-3]), torch.tensor([0.3, 0.1])
    idx, lam = torch.tensor([0, 5]), torch.tensor([0.002, 0.05])
    mu, nu = (0.5, 0, 0, 0, 0, 0.25), (1.0, 0, 0, 0, 0, 4.0)
    got = loop.machine_loss(bpp, mse, feat, idx, lam, mu, nu)
    want = torch.tensor([0.2 + 0.5 * 0.002 * 255 ** 2 * 1e-3 + 0.3, 0.5 + 0.25 * 0.05 * 255 ** 2 * 2e-3 + 4 * 0.1])
    assert torch.allclose(got, want)


@pytest.mark.parametrize("objective, extra", [("cognition", ["--queue", "4", "--mse-anchor", "0.3"]),
                                              ("machines", [])])
def test_a_machine_encoder_run_trains_only_the_encoder(tmp_path, shared, objective, extra):
    """Stage ``encoder`` on a machine loss: only g_a and h_a move. ``cognition`` is stage I's loss
    (C > 0 logged); ``machines`` is the refinement's (D_feat logged, no contrastive term)."""
    pytest.importorskip("ai_edge_litert")
    torch.manual_seed(0)
    init = tmp_path / "init.pt"
    torch.save({"model": RDCModel(ModelConfig()).state_dict()}, init)
    out = tmp_path / "run"
    loop.main(["--stage", "encoder", "--objective", objective, "--init", str(init), "--data", str(EXAMPLE.parent),
               "--cache", str(tmp_path / "crops.pt"), "--n-crops", "4", "--crop", "64", "--batch", "2",
               "--lr", "1e-3", "--budget-minutes", "0.1", "--log-every", "1", "--eval-every", "0", "--out", str(out),
               "--backbone", str(shared / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"),
               *extra])
    before = torch.load(init, weights_only=False)["model"]
    after = torch.load(out / "last.pt", weights_only=False)["model"]
    moved = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert moved and all(k.startswith(loop.ENCODER_PREFIXES) for k in moved)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert records and all(r["bpp"] > 0 for r in records)
    if objective == "cognition":
        assert all(r["c"] > 0 for r in records)
    else:
        assert all(r["c"] == 0 and r["feat"] > 0 for r in records)


def test_rate_warmup_ramps_the_rate_weight_to_one():
    assert loop.rate_weight(0, 0) == loop.rate_weight(10 ** 6, 0) == 1.0
    weights = [loop.rate_weight(s, 30) for s in range(0, 40, 10)]
    assert weights == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert all(a < b for a, b in zip(weights, weights[1:]))


def test_a_residual_run_with_a_detail_latent_trains_it_at_the_block_lr(tmp_path):
    """--enhance: the detail latent (absent from the init) learns in the block group, the base
    stays bit for bit, and the checkpoint's config keeps the channel count."""
    torch.manual_seed(0)
    init = tmp_path / "init.pt"
    start = RDCModel(ModelConfig())
    torch.save({"model": start.state_dict()}, init)
    out = tmp_path / "run"
    argv = ["--stage", "residual", "--init", str(init), "--data", str(EXAMPLE.parent),
            "--cache", str(tmp_path / "crops.pt"), "--n-crops", "4", "--crop", "64", "--batch", "2",
            "--lr", "1e-6", "--block-lr", "1e-3", "--rate-warmup", "100", "--budget-minutes", "0.05",
            "--log-every", "1", "--eval-every", "0", "--out", str(out), "--enhance", "4"]
    loop.main(argv)
    first = torch.load(out / "last.pt", weights_only=False)
    # resumed 2 s past the first run's clock, so that steps run at a learning rate above 0 (see above)
    loop.main([*argv, "--budget-minutes", str((first["elapsed"] + 2) / 60)])
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["step"] > first["step"] and ckpt["args"]["enhance"] == 4
    after = ckpt["model"]
    assert after["detail_s.layers.4.weight"].abs().max() > 0  # started at zero
    assert all(torch.equal(after[k], v) for k, v in start.state_dict().items() if loop.is_base_param(k))
    groups = ckpt["opt"]["param_groups"]
    assert len(groups) == 2 and groups[1]["blocks"]
    model = RDCModel(loop.model_config(ckpt["args"]))
    assert loop.load_matching(model, after) == [] and model.config.enhance == 4


def test_every_model_option_of_a_run_reaches_its_model():
    """``model_config`` reads every ModelConfig field that has a training option (named like the
    field), so an option added later reaches the model and the exported config without a second list;
    a checkpoint from before a field existed gets the field's default."""
    import dataclasses

    args = vars(loop.parse_args(["--stage", "eye", "--out", "o", "--machine-head", "8", "--head-gains",
                                 "--eye-share", "--eye-head", "12", "--eye-head-blocks", "5",
                                 "--rrn-blocks", "2", "--residual-lambda-factor", "3.5",
                                 "--context", "space-channel"]))
    config = loop.model_config(args)
    assert (config.machine_head, config.head_gains, config.eye_share, config.eye_head) == (8, True, True, 12)
    assert (config.eye_head_blocks, config.rrn_blocks, config.residual_lambda_factor) == (5, 2, 3.5)
    assert config.context == "space-channel"
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    # the architecture's sizes and the base's lambda scale are fixed, every other field is an option
    assert fields - set(args) == {"N", "M", "S", "base_lambda_scale"}
    older = {k: v for k, v in args.items() if k != "eye_head_blocks"}
    assert loop.model_config(older).eye_head_blocks == ModelConfig.eye_head_blocks

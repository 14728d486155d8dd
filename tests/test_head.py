"""The machine head (rdcodec/model/head.py): identity start, stripes, Eq. 9 with the head, files.

The coded model is the shipped one with a head whose last convolution does not start at zero
(random, scaled down), exported as full weights to a temporary folder, so that every path that
renders the base image shows whether the head ran.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rdcodec import weights as weights_mod
from rdcodec.bitstream import container
from rdcodec.codec import Codec, Reconstruction
from rdcodec.model.head import MachineHead, apply_even, apply_in_stripes
from rdcodec.model.rdc import CodingModel, ModelConfig, RDCModel
from rdcodec.train import loop

from .conftest import EXAMPLE, exported_codec, extended_model, psnr

C = 8
PLAIN = "rdc-v22"  # shipped weights without a head
BACKBONE = Path(__file__).resolve().parent.parent / "weights" / "mobilenet-v1-embedding.safetensors"


def _busy_head(head: MachineHead, seed: int = 0) -> MachineHead:
    torch.manual_seed(seed)
    with torch.no_grad():
        head.out.weight.normal_(0, 0.02)
        for block in head.body:
            block.body[-1].weight.normal_(0, 0.05)
    return head.eval()


def _busy_gains(head: MachineHead, seed: int = 0) -> MachineHead:
    torch.manual_seed(seed)
    with torch.no_grad():
        head.log_gain_in.normal_(0, 0.5)
        head.log_gain_out.normal_(0, 0.5)
    return head


def _head_model(head_gains: bool = False) -> RDCModel:
    model, _ = extended_model(PLAIN, loop.HEAD_PREFIXES, machine_head=C, head_gains=head_gains)
    _busy_head(model.head)
    if head_gains:
        _busy_gains(model.head)
    return model.eval()


@pytest.fixture(scope="module")
def hcodec(tmp_path_factory):
    codec = exported_codec(_head_model(), tmp_path_factory.mktemp("w"), "head")
    assert codec.m.model.config.machine_head == C
    return codec


def test_a_fresh_head_is_the_identity():
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(MachineHead(C)(x), x)


def test_a_conditioned_head_starts_as_the_plain_head_and_interpolates_its_gains():
    """Unit gains give the same head without them at every alpha; alpha = n / 5 uses level n's
    gains, and alpha between two levels their geometric mean (paper Eq. 3's interpolation)."""
    plain = _busy_head(MachineHead(C))
    cond = MachineHead(C, levels=6)
    cond.load_state_dict(plain.state_dict(), strict=False)
    cond.eval()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        for a in (0.0, 0.37, 1.0):
            assert torch.equal(cond(x, torch.tensor([a, a])), plain(x))
        _busy_gains(cond)
        outs = {a: cond(x, torch.tensor([a])) for a in (0.2, 0.3, 0.4)}
        assert not torch.allclose(outs[0.2], outs[0.4], atol=1e-4)
        mid = MachineHead(C, levels=6)
        mid.load_state_dict(cond.state_dict())
        mid.log_gain_in[:] = (cond.log_gain_in[1] + cond.log_gain_in[2]) / 2
        mid.log_gain_out[:] = (cond.log_gain_out[1] + cond.log_gain_out[2]) / 2
        torch.testing.assert_close(mid.eval()(x, torch.tensor([0.0])), outs[0.3], rtol=0, atol=1e-5)
        per_sample = cond(x, torch.tensor([0.2, 0.4]))  # one alpha per image of a batch
        torch.testing.assert_close(per_sample[1:], cond(x[1:], torch.tensor([0.4])), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        cond(x)


def test_stripes_and_odd_sizes_give_the_whole_image_result():
    head = _busy_head(MachineHead(C))
    x = torch.rand(1, 3, 301, 97)  # odd sides, and more rows than one stripe plus its halos
    with torch.no_grad():
        whole = apply_even(head, x)
        striped = apply_in_stripes(head, x, stripe=64, halo=32)
        cond = _busy_gains(MachineHead(C, levels=6))
        cond.load_state_dict(head.state_dict(), strict=False)
        alpha = torch.tensor([0.55])
        cond_striped = apply_in_stripes(cond.eval(), x, alpha, stripe=64, halo=32)
        cond_whole = apply_even(cond, x, alpha)
    assert whole.shape == x.shape and not torch.equal(whole, x)
    torch.testing.assert_close(striped, whole, rtol=0, atol=1e-5)
    assert not torch.allclose(cond_whole, whole, atol=1e-4)
    torch.testing.assert_close(cond_striped, cond_whole, rtol=0, atol=1e-5)


def test_rendering_with_a_head_keeps_the_beta_0_image_and_runs_it_only_above_0():
    """Eq. 9 with the head: beta P(x_hat_1) + (1 - beta)(x_hat_1 + r). beta = 0 is the image
    without a head to the bit, and the head runs once, on the first render above beta = 0."""
    head = _busy_head(MachineHead(C))
    calls = []

    def counted(x):
        calls.append(1)
        with torch.no_grad():
            return head(x)

    x1, r = torch.rand(1, 3, 64, 64), 0.1 * torch.randn(1, 3, 64, 64)
    plain, with_head = Reconstruction(x1, r), Reconstruction(x1, r, counted)
    assert np.array_equal(with_head.render(0.0), plain.render(0.0)) and not calls
    with torch.no_grad():
        xm = head(x1)
    expected = (0.5 * xm + 0.5 * (x1 + r))[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(with_head.render(0.5).astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(with_head.render(1.0), Reconstruction(xm, None).render(1.0))
    assert len(calls) == 1
    assert not np.array_equal(with_head.render(1.0), plain.render(1.0))
    base_only = Reconstruction(x1, None, counted)  # no residual: the head's image at every beta
    assert np.array_equal(base_only.render(0.0), base_only.render(1.0))


def test_files_are_the_same_bytes_and_only_beta_1_moves(hcodec, crop):
    """The head costs no bits: with the same weights id the file is the plain model's byte for
    byte, beta = 0 decodes to the same image, and beta = 1 is the head's image."""
    model, z_pmf, _ = weights_mod.load(PLAIN)
    plain = Codec(CodingModel(model, z_pmf), hcodec.weights_id)  # writing the head weights' id
    c, p = hcodec.compress(crop, 0.6), plain.compress(crop, 0.6)
    assert c.data == p.data
    recon, notes = hcodec.decompress(c.data)
    assert notes == {}
    for beta in (0.0, 0.5, 1.0):  # the encoder's reconstruction is the decoder's
        assert np.array_equal(recon.render(beta), c.recon.render(beta))
    assert np.array_equal(recon.render(0.0), p.recon.render(0.0))
    assert not np.array_equal(recon.render(1.0), p.recon.render(1.0))
    expected = hcodec.m.head(p.recon.x_hat_1).float()
    torch.testing.assert_close(recon.base_image(), expected, rtol=0, atol=1e-5)
    assert psnr(recon.render(0.0), crop) > psnr(recon.render(1.0), crop)  # beta still moves fidelity


def test_a_conditioned_head_renders_at_the_files_alpha(tmp_path, crop):
    """Weights with head gains: the decoder renders P(x_hat_1; alpha) at the alpha in the header
    (as the encoder did), the bytes and the beta = 0 image are still the plain model's."""
    codec = exported_codec(_head_model(head_gains=True), tmp_path, "head-gains")
    assert codec.m.model.head.conditioned
    model, z_pmf, _ = weights_mod.load(PLAIN)
    plain = Codec(CodingModel(model, z_pmf), codec.weights_id)
    for alpha in (0.3, 0.7):
        c, p = codec.compress(crop, alpha), plain.compress(crop, alpha)
        assert c.data == p.data
        recon, _ = codec.decompress(c.data)
        assert np.array_equal(recon.render(1.0), c.recon.render(1.0))
        assert np.array_equal(recon.render(0.0), p.recon.render(0.0))
        a = container.parse_header(c.data).alpha
        with torch.no_grad():
            expected = codec.m.head(p.recon.x_hat_1, torch.tensor([a])).float()
            unit = codec.m.head(p.recon.x_hat_1, torch.tensor([0.0 if alpha > 0.5 else 1.0])).float()
        torch.testing.assert_close(recon.base_image(), expected, rtol=0, atol=1e-5)
        assert not torch.allclose(recon.base_image(), unit, atol=1e-3)  # another alpha's gains differ


def test_the_output_filter_applies_after_the_head(hcodec, crop):
    """With the Wiener filter (fitted to the beta = 0 image) the decoder still renders what the
    encoder did at every beta."""
    c = hcodec.compress(crop, 0.6, output_filter=True)
    recon, _ = hcodec.decompress(c.data)
    for beta in (0.0, 1.0):
        assert np.array_equal(recon.render(beta), c.recon.render(beta))


def test_a_stripped_file_decodes_to_the_heads_image(hcodec, crop):
    c = hcodec.compress(crop, 0.4)
    recon, _ = hcodec.decompress(container.strip_residual(c.data))
    assert recon.r is None
    assert np.array_equal(recon.render(0.0), recon.render(1.0))
    assert np.array_equal(recon.render(1.0), c.recon.render(1.0))


@pytest.mark.parametrize("extra", [[], ["--head-gains", "--head-balance"]])
def test_a_head_run_trains_only_the_head(tmp_path, extra):
    """Stage ``head`` moves the head's tensors and nothing else, and logs D_feat; with
    ``--head-gains`` the per-level gains train too."""
    torch.manual_seed(0)
    init = tmp_path / "init.pt"
    torch.save({"model": RDCModel(ModelConfig()).state_dict()}, init)
    out = tmp_path / "run"
    loop.main(["--stage", "head", "--machine-head", str(C), "--init", str(init), "--data", str(EXAMPLE.parent),
               "--cache", str(tmp_path / "crops.pt"), "--n-crops", "4", "--crop", "64", "--batch", "2",
               "--lr", "1e-3", "--budget-minutes", "0.05", "--log-every", "1", "--eval-every", "2",
               "--eval-dir", str(EXAMPLE.parent), "--eval-images", "1", "--out", str(out), "--backbone", str(BACKBONE),
               *extra])
    before = torch.load(init, weights_only=False)["model"]
    after = torch.load(out / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(after[k].abs().sum() > 0 for k in after if k.startswith("head.out."))  # started at zero
    assert ("head.log_gain_out" in after) == bool(extra)
    if extra:  # the gains start at 1 (logs 0) and move
        assert after["head.log_gain_out"].abs().sum() > 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert steps and all(r["feat"] > 0 and r["bpp"] == 0 for r in steps)
    assert all("psnr_m" in r for r in records if r.get("event") == "eval")


def test_stage_head_needs_a_head(capsys):
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--stage", "head", "--out", "o"])
    assert e.value.code == 2 and "--machine-head" in capsys.readouterr().err


def test_level_balance_weighs_each_levels_relative_loss_alike():
    balance = loop.LevelBalance(3, decay=0.5)
    idx = torch.tensor([0, 0, 2, 2])
    loss = torch.tensor([4.0, 4.0, 1.0, 1.0])  # level 0's loss is 4x level 2's; level 1 unseen
    w = balance(loss, idx)
    torch.testing.assert_close(w * loss, torch.full((4,), 2.5))
    assert not w.requires_grad
    w = balance(torch.tensor([2.0, 2.0, 1.0, 1.0]), idx)  # running means: 3 and 1
    torch.testing.assert_close(w, torch.tensor([2 / 3, 2 / 3, 2.0, 2.0]))

"""The eye share (rdcodec/train/eye_share.py): the beta = 0 image takes a fitted share c(alpha) of
the machine head's image, x_eye = (1 - c)(x_hat_1 + r) + c P(x_hat_1).

The coded model is rdc-v29 (a head, no share) with chosen shares, exported as full weights."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rdcodec import weights as weights_mod
from rdcodec.api import get_codec
from rdcodec.bitstream import container
from rdcodec.codec import Codec, Reconstruction
from rdcodec.model.gain import LAMBDAS, level_alpha
from rdcodec.model.head import MAX_HEAD_BLOCKS, MachineHead, apply_even, apply_in_stripes
from rdcodec.model.rdc import CodingModel, ModelConfig, RDCModel
from rdcodec.train import eye_share, loop

from .conftest import EXAMPLE, exported_codec, extended_model, psnr

HEAD = "rdc-v29"  # shipped weights with a head and no share
SHARED = "rdc-v30"  # shipped weights with a head and an eye share, no eye head
SHARES = torch.tensor([[0.1, 0.2, 0.3], [0.2, 0.2, 0.2], [0.3, 0.3, 0.3],
                       [0.5, 0.4, 0.3], [0.6, 0.6, 0.6], [0.4, 0.5, 0.6]])


def _codec(name: str) -> Codec:
    model, z_pmf, info = weights_mod.load(name)
    return Codec(CodingModel(model, z_pmf), info.weights_id, info.name)


@pytest.fixture(scope="module")
def head_codec():
    return _codec(HEAD)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    model, _ = extended_model(HEAD, ("eye_share",), eye_share=True)
    with torch.no_grad():
        model.eye_share.copy_(SHARES)
    return exported_codec(model.eval(), tmp_path_factory.mktemp("w"), "shared")


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def test_an_eye_share_needs_a_head():
    with pytest.raises(ValueError, match="machine_head"):
        ModelConfig(eye_share=True)


def test_the_share_is_each_levels_and_linear_in_alpha_between_them(shared):
    """Stored as float16 like every weight: exact at these values' precision."""
    for n in range(len(LAMBDAS)):
        torch.testing.assert_close(shared.m.eye_share(level_alpha(n)).flatten(), SHARES[n], atol=1e-3, rtol=0)
    mid = shared.m.eye_share(0.5).flatten()  # halfway between levels 2 and 3
    torch.testing.assert_close(mid, (SHARES[2] + SHARES[3]) / 2, atol=1e-3, rtol=0)


def test_rendering_mixes_the_heads_image_into_beta_0_only():
    """beta = 0 is (1 - c)(x_hat_1 + r) + c P, beta = 1 is P, and Eq. 9 runs between them."""
    x1, r = torch.rand(1, 3, 32, 48), 0.1 * torch.randn(1, 3, 32, 48)

    def head(x):
        return 0.8 * x + 0.1

    c = torch.tensor([0.2, 0.5, 0.9]).reshape(1, 3, 1, 1)
    rec = Reconstruction(x1, r, head, lambda x_0, x_m: x_0 + c * (x_m - x_0))
    eye = (1 - c) * (x1 + r) + c * head(x1)
    assert np.abs(rec.render(0.0).astype(int) - _to_uint8(eye).astype(int)).max() <= 1
    assert np.array_equal(rec.render(1.0), _to_uint8(head(x1)))
    half = 0.5 * head(x1) + 0.5 * eye
    assert np.abs(rec.render(0.5).astype(int) - _to_uint8(half).astype(int)).max() <= 1
    assert not np.array_equal(rec.render(0.0), Reconstruction(x1, r, head).render(0.0))
    assert np.array_equal(Reconstruction(x1, None, head, rec.eye).render(0.0), rec.render(1.0))  # no residual: P


def test_files_are_the_same_bytes_and_beta_1_is_unchanged(shared, head_codec, crop):
    """The share costs no bits and leaves beta = 1 alone: with the same weights id the file is the
    head weights' byte for byte; the decoder renders what the encoder did at every beta."""
    plain = Codec(head_codec.m, shared.weights_id)  # rdc-v29 writing the shared weights' id
    for alpha in (0.1, 0.7):
        c, p = shared.compress(crop, alpha), plain.compress(crop, alpha)
        assert c.data == p.data
        recon, _ = shared.decompress(c.data)
        for beta in (0.0, 0.3, 1.0):
            assert np.array_equal(recon.render(beta), c.recon.render(beta))
        assert np.array_equal(recon.render(1.0), p.recon.render(1.0))
        assert not np.array_equal(recon.render(0.0), p.recon.render(0.0))
        share = shared.m.eye_share(container.parse_header(c.data).alpha)
        x_0, x_m = p.recon.x_hat_1 + p.recon.r, p.recon.base_image()
        torch.testing.assert_close(recon.eye_image(), x_0 + share * (x_m - x_0), rtol=0, atol=1e-5)


def test_the_output_filter_is_fitted_to_the_mixed_image(shared, example):
    image = np.ascontiguousarray(example[:256, :256])
    c = shared.compress(image, 0.6, output_filter=True)
    assert container.parse_header(c.data).has_filter  # pays on this crop, so the path below runs
    recon, _ = shared.decompress(c.data)
    for beta in (0.0, 0.5, 1.0):
        assert np.array_equal(recon.render(beta), c.recon.render(beta))
    assert psnr(recon.render(0.0), image) > psnr(shared.compress(image, 0.6).recon.render(0.0), image)


def test_the_fit_is_the_least_squares_share_and_ships_in_the_weights(head_codec, example, tmp_path):
    """On a few crops the fitted share beats any share 0.05 away on each level's squared error, and
    the fitted weights' beta = 0 image is that mix."""
    crops = torch.stack([torch.from_numpy(np.ascontiguousarray(example[t:t + 64, l:l + 64])).permute(2, 0, 1)
                         for t, l in ((0, 0), (200, 300), (100, 500))])
    share, gain_db = eye_share.fit(head_codec, crops)
    assert share.shape == (len(LAMBDAS), 3) and bool((gain_db > 0).all()), gain_db
    for n in (0, 5):
        err = {d: 0.0 for d in (-0.05, 0.0, 0.05)}
        for crop in crops:
            rec = head_codec.compress(crop.permute(1, 2, 0).numpy(), level_alpha(n)).recon
            x = crop[None].double() / 255
            x_0, x_m = (rec.x_hat_1 + rec.r).double(), rec.base_image().double()
            for d in err:
                c = (share[n].double() + d).reshape(1, 3, 1, 1)
                err[d] += float(((x - x_0 - c * (x_m - x_0)) ** 2).sum())
        assert err[0.0] < err[-0.05] and err[0.0] < err[0.05], (n, err)
    codec = exported_codec(eye_share.with_share(head_codec.m.model, share), tmp_path, "fitted")
    torch.testing.assert_close(codec.m.eye_share(0.0).flatten(), share[0], atol=1e-3, rtol=0)


# ---------------------------------------------------------------- the eye head (stage eye)
EYE_C = 8


def _eye_model(busy: bool):
    """rdc-v30 (head, eye share, no eye head) with an eye head; ``busy``: its last layers random,
    scaled down (a fresh one is the identity)."""
    model, _ = extended_model(SHARED, ("eye_head.",), eye_head=EYE_C)
    if busy:
        torch.manual_seed(0)
        with torch.no_grad():
            model.eye_head.out.weight.normal_(0, 0.02)
            model.eye_head.log_gain_in.normal_(0, 0.3)
    return model.eval()


def test_a_fresh_eye_head_keeps_the_beta_0_image(crop, tmp_path):
    default = get_codec(SHARED)
    assert default.m.has_eye and default.m.eye_head is None
    codec = exported_codec(_eye_model(busy=False), tmp_path, "eye-fresh")
    c, d = codec.compress(crop, 0.4), default.compress(crop, 0.4)
    torch.testing.assert_close(c.recon.eye_image(), d.recon.eye_image(), rtol=0, atol=1e-6)


def test_an_eye_head_changes_beta_0_only_and_decodes_as_encoded(crop, tmp_path):
    default = get_codec(SHARED)
    codec = exported_codec(_eye_model(busy=True), tmp_path, "eye-busy")
    plain = Codec(default.m, codec.weights_id)
    c, p = codec.compress(crop, 0.4), plain.compress(crop, 0.4)
    assert c.data == p.data  # no bits
    recon, _ = codec.decompress(c.data)
    for beta in (0.0, 0.5, 1.0):
        assert np.array_equal(recon.render(beta), c.recon.render(beta))
    assert np.array_equal(recon.render(1.0), p.recon.render(1.0))
    assert not np.array_equal(recon.render(0.0), p.recon.render(0.0))
    x_s, x_m = p.recon.eye_image(), p.recon.base_image()
    with torch.no_grad():
        expected = codec.m.eye_head(x_s, torch.tensor([container.parse_header(c.data).alpha]), x_m).float()
    torch.testing.assert_close(recon.eye_image(), expected, rtol=0, atol=1e-4)


def _same_base_and_beta_1(codec: Codec, other: Codec, crop, alpha: float):
    """Both codecs' compressions of ``crop`` (``other``'s under ``codec``'s weights id), asserting
    the same base layer (the file's bytes once its residual layer is stripped) and so the same
    beta = 1 image."""
    c, p = codec.compress(crop, alpha), Codec(other.m, codec.weights_id).compress(crop, alpha)
    assert container.strip_residual(c.data) == container.strip_residual(p.data)
    assert np.array_equal(c.recon.render(1.0), p.recon.render(1.0))
    return c, p


def _same_file_and_beta_1(codec: Codec, other: Codec, crop, alpha: float):
    """As :func:`_same_base_and_beta_1`, and the residual layers' bytes the same too."""
    c, p = _same_base_and_beta_1(codec, other, crop, alpha)
    assert c.data == p.data
    return c, p


def test_the_default_weights_trained_eye_head_lifts_beta_0_over_the_same_base(crop):
    """The shipped default (rdc-v34) is rdc-v30 with a trained eye head (and the residual layer
    trained for it): the same base layer and beta = 1 image, a different beta = 0 image, closer to
    the original at each end of alpha's range."""
    default, shared = get_codec(), get_codec(SHARED)
    assert default.m.eye_head is not None
    for alpha in (0.0, 1.0):
        c, p = _same_base_and_beta_1(default, shared, crop, alpha)
        assert psnr(c.recon.render(0.0), crop) > psnr(p.recon.render(0.0), crop)


def test_the_default_is_rdc_v31_with_only_its_beta_0_layers_trained_on(crop):
    """The default (rdc-v34: run 32's ``--residual-decoder``, run 33's deeper eye head, run 34's
    ``--residual-layer``) differs from rdc-v31 only in the eye head and the residual layer, so it
    makes rdc-v31's base layer and beta = 1 image, and its own residual layer; its eye head has
    blocks rdc-v31's lacks."""
    default, v31 = get_codec(), get_codec("rdc-v31")
    new, old = default.m.model.state_dict(), v31.m.model.state_dict()
    assert old.keys() <= new.keys()
    added = new.keys() - old.keys()
    assert added and all(k.startswith("eye_head.body.") for k in added), sorted(added)[:3]
    assert default.m.model.config.eye_head_blocks > v31.m.model.config.eye_head_blocks
    moved = {k for k in old if not torch.equal(new[k], old[k])}
    assert all(k.startswith("eye_head.") or loop.is_residual_param(k) for k in moved), sorted(moved)[:3]
    for part in ("rrn.", "scalable.dec.", "scalable.enc.", "gain_s."):
        assert any(k.startswith(part) for k in moved), part
    c, p = _same_base_and_beta_1(default, v31, crop, 0.5)
    assert c.data != p.data  # run 34 trained the residual layer's encoder side
    assert not np.array_equal(c.recon.render(0.0), p.recon.render(0.0))


def _eye_run(tmp_path, *extra: str) -> tuple[dict, dict, Path]:
    """A few steps of stage ``eye`` on a small random model: (state before, state after, run folder)."""
    torch.manual_seed(0)
    init = tmp_path / "init.pt"
    config = ModelConfig(machine_head=4, head_gains=True, eye_share=True, eye_head=EYE_C)
    model = RDCModel(config)
    with torch.no_grad():
        model.eye_share.fill_(0.3)
    torch.save({"model": model.state_dict()}, init)
    out = tmp_path / "run"
    loop.main(["--stage", "eye", "--machine-head", "4", "--head-gains", "--eye-share", "--eye-head", str(EYE_C),
               "--head-balance", "--init", str(init), "--data", str(EXAMPLE.parent),
               "--cache", str(tmp_path / "crops.pt"), "--n-crops", "4", "--crop", "64", "--batch", "2",
               "--lr", "1e-3", "--budget-minutes", "0.05", "--log-every", "1", "--eval-every", "2",
               "--eval-dir", str(EXAMPLE.parent), "--eval-images", "1", "--out", str(out), *extra])
    before = torch.load(init, weights_only=False)["model"]
    after = torch.load(out / "last.pt", weights_only=False)["model"]
    return before, after, out


def test_an_eye_run_trains_only_the_eye_head(tmp_path):
    """Stage ``eye`` moves the eye head's tensors and nothing else (the eye share included) and
    logs the beta = 0 image's PSNR beside the others."""
    before, after, out = _eye_run(tmp_path)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("eye_head.") for k in moved), sorted(moved)[:3]
    assert after["eye_head.out.weight"].abs().sum() > 0  # started at zero
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r for r in records if "loss" in r]
    assert all("psnr_eye" in r and "psnr_b0" in r for r in records if r.get("event") == "eval")


def test_an_eye_run_with_the_residual_decoder_keeps_every_encoder_tensor(tmp_path):
    """``--residual-decoder`` also trains ``dec`` and the reconstruction network, and nothing the
    encoder runs: ``g_a``, the priors, ``scalable.enc`` and the gains stay, so files keep their bytes."""
    before, after, _ = _eye_run(tmp_path, "--residual-decoder")
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert all(k.startswith(("eye_head.", *loop.RESIDUAL_DECODER_PREFIXES)) for k in moved), sorted(moved)
    for part in ("eye_head.", "scalable.dec.", "rrn."):
        assert any(k.startswith(part) for k in moved), part
    assert not any(k.startswith(("scalable.enc.", "residual_prior.", "gain_s.", "g_a.", "head.")) for k in moved)


def test_an_eye_run_with_the_residual_layer_trains_its_encoder_side_on_its_bits(tmp_path):
    """``--residual-layer`` trains the whole residual layer (``scalable.enc`` and ``gain_s`` too) with
    the eye head, on a loss that counts the residual layer's bits; the base layer and the machine
    head stay, so beta = 1 is unchanged."""
    before, after, out = _eye_run(tmp_path, "--residual-layer")
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert all(k.startswith("eye_head.") or loop.is_residual_param(k) for k in moved), sorted(moved)
    for part in ("eye_head.", "scalable.enc.", "scalable.dec.", "rrn.", "gain_s."):
        assert any(k.startswith(part) for k in moved), part
    assert not any(loop.is_base_param(k) or k.startswith(("head.", "eye_share")) for k in moved)
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(r["bpp"] > 0 for r in steps if "loss" in r)  # the loss has the residual bits


def test_the_eye_run_without_the_residual_layer_logs_no_bits(tmp_path):
    """Stage eye's decoder-side runs do not change the bits, so their loss has none (logged 0)."""
    _, _, out = _eye_run(tmp_path, "--residual-decoder")
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps and all(r["bpp"] == 0 for r in steps if "loss" in r)


def test_stage_eye_options_widen_what_trains_and_never_reach_the_base_layer():
    """The eye head alone, then with its residual decoder side, then with the whole residual layer:
    each option trains a strict superset, and none a tensor of the base layer or the machine head."""
    names = list(RDCModel(ModelConfig(machine_head=4, head_gains=True, eye_share=True, eye_head=EYE_C)).state_dict())
    head_only, decoder, layer = ({n for n in names if loop.eye_trains(n, *options)}
                                 for options in ((False, False), (True, False), (False, True)))
    assert head_only and all(n.startswith("eye_head.") for n in head_only)
    assert head_only < decoder < layer
    assert any(n.startswith(("scalable.enc.", "gain_s.")) for n in layer - decoder)
    assert not any(loop.is_base_param(n) or n.startswith(("head.", "eye_share")) for n in layer)


@pytest.mark.parametrize("option", ["--residual-decoder", "--residual-layer"])
def test_the_residual_options_are_for_stage_eye_only(capsys, option):
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--stage", "residual", option, "--out", "o"])
    assert e.value.code == 2 and "--stage eye" in capsys.readouterr().err


def test_stage_eye_needs_both_heads(capsys):
    with pytest.raises(SystemExit) as e:
        loop.parse_args(["--stage", "eye", "--machine-head", "8", "--out", "o"])
    assert e.value.code == 2 and "--eye-head" in capsys.readouterr().err


@pytest.mark.parametrize("blocks", [3, MAX_HEAD_BLOCKS])
def test_an_eye_head_reads_its_side_image_in_stripes_as_whole(blocks):
    """The eye head reads P(x_hat_1) beside its input; striped (tall images) and odd-sized inputs
    give the whole-image result, and the side image matters, up to the deepest head allowed (every
    block busy, so the head reaches as far as it can)."""
    head = MachineHead(EYE_C, blocks=blocks, levels=len(LAMBDAS), inputs=6)
    torch.manual_seed(1)
    with torch.no_grad():
        head.out.weight.normal_(0, 0.05)
        for block in head.body:
            block.body[-1].weight.normal_(0, 0.05)
        x, side = torch.rand(1, 3, 301, 47), torch.rand(1, 3, 301, 47)
        alpha = torch.tensor([0.3])
        whole = apply_even(head.eval(), x, alpha, side)
        striped = apply_in_stripes(head, x, alpha, side, stripe=64, halo=32)
        other = apply_even(head, x, alpha, torch.rand(1, 3, 301, 47))
    assert whole.shape == x.shape
    torch.testing.assert_close(striped, whole, rtol=0, atol=1e-5)
    assert not torch.allclose(other, whole, atol=1e-4)


@pytest.mark.parametrize("blocks", [0, MAX_HEAD_BLOCKS + 1])
def test_an_eye_head_deeper_than_its_stripes_reach_is_refused(blocks):
    with pytest.raises(ValueError, match="eye_head_blocks"):
        ModelConfig(machine_head=4, eye_head=EYE_C, eye_head_blocks=blocks)


def test_a_deeper_eye_head_starts_as_the_shallower_one(crop, tmp_path):
    """Blocks added to a shipped eye head start as the identity (rdc-v32's, which run 33 deepened):
    exported and loaded back, the deeper model decodes rdc-v32's file to the same beta = 0 image,
    and keeps its depth."""
    shallow = get_codec("rdc-v32")
    blocks = shallow.m.model.config.eye_head_blocks + 2
    new = tuple(f"eye_head.body.{i}." for i in range(blocks - 2, blocks))
    model, _ = extended_model("rdc-v32", new, eye_head_blocks=blocks)
    deeper = exported_codec(model.eval(), tmp_path, "deeper")
    assert deeper.m.model.config.eye_head_blocks == blocks and len(deeper.m.model.eye_head.body) == blocks
    c, d = _same_file_and_beta_1(deeper, shallow, crop, 0.6)
    assert np.array_equal(c.recon.render(0.0), d.recon.render(0.0))


def test_an_eye_run_deepens_the_init_eye_head(tmp_path):
    """``--eye-head-blocks`` beyond the init's: the init's blocks load, the new ones train from the
    identity, and the checkpoint remembers the depth (what export reads back)."""
    before, after, out = _eye_run(tmp_path, "--eye-head-blocks", "5")
    assert not any(k.startswith("eye_head.body.4.") for k in before)
    assert after["eye_head.body.4.body.2.weight"].abs().sum() > 0  # started at zero
    model, _, missing = loop.load_checkpoint(out / "last.pt")
    assert model.config.eye_head_blocks == 5 and not missing

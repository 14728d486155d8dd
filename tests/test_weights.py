"""Encoder weights: only g_a and h_a, for a named decoder whose files they make
(``rdcodec.weights.export_encoder``; ``docs/model.md``)."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save

from rdcodec import api, weights
from rdcodec.bitstream import container
from rdcodec.errors import WeightsError

DECODER = "rdc-v19"  # shipped full weights


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    """Encoder weights for rdc-v19 with a perturbed g_a and h_a (so they differ from its own)."""
    model = copy.deepcopy(weights.load(DECODER)[0])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(weights.ENCODER_PREFIXES):
                p.mul_(1.01)
    path = tmp_path_factory.mktemp("enc") / "t-enc.safetensors"
    digest = weights.export_encoder(model, path, DECODER, {"name": "t-enc"})
    return path, digest, model


def test_encoder_weights_hold_only_the_encoder_and_load_on_their_decoder(encoder_file):
    path, digest, trained = encoder_file
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert keys and all(k.startswith(weights.ENCODER_PREFIXES) for k in keys)
    assert meta["decoder"] == DECODER and meta["decoder_sha256"] == weights.resolve(DECODER).sha256
    model, z_pmf, info = weights.load(path)
    base, base_pmf, base_info = weights.load(DECODER)
    assert info.sha256 == digest and info.decoder.name == DECODER
    assert info.weights_id == base_info.weights_id  # files name the decoder
    assert torch.equal(z_pmf, base_pmf)
    for k, v in model.state_dict().items():
        if k in keys:  # stored as float16
            assert torch.equal(v, trained.state_dict()[k].half().float()), k
        elif not k.startswith(weights.ENCODER_PREFIXES):  # (the encoder's GDN constants are not stored)
            assert torch.equal(v, base.state_dict()[k]), k
    assert not torch.equal(model.state_dict()[keys[0]], base.state_dict()[keys[0]])
    assert base is weights.load(DECODER)[0]  # the cached decoder model was not changed in place


def test_files_from_encoder_weights_decode_exactly_with_the_decoder_weights(encoder_file, crop):
    path = encoder_file[0]
    enc = api.get_codec(str(path))
    data = enc.compress(crop, 0.5).data
    assert data != api.get_codec(DECODER).compress(crop, 0.5).data  # another encoder, another latent
    assert container.parse_header(data).weights_id == weights.resolve(DECODER).weights_id
    assert api.decoder_for(data).weights_name == DECODER
    a, b = api.get_codec(DECODER).decompress(data)[0], enc.decompress(data)[0]
    for beta in (0.0, 1.0):
        assert np.array_equal(a.render(beta), b.render(beta))


def test_an_encoder_for_other_decoder_tensors_is_refused_and_nothing_is_written(tmp_path):
    model = copy.deepcopy(weights.load(DECODER)[0])
    name, param = next((n, p) for n, p in model.named_parameters() if n.startswith("g_s."))
    with torch.no_grad():
        param.add_(0.01)
    path = tmp_path / "bad.safetensors"
    with pytest.raises(WeightsError, match=f"{re.escape(name)} is not rdc-v19's"):
        weights.export_encoder(model, path, DECODER)
    assert not path.exists()


def test_encoder_weights_whose_decoder_changed_are_refused(encoder_file, tmp_path):
    path = encoder_file[0]
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    stale = tmp_path / "stale.safetensors"
    stale.write_bytes(save(tensors, metadata={**meta, "decoder_sha256": "0" * 64}))
    with pytest.raises(WeightsError, match="made for rdc-v19"):
        weights.load(stale)
    chained = tmp_path / "chained.safetensors"  # an encoder's encoder: no decoder to decode with
    chained.write_bytes(save(tensors, metadata={**meta, "decoder": str(path), "decoder_sha256": encoder_file[1]}))
    with pytest.raises(WeightsError, match="encoder weights themselves"):
        weights.load(chained)
    partial = tmp_path / "partial.safetensors"
    partial.write_bytes(save({k: v for k, v in tensors.items() if not k.startswith("h_a.")}, metadata=meta))
    with pytest.raises(WeightsError, match="do not fit"):
        weights.load(partial)


def test_registered_encoder_weights_name_a_registered_full_decoder():
    reg = json.loads((weights.weights_dirs()[0] / "registry.json").read_text())
    ids = weights.known_weights()
    for name, entry in reg["weights"].items():
        if "decoder" in entry:  # loaded, to read the decoder its file names
            info = weights.load(name)[2]
            assert info.decoder.name == entry["decoder"] and "decoder" not in reg["weights"][entry["decoder"]]
            assert ids[info.weights_id] == entry["decoder"]
        else:
            assert ids[weights.resolve(name).weights_id] == name


def test_export_of_an_encoder_checkpoint_registers_its_decoder(tmp_path, encoder_file):
    from rdcodec.train import export

    trained = encoder_file[2]
    ckpt = tmp_path / "last.pt"
    torch.save({"model": trained.state_dict(), "step": 3, "stage": "encoder",
                "args": {"context": trained.config.context}}, ckpt)
    export.main([str(ckpt), "--name", "t-enc", "--decoder", DECODER, "--out-dir", str(tmp_path / "w")])
    entry = json.loads((tmp_path / "w" / "registry.json").read_text())["weights"]["t-enc"]
    assert entry["decoder"] == DECODER
    model, _, info = weights.load(tmp_path / "w" / "t-enc.safetensors")
    assert info.decoder.name == DECODER and info.sha256 == entry["sha256"]
    assert all(torch.equal(v, weights.load(encoder_file[0])[0].state_dict()[k]) for k, v in model.state_dict().items())


def _deeper(blocks: int, seed: int = 0):
    """rdc-v19 with ``blocks`` refinement blocks per scale in g_a, at random (nonzero) values."""
    from rdcodec.model.rdc import ModelConfig, RDCModel
    from rdcodec.train.loop import load_matching

    base = weights.load(DECODER)[0]
    model = RDCModel(ModelConfig(**{**base.config.to_dict(), "encoder_blocks": blocks}))
    assert load_matching(model, base.state_dict()) == sorted(k for k in model.state_dict() if ".refine." in k)
    return model.eval(), base


def test_encoder_blocks_start_as_the_identity_and_can_learn(crop):
    model, base = _deeper(2)
    x = torch.from_numpy(crop[:64, :64]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        assert torch.equal(model.g_a(x), base.g_a(x))
    model.train()
    model.g_a(x).square().mean().backward()
    assert model.g_a.refine[0][0].body[2].weight.grad.abs().max() > 0


def test_deeper_encoder_weights_make_files_for_the_same_decoder(tmp_path, crop):
    """g_a with refinement blocks is an encoder-only change: its weights name rdc-v19 as their
    decoder, and rdc-v19 decodes their files exactly as they decode them themselves."""
    model, _ = _deeper(1)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.g_a.refine.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    path = tmp_path / "deep.safetensors"
    weights.export_encoder(model, path, DECODER)
    loaded, _, info = weights.load(path)
    assert loaded.config.encoder_blocks == 1 and info.decoder.name == DECODER
    enc = api.get_codec(str(path))
    data = enc.compress(crop, 0.5).data
    assert container.parse_header(data).weights_id == weights.resolve(DECODER).weights_id
    a, b = api.get_codec(DECODER).decompress(data)[0], enc.decompress(data)[0]
    assert np.array_equal(a.render(0.0), b.render(0.0))
    assert data != api.get_codec(DECODER).compress(crop, 0.5).data


def test_an_encoder_whose_decoder_config_differs_is_refused(tmp_path):
    from rdcodec.model.rdc import ModelConfig, RDCModel
    from rdcodec.train.loop import load_matching

    base = weights.load(DECODER)[0]
    model = RDCModel(ModelConfig(**{**base.config.to_dict(), "rrn_blocks": 1}))
    load_matching(model, base.state_dict())
    path = tmp_path / "other.safetensors"
    with pytest.raises(WeightsError, match="decoder config is not rdc-v19's"):
        weights.export_encoder(model, path, DECODER)
    assert not path.exists()
    assert weights.same_decoder(ModelConfig(encoder_blocks=3), ModelConfig())
    assert not weights.same_decoder(ModelConfig(rrn_blocks=1), ModelConfig())

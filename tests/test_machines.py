"""Latent refinement for machines (rdcodec.refine.refine_for_machines): the base layer searched
for a vision network's features, in an ordinary file.

Most checks use a small random convolutional backbone; the others use the shipped MobileNetV1
extractor (``weights/mobilenet-v1-embedding.safetensors``). All run without ../shared, except the
one that compares the shipped network with its TFLite original, which skips cleanly without it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from rdcodec import api, refine
from rdcodec.cli import main
from rdcodec.codec import Analysis
from rdcodec.errors import RdcError
from rdcodec.refine import (
    FEATURE_WEIGHTS,
    MACHINE_MSE_SHARE,
    distortion_weight,
    machine_steps,
    per_level,
    refine_for_machines,
)
from rdcodec.vision.features import FeatureBackbone, feature_distance

from .conftest import psnr

EXTRACTOR = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def base_features_distance(codec, backbone, data: bytes, image: np.ndarray) -> float:
    """D_feat of the decoded beta = 1 image against the original, through ``backbone``."""
    recon, _ = codec.decompress(data)
    to_t = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
    return float(feature_distance(backbone(to_t(recon.render(1.0))), backbone(to_t(image))))


def test_the_feature_term_steers_the_search(codec, crop, toy_backbone, monkeypatch):
    """With the feature weight nu made dominant, the refined base layer keeps the backbone's
    features better than g_a(x)'s, measured on the decoded file; the latent keeps its shape."""
    an, x, (h, w) = codec.analyze(crop), codec._padded(crop), crop.shape[:2]
    monkeypatch.setattr(refine, "FEATURE_WEIGHTS", (1e3,) * 6)
    y = refine_for_machines(codec.m.model, x, an.y, 0.6, codec.m.gains(0.6), 10, h, w, toy_backbone, codec.m.bf16)
    assert y.shape == an.y.shape and y.dtype == torch.float32 and not torch.equal(y, an.y)
    ours = codec.compress(Analysis(y, h, w, crop), 0.6, residual=False, reconstruct=False).data
    plain = codec.compress(an, 0.6, residual=False, reconstruct=False).data
    dist = lambda data: base_features_distance(codec, toy_backbone, data, crop)  # noqa: E731
    assert dist(ours) < dist(plain)


def test_backbone_module_follows_the_input_device():
    module = torch.nn.Module()
    module.register_buffer("w", torch.ones(1, 3, 1, 1))
    net = FeatureBackbone(lambda x: [module.w * x], "m", module)
    x = torch.rand(1, 3, 4, 4, device="meta")  # stands in for a CUDA tensor: any other device
    assert net(x)[0].device.type == "meta" and module.w.device.type == "meta"


def test_feature_weight_rises_with_alpha():
    nus = [per_level(FEATURE_WEIGHTS, a / 10) for a in range(11)]
    assert nus[0] == pytest.approx(FEATURE_WEIGHTS[0]) and nus[-1] == pytest.approx(FEATURE_WEIGHTS[-1])
    assert all(a < b for a, b in zip(nus, nus[1:]))


def test_machine_file_is_ordinary_exact_and_reproducible(codec, crop, toy_backbone):
    c = codec.compress(crop, 0.5, refine=6, machines=toy_backbone)
    again = codec.compress(crop, 0.5, refine=6, machines=toy_backbone)
    plain = codec.compress(crop, 0.5)
    assert c.data == again.data                      # reproducible at a given thread count
    assert c.data != plain.data                      # the base layer was searched, not g_a(x)'s
    recon, _ = codec.decompress(c.data)              # any rdcodec decoder reads it
    for beta in (0.0, 0.5, 1.0):
        assert np.array_equal(recon.render(beta), c.recon.render(beta))
    assert api.info(c.data)["layers"]["residual"] > 0  # the residual layer is still there for the eyes
    # about the same rate and fidelity as the plain file (ImageNet: +0.45% bytes, PSNR +-0.1 dB)
    assert abs(len(c.data) / len(plain.data) - 1) < 0.1
    assert abs(psnr(c.recon.render(0.0), crop) - psnr(plain.recon.render(0.0), crop)) < 0.5


def test_machine_steps_fall_with_alpha():
    """20 steps at the lowest rate (where the longer search paid on ImageNet), 10 from alpha 0.2 on,
    interpolated in between like the gains; never rising with alpha."""
    steps = [machine_steps(a / 100) for a in range(101)]
    assert steps[0] == 20 and steps[10] == 14 and set(steps[20:]) == {10}
    assert all(a >= b for a, b in zip(steps, steps[1:]))


def test_machines_without_a_count_take_the_steps_of_their_alpha(codec, crop, toy_backbone):
    own = codec.compress(crop, 0.0, machines=toy_backbone).data
    assert own == codec.compress(crop, 0.0, refine=20, machines=toy_backbone).data
    assert own != codec.compress(crop, 0.0, refine=10, machines=toy_backbone).data
    assert api.encode(crop, 0.3, machines=toy_backbone) == codec.compress(crop, 0.3, refine=10,
                                                                           machines=toy_backbone).data
    assert api.refinement_steps(0.0, 0, toy_backbone) == 20 and api.refinement_steps(0.0, 5, toy_backbone) == 5
    assert api.refinement_steps(0.0, 0, None) == 0 and api.refinement_steps(0.001, 0, toy_backbone) == 20


def test_backbone_source_errors(tmp_path):
    with pytest.raises(RdcError, match="no vision network"):
        api.load_backbone(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 4)
    with pytest.raises(RdcError, match="cannot read .* it is not a TFLite file"):
        api.load_backbone(junk)
    pytest.importorskip("ai_edge_litert")
    bad = tmp_path / "bad.tflite"  # the identifier, then garbage
    bad.write_bytes(b"\x00\x00\x00\x00TFL3" + b"\xff" * 64)
    with pytest.raises(RdcError, match="cannot read"):
        api.load_backbone(bad)


@pytest.mark.parametrize("target", [["--target-size", "2KB"], ["--target-psnr", "30"]])
def test_cli_machines_with_a_target_is_a_usage_error(tmp_path, crop, target):
    src, net, out = tmp_path / "crop.png", tmp_path / "net.tflite", tmp_path / "x.rdc"
    Image.fromarray(crop).save(src)
    net.write_bytes(b"x")
    r = CliRunner().invoke(main, ["encode", str(src), "--machines", str(net), *target, "-o", str(out)])
    assert r.exit_code == 2 and "work with --alpha" in r.output
    assert not out.exists()


def test_cli_machines_bad_network_is_a_clean_error(tmp_path, crop):
    pytest.importorskip("ai_edge_litert")
    src, net, out = tmp_path / "crop.png", tmp_path / "net.tflite", tmp_path / "x.rdc"
    Image.fromarray(crop).save(src)
    net.write_bytes(b"not a network")
    r = CliRunner().invoke(main, ["encode", str(src), "--machines", str(net), "-o", str(out)])
    assert r.exit_code == 1 and "cannot read" in r.output and "Traceback" not in r.output
    assert not out.exists()
    r = CliRunner().invoke(main, ["encode", str(src), "--machines", str(tmp_path / "none.tflite"), "-o", str(out)])
    assert r.exit_code == 2 and "does not exist" in r.output


# ---------------------------------------------------------------- the shipped training backbone

SHIPPED = api.MACHINES_DEFAULT


def test_the_shipped_backbone_is_registered_intact_and_needs_no_tflite_parser(monkeypatch):
    """``mobilenet-v1-embedding`` is in the registry with its SHA-256, a model card and the licence
    it is shipped under, and loads with ``ai-edge-litert`` unavailable: one feature map per scale
    of a 224 x 224 input, gradients to the input."""
    import json
    import sys

    from rdcodec import weights

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # any import of it fails
    api._backbone.cache_clear()
    path = weights.resolve_backbone(SHIPPED)
    reg = json.loads((path.parent / "registry.json").read_text())["backbones"][SHIPPED]
    assert weights.sha256_file(path) == reg["sha256"] and "Apache-2.0" in reg["license"]
    assert (path.parent / f"{SHIPPED}.md").is_file() and (path.parent / f"LICENSE-{SHIPPED}").is_file()
    net = api.load_backbone(SHIPPED)
    x = torch.rand(1, 3, 224, 224, requires_grad=True)
    maps = net(x)
    assert [tuple(f.shape[1:]) for f in maps] == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14),
                                                  (1024, 7, 7)]
    maps[-1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    api._backbone.cache_clear()


def test_a_saved_graph_reads_back_and_saves_to_the_same_bytes(tmp_path):
    """TFLiteGraph.load then .save rewrites the shipped file byte for byte: nothing is lost in the
    round trip, and the export is deterministic (its SHA-256 is its identity in the registry)."""
    from rdcodec import weights
    from rdcodec.vision.tflite import TFLiteGraph

    shipped = weights.resolve_backbone(SHIPPED)
    graph = TFLiteGraph.load(shipped)
    assert graph.source == EXTRACTOR and graph.input_shape == (1, 224, 224, 3)
    graph.save(tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == shipped.read_bytes()


def test_a_changed_or_foreign_backbone_file_is_refused(tmp_path, monkeypatch):
    import json

    from rdcodec import weights
    from rdcodec.errors import WeightsError

    with pytest.raises(RdcError, match="cannot read .* as a vision network"):  # codec weights, not a network
        api.load_backbone(weights.resolve("rdc-v22").path)
    with pytest.raises(RdcError, match="no vision network at .*shipped one by name: " + SHIPPED):
        api.load_backbone("mobilenet-v9")
    shipped = weights.resolve_backbone(SHIPPED)
    (tmp_path / "w").mkdir()
    reg = json.loads((shipped.parent / "registry.json").read_text())
    (tmp_path / "w" / "registry.json").write_text(json.dumps(reg))
    altered = bytearray(shipped.read_bytes())
    altered[-1] ^= 1
    (tmp_path / "w" / shipped.name).write_bytes(bytes(altered))
    monkeypatch.setattr(weights, "weights_dirs", lambda: [tmp_path / "w"])
    api._backbone.cache_clear()  # a shipped network is checked when first loaded
    with pytest.raises(WeightsError, match="does not match its SHA-256"):
        api.load_backbone(SHIPPED)


def test_cli_machines_with_the_shipped_backbone(tmp_path, crop):
    src, out = tmp_path / "crop.png", tmp_path / "crop.rdc"
    Image.fromarray(crop).save(src)
    r = CliRunner().invoke(main, ["encode", str(src), "-a", "0.4", "--machines", SHIPPED, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "refining the latent for machines (10 steps)" in r.output
    assert out.read_bytes() == api.encode(crop, 0.4, machines=SHIPPED)
    r = CliRunner().invoke(main, ["encode", str(src), "--machines", "mobilenet-v9", "-o", str(tmp_path / "x.rdc")])
    assert r.exit_code == 2 and "does not exist" in r.output and SHIPPED in r.output


@pytest.fixture(scope="module")
def extractor(shared):
    pytest.importorskip("ai_edge_litert")
    return shared / "models" / EXTRACTOR


def test_the_shipped_backbone_is_the_tflite_network_to_the_bit(extractor, crop):
    """Built from the shipped graph or from the TFLite file in ../shared, the network has the same
    constants and feature maps, and a file refined for either is the same file."""
    from rdcodec import weights
    from rdcodec.vision.tflite import load_network

    a, b = load_network(weights.resolve_backbone(SHIPPED)), load_network(extractor)
    assert a._names.keys() == b._names.keys() and all(torch.equal(a.const(i), b.const(i)) for i in a._names)
    x = torch.rand(2, 3, 224, 224)
    assert all(torch.equal(u, v) for u, v in zip(api.load_backbone(SHIPPED)(x), api.load_backbone(extractor)(x)))
    assert api.encode(crop, 0.6, machines=SHIPPED) == api.encode(crop, 0.6, machines=extractor)


@pytest.mark.parametrize("alpha", [0.4, 1.0])
def test_the_training_backbone_sees_its_features_kept(codec, crop, alpha):
    """On the real files, at the default steps: the backbone's features of the beta = 1 image are
    closer to the original's, and the objective itself (bits + m lambda MSE + nu D_feat) is lower."""
    net = api.load_backbone(SHIPPED)
    lam, nu = distortion_weight(codec.m.model, alpha), per_level(FEATURE_WEIGHTS, alpha)

    def cost(data: bytes) -> tuple[float, float]:
        recon, _ = codec.decompress(data)
        mse = 10 ** (-psnr(recon.render(1.0), crop) / 10)  # on a [0, 1] scale
        d = base_features_distance(codec, net, data, crop)
        return 8 * len(data) / crop[..., 0].size + MACHINE_MSE_SHARE * lam * 255.0 ** 2 * mse + nu * d, d

    plain = codec.compress(crop, alpha, residual=False, reconstruct=False).data
    ours = codec.compress(crop, alpha, residual=False, reconstruct=False, machines=net).data
    (c_ours, d_ours), (c_plain, d_plain) = cost(ours), cost(plain)
    assert d_ours < d_plain and c_ours < c_plain

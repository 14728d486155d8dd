from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rdcodec.eval.metrics import psnr  # noqa: F401 - the package's PSNR, re-exported for the tests

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXAMPLE = ROOT / "examples" / "kodim23.png"


def load_script(relpath: str):
    """Import a script of the repository (``benchmarks/classical.py`` ...) as a module by file path."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look the module up while the class is being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def example() -> np.ndarray:
    """The bundled 768x512 example image."""
    return np.asarray(Image.open(EXAMPLE).convert("RGB"))


@pytest.fixture(scope="session")
def crop(example) -> np.ndarray:
    """A 192x128 crop with edges and flat areas: quick to code."""
    return np.ascontiguousarray(example[200:328, 300:492])


@pytest.fixture(scope="session")
def codec():
    from rdcodec.api import get_codec

    return get_codec()


@pytest.fixture(scope="session")
def codec22():
    """rdc-v22: rdc-v19's decoder without a machine head, the weights of the committed golden files
    (they carry rdc-v19's id) and of the measurements that predate the head."""
    from rdcodec.api import get_codec

    return get_codec("rdc-v22")


@pytest.fixture(scope="session")
def codec32():
    """The default weights with the transforms in float32 everywhere (``codec`` uses bfloat16
    for their inner layers on CPUs that have it natively)."""
    from rdcodec.api import get_codec

    return get_codec(bf16=False)


@pytest.fixture(scope="session")
def codec16():
    """The default weights with the inner layers of the transforms in bfloat16, whatever the CPU."""
    from rdcodec.api import get_codec

    return get_codec(bf16=True)


@pytest.fixture(scope="session")
def toy_backbone():
    """A stand-in vision network for ``machines=``: two strided ReLU convolutions with fixed random
    weights, one feature map per scale, gradients to the input; needs nothing from ../shared."""
    import torch

    from rdcodec.vision.features import FeatureBackbone

    gen = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(8, 3, 3, 3, generator=gen), torch.randn(16, 8, 3, 3, generator=gen) / 8

    def features(x: torch.Tensor) -> list[torch.Tensor]:
        f1 = torch.relu(torch.nn.functional.conv2d(x - 0.5, w1, stride=2, padding=1))
        return [f1, torch.relu(torch.nn.functional.conv2d(f1, w2, stride=2, padding=1))]

    return FeatureBackbone(features, "toy")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not available")
    return SHARED


def extended_model(weights_name: str | None, new_prefixes: tuple[str, ...], **fields):
    """Shipped weights ``weights_name`` (None: the default) in a model whose config differs by
    ``fields`` (a new module, e.g. ``enhance=E``): every tensor that fits is loaded, and the ones
    left out must all be the new module's (names under ``new_prefixes``). Returns (model, base)."""
    from rdcodec import weights
    from rdcodec.model.rdc import ModelConfig, RDCModel
    from rdcodec.train.loop import load_matching

    base, _, _ = weights.load(weights_name)
    model = RDCModel(ModelConfig(**{**base.config.to_dict(), **fields}))
    missing = load_matching(model, base.state_dict())
    assert missing and all(k.startswith(new_prefixes) for k in missing), missing[:3]
    return model, base


def exported_codec(model, folder: Path, name: str):
    """A codec on ``model`` as users get it: exported as full weights (float16 safetensors) into
    ``folder`` and loaded back."""
    from rdcodec import weights
    from rdcodec.codec import Codec
    from rdcodec.model.rdc import CodingModel

    path = folder / f"{name}.safetensors"
    weights.export(model, path)
    loaded, z_pmf, info = weights.load(path)
    return Codec(CodingModel(loaded, z_pmf), info.weights_id, info.name)


def check_context_coding(codec, plain, image, alpha) -> None:
    """A context model's coding is exact, its real bytes follow its own model (estimate within
    2% + 64 bytes), and its latent string differs from the model without it (``plain``)."""
    from rdcodec.bitstream import container

    c = codec.compress(image, alpha, estimate=True)
    rec, _ = codec.decompress(c.data)
    for beta in (0.0, 1.0):
        assert np.array_equal(rec.render(beta), c.recon.render(beta))
    assert psnr(rec.render(0.0), image) > 22
    est = sum(c.estimated_bits.values()) / 8
    assert abs(len(c.data) - est) < 0.02 * len(c.data) + 64
    other = plain.compress(image, alpha, reconstruct=False).data
    assert container.unpack(c.data).base != container.unpack(other).base

"""benchmarks/classical.py: every usable classical codec round-trips real bytes; sweeps have the CompressAI layout."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from .conftest import load_script, psnr

classical = load_script("benchmarks/classical.py")
AVAILABLE = classical.available()


def needs(name: str):
    """Skip with the reason ``available()`` gives when codec ``name`` cannot run here."""
    if AVAILABLE[name]:
        pytest.skip(f"{name}: {AVAILABLE[name]}")
    return classical.CODECS[name]


@pytest.fixture(scope="module")
def small(example) -> np.ndarray:
    """A 96x128 crop of the example image."""
    return np.ascontiguousarray(example[232:328, 332:460])


def middle(settings: list):
    return settings[len(settings) // 2]


def test_registry_and_availability():
    assert list(classical.CODECS) == ["jpeg", "webp", "jpeg2000", "avif", "jpegxl", "hevc"]
    assert set(AVAILABLE) == set(classical.CODECS)
    for name, codec in classical.CODECS.items():
        assert codec.name == name and codec.description and len(codec.settings) >= 10
        assert AVAILABLE[name] is None or isinstance(AVAILABLE[name], str)


@pytest.mark.parametrize("name", list(classical.CODECS))
def test_round_trip(name, small):
    codec = needs(name)
    data, dec = codec.code(small, middle(codec.settings))
    assert isinstance(data, bytes) and len(data) > 0
    assert dec.shape == small.shape and dec.dtype == np.uint8
    assert psnr(small, dec) > 20
    assert codec.library()


@pytest.mark.parametrize("name", ["jpeg", "webp"])
def test_higher_quality_costs_more_and_looks_better(name, small):
    codec = needs(name)
    low, high = codec.settings[1], codec.settings[-2]
    (d_low, r_low), (d_high, r_high) = codec.code(small, low), codec.code(small, high)
    assert len(d_high) > len(d_low)
    assert psnr(small, r_high) > psnr(small, r_low) + 3


def test_missing_package_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)  # makes "import pillow_jxl" raise ImportError
    reason = classical.available()["jpegxl"]
    assert reason and "pip install pillow-jxl-plugin" in reason
    with pytest.raises(RuntimeError, match="not available"):
        classical.sweep("jpegxl", [], classical.psnr, None)


def test_sweep_layout(small):
    needs("jpeg")
    settings = [10, 50, 90]
    images = [small, np.ascontiguousarray(small[:, ::-1])]
    out = classical.sweep("jpeg", images, classical.psnr, lambda a, b: 1.0, settings=settings)
    assert out["name"] == "jpeg" and out["settings"] == settings and out["description"]
    r = out["results"]
    assert set(r) == {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}
    assert all(len(v) == len(settings) for v in r.values())
    assert r["bpp"] == sorted(r["bpp"]) and r["psnr-rgb"] == sorted(r["psnr-rgb"]) and r["ms-ssim-rgb"][0] == 1.0
    bpp = [8 * len(classical.CODECS["jpeg"].encode(im, 50)) / (im.shape[0] * im.shape[1]) for im in images]
    assert r["bpp"][1] == pytest.approx(np.mean(bpp))
    json.dumps(out)


def test_cli_writes_one_json_per_codec(tmp_path, small):
    needs("jpeg")
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(small).save(folder / "a.png")
    classical.main([str(folder), "--out", str(tmp_path / "out"), "--codecs", "jpeg", "--no-ms-ssim"])
    result = json.loads((tmp_path / "out" / "jpeg.json").read_text())
    assert result["name"] == "jpeg" and len(result["results"]["bpp"]) == len(classical.CODECS["jpeg"].settings)


def test_avif_is_444(small):
    data = needs("avif").encode(small, 50)
    config = data[data.index(b"av1C") + 4:][:3]  # av1C: marker/version, profile/level, flags
    assert config[1] >> 5 == 1, "AV1 high profile (4:4:4)"
    assert (config[2] >> 2) & 0b11 == 0, "no horizontal or vertical chroma subsampling"


def test_hevc_is_444(small):
    data = needs("hevc").encode(small, 50)
    import pillow_heif

    assert pillow_heif.open_heif(io.BytesIO(data)).info["chroma"] == 444

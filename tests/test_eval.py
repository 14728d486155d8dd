"""``rdcodec eval`` and the metrics behind it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from rdcodec.cli import main
from rdcodec.eval.metrics import ms_ssim, psnr


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_psnr_known_value():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255  # MSE = 255^2 / 48 -> PSNR = 10 log10(48)
    assert psnr(a, b) == pytest.approx(10 * np.log10(48))


def test_ms_ssim_orders_distortions_and_is_one_for_identity(example):
    img = example[:200, :301]  # odd width exercises the padded pooling
    assert ms_ssim(img, img) == pytest.approx(1.0)
    values = [ms_ssim(img, _noisy(img, s)) for s in (2, 10, 40)]
    assert values[0] > values[1] > values[2] > 0


def test_ms_ssim_matches_pytorch_msssim(example):
    torch = pytest.importorskip("torch")
    ref = pytest.importorskip("pytorch_msssim")
    img = example[:240, :321]
    for sigma in (3, 25):
        dec = _noisy(img, sigma)
        t = lambda v: torch.tensor(v, dtype=torch.float64).permute(2, 0, 1)[None]  # noqa: E731
        assert ms_ssim(img, dec) == pytest.approx(float(ref.ms_ssim(t(img), t(dec), data_range=255.0)), abs=1e-4)


def test_ms_ssim_rejects_small_images():
    with pytest.raises(ValueError, match="161"):
        ms_ssim(np.zeros((100, 200, 3), np.uint8), np.zeros((100, 200, 3), np.uint8))


@pytest.fixture()
def folder(tmp_path, crop, example):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(crop).save(d / "a.png")  # 192x128: no MS-SSIM
    Image.fromarray(np.ascontiguousarray(example[:176, :176])).save(d / "b.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_eval_command_table_json_and_rate_order(tmp_path, folder):
    out = tmp_path / "rd.json"
    res = CliRunner().invoke(main, ["eval", str(folder), "--alphas", "0,1", "--betas", "0,1",
                                    "--json", str(out), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "psnr-rgb" in res.output
    doc = json.loads(out.read_text())
    rows = {(r["alpha"], r["beta"]): r for r in doc["rows"]}
    assert all(r["images"] == 2 for r in rows.values())
    assert rows[(1.0, 0.0)]["bpp"] > rows[(0.0, 0.0)]["bpp"]
    assert rows[(1.0, 0.0)]["psnr-rgb"] > rows[(0.0, 0.0)]["psnr-rgb"]
    assert rows[(1.0, 1.0)]["bpp"] < rows[(1.0, 0.0)]["bpp"]  # beta 1 counts the base layer only
    curve = doc["curves"][0]
    assert curve["name"] == "rdcodec-beta0" and curve["results"]["alpha"] == [0.0, 1.0]


def test_eval_refuses_existing_json_and_bad_lists(tmp_path, folder):
    out = tmp_path / "rd.json"
    out.write_text("keep")
    res = CliRunner().invoke(main, ["eval", str(folder), "--alphas", "0", "--json", str(out)])
    assert res.exit_code == 1 and out.read_text() == "keep"
    res = CliRunner().invoke(main, ["eval", str(folder), "--alphas", "0,2"])
    assert res.exit_code == 2 and "[0, 1]" in res.output


def test_eval_empty_folder_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["eval", str(tmp_path)])
    assert res.exit_code == 1 and "no images" in res.output

import io

import numpy as np
import pytest
from PIL import Image

import rdcodec


@pytest.fixture(scope="module")
def rdc_bytes(crop):
    return rdcodec.encode(crop, alpha=0.4)


def test_open_reads_header_lazily(rdc_bytes):
    im = Image.open(io.BytesIO(rdc_bytes))
    assert im.format == "RDC" and im.size == (192, 128) and im.mode == "RGB"
    assert im.info["alpha"] == pytest.approx(0.4, abs=1e-4) and im.info["residual"]


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_load_matches_api(rdc_bytes, beta):
    im = Image.open(io.BytesIO(rdc_bytes))
    im.beta = beta
    np.testing.assert_array_equal(np.asarray(im), np.asarray(rdcodec.decode(rdc_bytes, beta=beta)))


def test_load_predicts_the_residual_of_a_base_only_file(rdc_bytes):
    base = rdcodec.strip(rdc_bytes)
    im = Image.open(io.BytesIO(base))
    im.predict_residual = True
    predicted = np.asarray(rdcodec.decode(base, beta=0.0, predict_residual=True))
    np.testing.assert_array_equal(np.asarray(im), predicted)
    assert not np.array_equal(predicted, np.asarray(Image.open(io.BytesIO(base))))   # the default: x_hat_1


def test_save_and_reopen(tmp_path, crop):
    p = tmp_path / "x.rdc"
    Image.fromarray(crop).save(p, alpha=0.2)
    assert rdcodec.info(p.read_bytes())["alpha"] == pytest.approx(0.2, abs=1e-4)
    assert Image.open(p).size == (192, 128)
    Image.fromarray(crop).save(tmp_path / "b.rdc", residual=False)
    assert rdcodec.info((tmp_path / "b.rdc").read_bytes())["layers"]["residual"] == 0
    Image.fromarray(crop).save(tmp_path / "r.rdc", alpha=0.2, refine=3)
    assert (tmp_path / "r.rdc").read_bytes() == rdcodec.encode(crop, 0.2, refine=3) != p.read_bytes()


def test_save_for_machines(tmp_path, crop, toy_backbone):
    Image.fromarray(crop).save(tmp_path / "m.rdc", alpha=0.2, refine=3, machines=toy_backbone)
    data = (tmp_path / "m.rdc").read_bytes()
    assert data == rdcodec.encode(crop, 0.2, refine=3, machines=toy_backbone) != rdcodec.encode(crop, 0.2, refine=3)


def test_registration():
    assert Image.registered_extensions()[".rdc"] == "RDC"
    assert Image.MIME["RDC"] == "image/x-rdc"


def test_other_files_are_not_claimed(crop):
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).format == "PNG"

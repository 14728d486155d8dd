"""benchmarks/fidelity_gap.py: PSNR on the classifiers' crops, rdcodec against HEVC-intra (bundled image)."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from .conftest import load_script

fidelity = load_script("benchmarks/fidelity_gap.py")


def test_fidelity_gap_measures_both_layers_and_hevc_on_the_crops(tmp_path, example):
    if fidelity.classical.CODECS["hevc"].missing():
        pytest.skip(f"HEVC-intra not available: {fidelity.classical.CODECS['hevc'].missing()}")
    folder = tmp_path / "sample"
    folder.mkdir()
    for i, (top, left) in enumerate([(0, 0), (200, 400)]):
        Image.fromarray(example[top:top + 300, left:left + 340]).save(folder / f"im{i}.png")
    (folder / "labels.csv").write_text("file,class_index\nim0.png,1\nim1.png,2\n")
    out = tmp_path / "gap.json"
    fidelity.main([str(folder), "--limit", "0", "--alphas", "0", "1", "--hevc", "16", "36", "--out", str(out)])
    r = json.loads(out.read_text())
    p = r["points"]
    w = r["weights"]
    assert r["images"] == 2 and len(p) == 6
    for a in ("0", "1"):  # the whole file is bigger and closer than its base layer
        assert p[f"{w} alpha {a} beta 0"]["bpp"] > p[f"{w} alpha {a} beta 1"]["bpp"]
        assert p[f"{w} alpha {a} beta 0"]["psnr"] > p[f"{w} alpha {a} beta 1"]["psnr"]
    for b in ("0", "1"):  # alpha raises rate and fidelity
        lo, hi = p[f"{w} alpha 0 beta {b}"], p[f"{w} alpha 1 beta {b}"]
        assert hi["bpp"] > lo["bpp"] and hi["psnr"] > lo["psnr"]
    assert p["hevc 36"]["bpp"] > p["hevc 16"]["bpp"] and p["hevc 36"]["psnr"] > p["hevc 16"]["psnr"]
    assert set(r["bd"]) == {"rdcodec beta=0 vs hevc", "rdcodec beta=1 vs hevc"}
    assert all(math.isfinite(v["bd_psnr_db"]) for v in r["bd"].values())


def test_a_folder_without_labels_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        fidelity.main([str(tmp_path)])
    assert e.value.code == 2 and "labels.csv" in capsys.readouterr().err


def test_unknown_weights_are_a_usage_error(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("file,class_index\n")
    if fidelity.classical.CODECS["hevc"].missing():
        pytest.skip("HEVC-intra not available")
    with pytest.raises(SystemExit) as e:
        fidelity.main([str(tmp_path), "--weights", "rdc-v999"])
    assert e.value.code == 2 and "rdc-v999" in capsys.readouterr().err

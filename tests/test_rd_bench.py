"""benchmarks/rd.py: archiving the previous default's run and choosing the earlier curves."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from .conftest import load_script

rd = load_script("benchmarks/rd.py")


def fake_run(out, weights: str) -> None:
    """The files an rd.py run leaves at the top of ``out`` (contents only as far as archiving reads them)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"weights": weights}))
    (out / "rdcodec_per_image.json").write_text("[]")
    (out / "README.md").write_text(f"run of {weights}\n")
    (out / "rd.png").write_bytes(b"png")
    for b in (0, 1):
        (out / f"rdcodec-beta{b}.json").write_text(json.dumps(
            {"name": f"rdcodec beta={b}", "results": {"bpp": [0.1 + b], "psnr-rgb": [30.0 - b]}}))


def test_archive_moves_the_run_and_keeps_its_curves_under_its_weights_name(tmp_path):
    fake_run(tmp_path, "rdc-v13")
    assert rd.archive_previous(tmp_path, "rdc-v14") == "rdc-v13"
    assert (tmp_path / "rdc-v13" / "README.md").read_text() == "run of rdc-v13\n"
    assert all((tmp_path / "rdc-v13" / f).exists() for f in rd.RUN_FILES)
    assert not any((tmp_path / f).exists() for f in rd.RUN_FILES)
    for b in (0, 1):
        curve = json.loads((tmp_path / f"rdc-v13-beta{b}.json").read_text())
        assert curve["name"] == f"rdc-v13-beta{b}" and curve["results"]["bpp"] == [0.1 + b]
    assert rd.previous_curves(tmp_path, "all", []) == ["rdc-v13-beta0", "rdc-v13-beta1"]


def test_archive_leaves_a_run_of_the_same_weights_and_an_empty_folder_alone(tmp_path):
    assert rd.archive_previous(tmp_path, "rdc-v14") is None
    fake_run(tmp_path, "rdc-v14")
    assert rd.archive_previous(tmp_path, "rdc-v14") is None
    assert (tmp_path / "summary.json").exists() and not (tmp_path / "rdc-v14").exists()


def test_archive_refuses_to_overwrite_an_earlier_archive(tmp_path):
    fake_run(tmp_path, "rdc-v13")
    (tmp_path / "rdc-v13-beta0.json").write_text("{}")
    with pytest.raises(ValueError, match="exists already"):
        rd.archive_previous(tmp_path, "rdc-v14")
    assert (tmp_path / "summary.json").exists() and (tmp_path / "rdc-v13-beta0.json").read_text() == "{}"


def test_previous_all_takes_the_curves_there_but_not_the_run_files_or_the_codecs_run_now(tmp_path):
    fake_run(tmp_path, "rdc-v13")
    curve = json.dumps({"name": "x", "results": {"bpp": [0.5], "psnr-rgb": [30.0]}})
    for name in ("jpeg", "hevc", "rdc-v12-beta0"):
        (tmp_path / f"{name}.json").write_text(curve)
    (tmp_path / "beta.json").write_text(json.dumps({"results": {"beta": [0, 1], "psnr": [30, 29]}}))
    (tmp_path / "notes.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    assert rd.previous_curves(tmp_path, "all", ["jpeg"]) == ["hevc", "rdc-v12-beta0"]
    assert rd.previous_curves(tmp_path, "hevc,jpeg,,webp", ["jpeg"]) == ["hevc", "webp"]


def test_a_new_default_run_archives_the_previous_one_and_compares_against_it(tmp_path, example):
    """Two real runs on one small image: the second, with other weights, keeps the first as an anchor."""
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    Image.fromarray(example[160:352, 256:512]).save(images / "a.png")  # 256x192: MS-SSIM needs >= 161
    common = [str(images), "--out", str(out), "--alphas", "6", "--codecs", "none"]
    rd.main([*common, "--weights", "rdc-v12"])
    rd.main([*common, "--weights", "rdc-v13", "--archive-previous", "--previous", "all"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weights"] == "rdc-v13"
    assert summary["classical_from_earlier_run"] == ["rdc-v12-beta0", "rdc-v12-beta1"]
    assert "rdcodec beta=0 vs rdc-v12-beta0" in summary["bd"]
    assert json.loads((out / "rdc-v12" / "summary.json").read_text())["weights"] == "rdc-v12"
    assert "rdc-v13" in (out / "README.md").read_text() and "rdc-v12" in (out / "rdc-v12" / "README.md").read_text()
    assert (json.loads((out / "rdc-v12-beta0.json").read_text())["results"]
            == json.loads((out / "rdc-v12" / "summary.json").read_text())["curves"]["rdcodec beta=0"])


def test_the_report_brings_the_summary_up_to_an_anchor_added_after_the_run(tmp_path, example):
    """An anchor archived later (e.g. a candidate's run moved aside) joins summary.json's table
    as it joins the README's, and the table of the earlier anchors stays as the run wrote it."""
    report = load_script("benchmarks/report.py")
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    Image.fromarray(example[160:352, 256:512]).save(images / "a.png")
    rd.main([str(images), "--out", str(out), "--alphas", "6", "--codecs", "jpeg", "--weights", "rdc-v12"])
    before = json.loads((out / "summary.json").read_text())["bd"]
    curve = json.loads((out / "rdcodec-beta0.json").read_text())
    curve["results"]["bpp"] = [b * 1.1 for b in curve["results"]["bpp"]]  # 10% more bits, same PSNR
    (out / "later-beta0.json").write_text(json.dumps({**curve, "name": "later-beta0"}))
    assert "rdcodec beta=0 vs later-beta0" not in before
    report.write_readme(out)
    after = json.loads((out / "summary.json").read_text())
    assert after["bd"]["rdcodec beta=0 vs later-beta0"]["bd_rate_percent"] == pytest.approx(-100 / 11, abs=0.3)
    assert {k: v for k, v in after["bd"].items() if "later" not in k} == before
    assert "later-beta0" in after["curves"] and "| rdcodec beta=0 vs later-beta0 |" in (out / "README.md").read_text()


def test_a_refined_run_says_so_in_its_summary_curves_and_readme(tmp_path, example):
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    Image.fromarray(example[160:352, 256:512]).save(images / "a.png")
    rd.main([str(images), "--out", str(out), "--alphas", "6", "--codecs", "none", "--refine", "3"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refine"] == 3 and summary["smoothness_beta0"] == []
    assert "latent refinement 3 steps" in json.loads((out / "rdcodec-beta0.json").read_text())["description"]
    text = (out / "README.md").read_text()
    assert "encoder-side latent refinement of 3 steps" in text
    assert "Interpolated alpha points: none (every alpha is a trained level)." in text


def test_a_run_for_machines_says_so_and_refuses_a_missing_network(tmp_path, example, shared):
    pytest.importorskip("ai_edge_litert")
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    Image.fromarray(example[160:352, 256:448]).save(images / "a.png")
    with pytest.raises(SystemExit):
        rd.main([str(images), "--out", str(out), "--codecs", "none", "--machines", str(tmp_path / "none.tflite")])
    net = shared / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
    rd.main([str(images), "--out", str(out), "--alphas", "2", "--codecs", "none", "--machines", str(net)])
    summary = json.loads((out / "summary.json").read_text())
    # alpha 0 and 1: rdcodec's own steps for each (rdcodec.refine.machine_steps)
    assert summary["machines"] == net.name and summary["refine"] == [20, 10]
    desc = json.loads((out / "rdcodec-beta1.json").read_text())["description"]
    assert f"latent refinement 20 -> 10 steps by alpha for machines ({net.name})" in desc
    assert f"refinement of 20 -> 10 steps by alpha for machines ({net.name})" in (out / "README.md").read_text()

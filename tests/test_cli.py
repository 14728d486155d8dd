"""The command line, through Click's runner and as real subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import rdcodec
from rdcodec.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def png(tmp_path, crop):
    p = tmp_path / "in.png"
    Image.fromarray(crop).save(p)
    return p


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def test_encode_decode_info(tmp_path, png):
    out = tmp_path / "x.rdc"
    r = run("encode", png, "--alpha", "0.5", "-o", out)
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"\x8bRDC"
    r = run("info", out, "--json")
    i = json.loads(r.stdout)
    assert {"width", "height", "alpha", "bytes", "layers"} <= i.keys()
    assert set(i["layers"]) == {"header", "base", "residual"} and i["bytes"] == out.stat().st_size
    assert i["alpha"] == pytest.approx(0.5, abs=1e-4)
    dec = tmp_path / "y.png"
    assert run("decode", out, "--beta", "0.25", "-o", dec).exit_code == 0
    assert Image.open(dec).size == (192, 128)
    r = run("info", out)
    assert "bpp" in r.output and "residual" in r.output


def test_info_names_the_decoder_and_the_encoders_that_share_it(tmp_path, png):
    """The default rdc-v22 is encoder weights on rdc-v19's decoder: its files carry rdc-v19's id,
    and info says that rdc-v22 may have made them."""
    from rdcodec import weights

    default = weights.load(None)[2]
    out = tmp_path / "x.rdc"
    assert run("encode", png, "-o", out).exit_code == 0
    i = json.loads(run("info", out, "--json").stdout)
    decoder = default.decoder.name if default.decoder else default.name
    assert i["weights"] == decoder
    assert (default.name in i["encoders"]) == (default.decoder is not None)
    if i["encoders"]:
        assert f"made by its own encoder or by {', '.join(i['encoders'])}" in run("info", out).output


def test_default_output_names(tmp_path, png):
    assert run("encode", png).exit_code == 0
    assert (tmp_path / "in.rdc").exists()
    assert run("decode", tmp_path / "in.rdc", "-o", tmp_path / "in2.png").exit_code == 0


def test_no_residual_and_beta_default(tmp_path, png):
    full, base = tmp_path / "full.rdc", tmp_path / "base.rdc"
    run("encode", png, "-o", full)
    run("encode", png, "-o", base, "--no-residual")
    assert base.stat().st_size < full.stat().st_size
    assert json.loads(run("info", base, "--json").stdout)["layers"]["residual"] == 0
    run("decode", full, "-o", tmp_path / "d0.png")
    run("decode", full, "-b", "0", "-o", tmp_path / "e0.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d0.png")), np.asarray(Image.open(tmp_path / "e0.png")))


def test_refuses_to_overwrite_without_force(tmp_path, png):
    out = tmp_path / "x.rdc"
    out.write_bytes(b"keep me")
    r = run("encode", png, "-o", out)
    assert r.exit_code == 1 and "exists" in r.output and out.read_bytes() == b"keep me"
    assert run("encode", png, "-o", out, "--force").exit_code == 0
    assert out.read_bytes()[:4] == b"\x8bRDC"
    img = tmp_path / "y.png"
    img.write_bytes(b"keep")
    assert run("decode", out, "-o", img).exit_code == 1 and img.read_bytes() == b"keep"


def test_outputs_get_the_mode_a_plain_write_would_give(tmp_path, png, monkeypatch):
    """Written through a private (0600) temporary file, but not left private: a new file follows
    the umask, an overwritten one keeps its mode."""
    from rdcodec import fileio

    monkeypatch.setattr(fileio, "_UMASK", 0o022)
    out = tmp_path / "x.rdc"
    assert run("encode", png, "-o", out).exit_code == 0
    assert out.stat().st_mode & 0o777 == 0o644
    img = tmp_path / "y.png"
    img.write_bytes(b"old")
    img.chmod(0o640)
    assert run("decode", out, "-o", img, "--force").exit_code == 0
    assert img.read_bytes()[:4] == b"\x89PNG" and img.stat().st_mode & 0o777 == 0o640


def test_an_output_is_still_written_where_chmod_is_refused(tmp_path, png, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("operation not permitted")

    monkeypatch.setattr("rdcodec.fileio.os.chmod", refuse)
    out = tmp_path / "x.rdc"
    assert run("encode", png, "-o", out).exit_code == 0
    assert out.read_bytes()[:4] == b"\x8bRDC" and not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize("damage", ["truncate", "magic", "flip", "empty"])
def test_bad_files_give_one_line_error_and_no_output(tmp_path, png, damage):
    good = tmp_path / "x.rdc"
    run("encode", png, "-o", good)
    data = bytearray(good.read_bytes())
    bad = {"truncate": data[:50], "magic": b"XXXX" + data[4:], "empty": b"",
           "flip": data[:60] + bytes([data[60] ^ 1]) + data[61:]}[damage]
    p = tmp_path / "bad.rdc"
    p.write_bytes(bytes(bad))
    out = tmp_path / "out.png"
    r = run("decode", p, "-o", out)
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and r.output.startswith("rdcodec: error:")
    assert not out.exists() and not list(tmp_path.glob(".out.png*"))


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello")
    r = run("encode", p, "-o", tmp_path / "n.rdc")
    assert r.exit_code == 1 and "not an image" in r.output and not (tmp_path / "n.rdc").exists()


def test_missing_input(tmp_path):
    r = run("encode", tmp_path / "nope.png")
    assert r.exit_code == 1 and "no such file" in r.output


def test_bad_alpha_is_a_usage_error(png):
    assert run("encode", png, "--alpha", "1.5").exit_code == 2


def test_unknown_output_format(tmp_path, png):
    run("encode", png, "-o", tmp_path / "x.rdc")
    r = run("decode", tmp_path / "x.rdc", "-o", tmp_path / "x.unknown")
    assert r.exit_code == 1 and "format" in r.output


def test_strip(tmp_path, png):
    full, base = tmp_path / "full.rdc", tmp_path / "base.rdc"
    run("encode", png, "-o", full)
    assert run("strip", full, "-o", base).exit_code == 0
    assert json.loads(run("info", base, "--json").stdout)["layers"]["residual"] == 0
    # a base-only file: beta has no effect unless the decoder predicts the residual
    outs = {}
    for name, args in {"b0": ["-b", "0"], "b1": ["-b", "1"], "p0": ["-b", "0", "--predict-residual"],
                       "p1": ["-b", "1", "--predict-residual"]}.items():
        assert run("decode", base, "-o", tmp_path / f"{name}.png", *args).exit_code == 0
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    np.testing.assert_array_equal(outs["b0"], outs["b1"])
    assert "no residual layer" in run("decode", base, "-o", tmp_path / "n.png", "-b", "0.5").output
    for args in (["-b", "1"], ["-b", "0.5", "--predict-residual"]):
        assert "no residual layer" not in run("decode", base, "-f", "-o", tmp_path / "n.png", *args).output
    assert "no residual layer" not in run("decode", full, "-o", tmp_path / "f.png", "-b", "0.5").output
    assert "--predict-residual" in run("info", base).output and "--predict-residual" not in run("info", full).output
    np.testing.assert_array_equal(outs["p1"], outs["b1"])
    assert not np.array_equal(outs["p0"], outs["b0"])


def test_help_has_examples():
    for cmd in ("encode", "decode", "info", "strip"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "Example" in r.output


def _subprocess(args, **kw):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(args, capture_output=True, env=env, timeout=300, **kw)


def test_real_subprocess_pipeline_with_stdin_stdout(tmp_path, png):
    exe = [sys.executable, str(ROOT / "bin" / "rdcodec")]
    enc = _subprocess(exe + ["encode", "-", "-o", "-", "--alpha", "0.2"], input=png.read_bytes())
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout[:4] == b"\x8bRDC"
    dec = _subprocess(exe + ["decode", "-", "-o", "-", "-b", "1"], input=enc.stdout)
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    bad = _subprocess(exe + ["decode", "-", "-o", str(tmp_path / "z.png")], input=b"garbage!" * 10)
    assert bad.returncode == 1
    assert b"Traceback" not in bad.stderr and bad.stderr.decode().startswith("rdcodec: error:")


def test_installed_console_script(tmp_path, png):
    exe = Path(sys.executable).parent / "rdcodec"
    if not exe.exists():
        pytest.skip("rdcodec is not installed in this environment")
    r = _subprocess([str(exe), "encode", str(png), "-o", str(tmp_path / "c.rdc"), "-q"])
    assert r.returncode == 0 and r.stderr == b""
    r = _subprocess([str(exe), "info", str(tmp_path / "c.rdc"), "--json"])
    assert json.loads(r.stdout)["width"] == 192


@pytest.mark.parametrize("text,expect", [("1500", 1500), ("20KB", 20000), ("1.5MB", 1500000), ("64KiB", 65536)])
def test_parse_size(text, expect):
    from rdcodec.cli import parse_size

    assert parse_size(text) == expect


def test_target_size_fits_and_is_close(tmp_path, png):
    small, big = tmp_path / "a0.rdc", tmp_path / "a1.rdc"
    run("encode", png, "-a", "0", "-o", small)
    run("encode", png, "-a", "1", "-o", big)
    target = (small.stat().st_size + big.stat().st_size) // 2
    out = tmp_path / "t.rdc"
    r = run("encode", png, "--target-size", str(target), "-o", out)
    assert r.exit_code == 0 and "chose alpha" in r.output
    assert target * 0.9 <= out.stat().st_size <= target


def test_target_below_reach_uses_alpha_zero(tmp_path, png):
    out = tmp_path / "t.rdc"
    r = run("encode", png, "--target-bpp", "0.0001", "-o", out)
    assert r.exit_code == 0 and "smallest" in r.output
    assert json.loads(run("info", out, "--json").stdout)["alpha"] == 0


def test_target_and_alpha_conflict(png):
    assert run("encode", png, "--alpha", "0.3", "--target-bpp", "0.5").exit_code == 2


@pytest.mark.parametrize("other", [["--alpha", "0.3"], ["--target-size", "2KB"], ["--target-bpp", "0.5"]])
def test_target_psnr_conflicts_are_usage_errors(tmp_path, png, other):
    r = run("encode", png, "--target-psnr", "30", *other, "-o", tmp_path / "x.rdc")
    assert r.exit_code == 2 and "at most one of" in r.output and not (tmp_path / "x.rdc").exists()


def _decoded_psnr(path, original) -> float:
    from rdcodec.eval.metrics import psnr

    return psnr(original, np.asarray(rdcodec.decode(path.read_bytes(), beta=0)))


def test_target_psnr_reaches_the_target_within_a_tenth_of_a_db(tmp_path, png, crop):
    ends = []
    for a in ("0", "1"):
        p = tmp_path / f"a{a}.rdc"
        run("encode", png, "-a", a, "-o", p, "-q")
        ends.append(_decoded_psnr(p, crop))
    target = round((ends[0] + ends[1]) / 2, 2)
    out = tmp_path / "t.rdc"
    r = run("encode", png, "--target-psnr", str(target), "-o", out)
    assert r.exit_code == 0, r.output
    got = _decoded_psnr(out, crop)  # a real decode of the written file
    assert target <= got <= target + 0.1
    alpha = json.loads(run("info", out, "--json").stdout)["alpha"]
    assert 0 < alpha < 1
    assert f"target {target:g} dB: chose alpha {alpha:.4f} -> {got:.2f} dB PSNR at beta 0" in r.output
    assert "bpp" in r.output.splitlines()[0]


@pytest.mark.parametrize("target,alpha,note", [("99", 1.0, "out of reach"), ("5", 0.0, "already above")])
def test_target_psnr_out_of_reach_uses_the_nearest_end(tmp_path, png, target, alpha, note):
    out = tmp_path / "t.rdc"
    r = run("encode", png, "--target-psnr", target, "-o", out)
    assert r.exit_code == 0 and note in r.output
    assert json.loads(run("info", out, "--json").stdout)["alpha"] == alpha


def test_target_psnr_in_the_python_api(crop):
    from rdcodec.eval.metrics import psnr

    c, alpha, db = rdcodec.compress_to_psnr(crop, 30.0, residual=False)
    assert db == psnr(crop, np.asarray(rdcodec.decode(c.data)))
    assert 30.0 <= db <= 30.1 and rdcodec.info(c.data)["alpha"] == pytest.approx(alpha, abs=1e-4)
    assert rdcodec.info(c.data)["layers"]["residual"] == 0
    with pytest.raises(ValueError):
        rdcodec.compress_to_psnr(crop, -1.0)


def test_target_size_in_the_python_api(crop):
    c, alpha = rdcodec.compress_to_size(crop, 600)
    assert 0.98 * 600 <= len(c.data) <= 600 and rdcodec.info(c.data)["alpha"] == pytest.approx(alpha, abs=1e-4)


# ---------------------------------------------------------------- several files at once


@pytest.fixture()
def two_pngs(tmp_path, crop):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(crop).save(d / "a.png")
    Image.fromarray(np.ascontiguousarray(crop[:, ::-1])).save(d / "b.png")
    return [d / "a.png", d / "b.png"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_folder_mode_gives_the_same_bytes_as_single_files(tmp_path, two_pngs, jobs):
    out = tmp_path / "out"
    res = run("encode", *two_pngs, "-a", "0.3", "-o", f"{out}/", "-j", jobs)
    assert res.exit_code == 0, res.output
    for p in two_pngs:
        single = tmp_path / f"{p.stem}.single.rdc"
        assert run("encode", p, "-a", "0.3", "-o", single, "-q").exit_code == 0
        assert (out / f"{p.stem}.rdc").read_bytes() == single.read_bytes()
    dec = tmp_path / "dec"
    res = run("decode", *sorted(out.glob("*.rdc")), "-o", dec, "-b", "1", "-j", jobs)
    assert res.exit_code == 0, res.output
    for p in two_pngs:
        single = tmp_path / f"{p.stem}.single.png"
        assert run("decode", tmp_path / f"{p.stem}.single.rdc", "-b", "1", "-o", single, "-q").exit_code == 0
        assert np.array_equal(np.asarray(Image.open(dec / f"{p.stem}.png")), np.asarray(Image.open(single)))


def test_folder_mode_reports_bad_files_and_keeps_going(tmp_path, two_pngs):
    bad = two_pngs[0].parent / "c.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "out"
    res = run("encode", *two_pngs, bad, "-o", out, "-j", "1")
    assert res.exit_code == 1
    assert "c.png" in res.output and "1 of 3 files failed" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["a.rdc", "b.rdc"]  # no partial file for c


def test_folder_mode_refuses_clashing_names_and_stdin(tmp_path, two_pngs):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes(two_pngs[0].read_bytes())
    res = run("encode", two_pngs[0], other / "a.png", "-o", tmp_path / "out")
    assert res.exit_code == 1 and "would both be written" in res.output
    assert not (tmp_path / "out").exists()
    res = run("encode", "-", two_pngs[0], "-o", tmp_path / "out")
    assert res.exit_code == 1 and "stdin" in res.output
    res = run("encode", *two_pngs)
    assert res.exit_code == 2 and "-o FOLDER" in res.output


def test_folder_mode_does_not_overwrite(tmp_path, two_pngs):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.rdc").write_bytes(b"keep")
    res = run("encode", *two_pngs, "-o", out, "-j", "1")
    assert res.exit_code == 1 and (out / "a.rdc").read_bytes() == b"keep" and (out / "b.rdc").exists()


def test_check_residual_flag_reaches_the_encoder(tmp_path, png, monkeypatch):
    """--check-residual runs the encoder-side layer decision; a residual that would hurt is left out."""
    from rdcodec import codec as codec_module

    plain, checked = tmp_path / "plain.rdc", tmp_path / "checked.rdc"
    monkeypatch.setattr(codec_module, "_residual_helps", lambda *a: False)
    assert run("encode", png, "-o", plain).exit_code == 0
    assert run("encode", png, "-o", checked, "--check-residual").exit_code == 0
    assert json.loads(run("info", plain, "--json").stdout)["layers"]["residual"] > 0
    assert json.loads(run("info", checked, "--json").stdout)["layers"]["residual"] == 0


def test_decoding_finds_the_shipped_weights_a_file_names(tmp_path, png, monkeypatch):
    """A file made with opt-in weights decodes without --weights (the header's weights_id
    names them); naming other weights is still a clean error, and so is an unknown id."""
    monkeypatch.delenv("RDCODEC_WEIGHTS", raising=False)
    rdc, a, b = tmp_path / "x.rdc", tmp_path / "a.png", tmp_path / "b.png"
    assert run("encode", png, "--weights", "rdc-v7b", "-o", rdc).exit_code == 0
    assert run("decode", rdc, "-o", a).exit_code == 0
    assert run("decode", rdc, "--weights", "rdc-v7b", "-o", b).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    assert np.array_equal(np.asarray(rdcodec.decode(rdc.read_bytes())), np.asarray(Image.open(a)))
    r = CliRunner().invoke(main, ["decode", str(rdc), "--weights", "rdc-v6", "-o", str(tmp_path / "c.png")])
    assert r.exit_code != 0 and "rdc-v7b" in r.output and not (tmp_path / "c.png").exists()
    from rdcodec.bitstream import container

    h, f = container.parse_header(rdc.read_bytes()), container.unpack(rdc.read_bytes())
    unknown = tmp_path / "u.rdc"  # another weights_id: no shipped weights have it
    unknown.write_bytes(container.pack(h.weights_id ^ 1, h.width, h.height, h.alpha_q, f.base, f.residual))
    r = CliRunner().invoke(main, ["decode", str(unknown), "-o", str(tmp_path / "d.png")])
    assert r.exit_code != 0 and "unknown weights" in r.output


# bin/rdcodec without the dependencies: a fake `torch` package that fails to import unless the
# script has handed itself over (RDCODEC_BIN_REEXEC set), then steps aside for the real one.
FAKE_TORCH = '''
import os, sys
if not os.environ.get("RDCODEC_BIN_REEXEC"):
    raise ModuleNotFoundError("No module named 'torch'", name="torch")
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules["torch"]
import torch as _real
sys.modules["torch"] = _real
'''


def _checkout_without_torch(tmp_path, with_venv):
    """A checkout-shaped folder: bin/rdcodec, the package (it finds weights/ by its real path),
    and optionally a .venv python."""
    root = tmp_path / "checkout"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "rdcodec").write_bytes((ROOT / "bin" / "rdcodec").read_bytes())
    (root / "rdcodec").symlink_to(ROOT / "rdcodec")
    if with_venv:
        venv_bin = root / ".venv" / "bin"
        venv_bin.mkdir(parents=True)
        (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (venv_bin / "python").chmod(0o755)
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(FAKE_TORCH)
    env = {k: v for k, v in os.environ.items() if k != "RDCODEC_BIN_REEXEC"}
    env["PYTHONPATH"] = str(fake)
    return root, env


def test_bin_script_without_torch_says_what_is_missing(tmp_path):
    root, env = _checkout_without_torch(tmp_path, with_venv=False)
    r = subprocess.run([sys.executable, root / "bin" / "rdcodec", "--help"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "'torch'" in r.stderr and "scripts/setup.sh" in r.stderr


def test_bin_script_hands_itself_to_the_checkouts_venv(tmp_path):
    root, env = _checkout_without_torch(tmp_path, with_venv=True)
    r = subprocess.run([sys.executable, root / "bin" / "rdcodec", "--help"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "encode" in r.stdout and "Traceback" not in r.stderr


def test_filter_flag_writes_a_filtered_file_that_info_describes(tmp_path):
    from .conftest import EXAMPLE

    out = tmp_path / "f.rdc"
    r = run("encode", EXAMPLE, "--alpha", "1", "--filter", "-o", out)
    assert r.exit_code == 0, r.output
    i = json.loads(run("info", out, "--json").stdout)
    flt = i["output_filter"]
    assert flt["radius"] in (2, 3, 4, 5) and 1 <= flt["groups"] <= 5
    assert i["format_version"] == 5 and i["layers"]["header"] < 36
    assert i["output_filter"]["bytes"] < i["layers"]["residual"]
    assert "output filter: diamond of radius" in run("info", out).output
    assert run("decode", out, "--beta", "0", "-o", tmp_path / "f.png").exit_code == 0


def test_filter_with_a_size_target_fits_the_size(tmp_path, png):
    out = tmp_path / "x.rdc"
    r = run("encode", png, "--filter", "--target-size", "1200", "-o", out)
    assert r.exit_code == 0, r.output
    assert 1150 < out.stat().st_size <= 1200

"""benchmarks/encoder_tools.py: refinement and the output filter, alone and together (bundled image)."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from .conftest import load_script

tools = load_script("benchmarks/encoder_tools.py")


def test_encoder_tools_measure_every_variant_on_real_files(tmp_path, example):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (top, left) in enumerate([(0, 0), (200, 300)]):
        Image.fromarray(example[top:top + 192, left:left + 256]).save(folder / f"im{i}.png")
    out = tmp_path / "tools.json"
    tools.main([str(folder), "--alphas", "0", "1", "--steps", "2", "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["images"] == ["im0.png", "im1.png"] and set(r["curves"]) == set(tools.VARIANTS)
    for v in tools.VARIANTS:
        bpp, q = r["per_image"][v]["bpp"], r["per_image"][v]["psnr"]
        assert all(hi > lo for lo, hi in zip(bpp[0], bpp[1]))  # alpha raises the rate of every image
        assert all(hi > lo for lo, hi in zip(q[0], q[1]))
    for a in range(2):
        for i in range(2):  # a filter is written only when it pays: more bytes buy a better image
            for base, filtered in (("plain", "filter"), ("refine", "refine+filter")):
                b0, b1 = r["per_image"][base]["bpp"][a][i], r["per_image"][filtered]["bpp"][a][i]
                q0, q1 = r["per_image"][base]["psnr"][a][i], r["per_image"][filtered]["psnr"][a][i]
                assert b1 == b0 and q1 == q0 or b1 > b0 and q1 > q0
    assert len(r["bd"]) == 9 and all(math.isfinite(x["bd_rate_percent"]) for x in r["bd"].values())


def _part(path, images, offset):
    """A summary as a run on ``images`` writes it: per-image bpp and PSNR at three alphas."""
    per = {v: {"bpp": [[(0.2 + 0.3 * a) * (1 + offset + i / 10) * (0.95 if "refine" in v else 1)
                        for i in range(len(images))] for a in range(3)],
               "psnr": [[27 + 2 * a + offset + (0.3 if "filter" in v else 0) for _ in images] for a in range(3)]}
           for v in tools.VARIANTS}
    path.write_text(json.dumps({"weights": "w", "refine_steps": 50, "alphas": [0, 0.5, 1], "images": images,
                                "per_image": per, "wall_s": 10.0}))
    return path


def test_merge_combines_disjoint_runs_and_compares_with_the_classical_curves(tmp_path):
    a = _part(tmp_path / "a.json", ["k1.png", "k2.png"], 0.0)
    b = _part(tmp_path / "b.json", ["k3.png"], 1.0)
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    (anchors / "hevc.json").write_text(json.dumps({"images": 3, "results": {"bpp": [0.1, 0.3, 0.6, 1.2],
                                                               "psnr-rgb": [27.5, 30.0, 32.5, 35.0]}}))
    out = tmp_path / "m.json"
    r = tools.main(["--merge", str(a), str(b), "--anchors", str(anchors), "--out", str(out)])
    assert json.loads(out.read_text()) == r
    assert r["images"] == ["k1.png", "k2.png", "k3.png"] and r["wall_s"] == 20.0
    plain = r["per_image"]["plain"]["psnr"][0]
    assert plain == [27.0, 27.0, 28.0]
    assert r["curves"]["plain"]["psnr"][0] == sum(plain) / 3
    # refinement costs 5% less at the same PSNR in every image: -5% BD-rate against plain
    assert abs(r["bd"]["refine vs plain"]["bd_rate_percent"] + 5.0) < 1e-6
    assert {k for k in r["bd"] if k.endswith(" vs hevc")} == {f"{v} vs hevc" for v in tools.VARIANTS}
    with pytest.raises(SystemExit, match="mean over 3 images, these runs over 2"):
        tools.main(["--merge", str(a), "--anchors", str(anchors), "--out", str(out)])
    with pytest.raises(SystemExit, match="share images"):
        tools.main(["--merge", str(a), str(a), "--out", str(out)])
    c = _part(tmp_path / "c.json", ["k9.png"], 0.0)
    c.write_text(c.read_text().replace('"refine_steps": 50', '"refine_steps": 100'))
    with pytest.raises(SystemExit, match="refine_steps"):
        tools.main(["--merge", str(a), str(c), "--out", str(out)])

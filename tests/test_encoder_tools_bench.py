"""benchmarks/encoder_tools.py: refinement and the output filter, alone and together (bundled image)."""

from __future__ import annotations

import json
import math

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

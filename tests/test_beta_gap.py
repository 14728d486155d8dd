"""scripts/beta_gap.py: the per-alpha accuracy gap between beta = 1 and beta = 0 of the same files."""

import json

import pytest

from .conftest import load_script

CLF = "mobilenet_v2_1.0_224_quant"


def _write_records(folder, hits):
    """``hits[(beta, alpha)]``: per image, whether its top-1 is right."""
    (folder / "records").mkdir(parents=True)
    lines = []
    for i in range(len(next(iter(hits.values())))):
        entries = [[f"m-beta{b:g}", a, 0.1 + a, {CLF: [7 if h[i] else 3, 1, 2, 4, 5]}, None]
                   for (b, a), h in hits.items()]
        lines.append(json.dumps({"file": f"img{i}.jpg", "label": 7, "entries": entries}))
    (folder / "records" / "m.0of1.jsonl").write_text("\n".join(lines) + "\n")


def test_gap_is_paired_per_alpha(tmp_path):
    bg = load_script("scripts/beta_gap.py")
    n = 40
    hits = {(1.0, 0.0): [True] * n, (0.0, 0.0): [i % 2 == 0 for i in range(n)],  # beta 1 ahead by 50 points
            (1.0, 1.0): [i % 4 == 0 for i in range(n)], (0.0, 1.0): [True] * n}  # beta 0 ahead by 75
    _write_records(tmp_path, hits)
    table = bg.beta_table(bg.read_records(tmp_path), "m", CLF)
    assert table["images"] == n and table["alphas"] == [0.0, 1.0]
    assert table["top1"]["1"] == [100.0, 25.0] and table["top1"]["0"] == [50.0, 100.0]
    (g0, lo0, hi0), (g1, lo1, hi1) = table["gap"]
    assert g0 == pytest.approx(50.0) and lo0 > 0 and lo0 <= g0 <= hi0
    assert g1 == pytest.approx(-75.0) and hi1 < 0 and lo1 <= g1 <= hi1


def test_missing_curves_are_an_error(tmp_path):
    bg = load_script("scripts/beta_gap.py")
    _write_records(tmp_path, {(1.0, 0.0): [True, False]})
    with pytest.raises(SystemExit, match="no records"):
        bg.beta_table(bg.read_records(tmp_path), "m", CLF)

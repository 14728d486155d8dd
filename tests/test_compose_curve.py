"""``scripts/compose_curve.py``: a curve joined from the points of measured ones."""

import gzip
import json

import pytest

from .conftest import load_script


@pytest.fixture(scope="module")
def compose():
    return load_script("scripts/compose_curve.py")


def record(file: str, curve: str, alphas, bpp0: float) -> str:
    """One image's record with both betas of ``curve`` at ``alphas`` (bpp ``bpp0 + alpha``)."""
    entries = [[f"{curve}-beta{b}", a, bpp0 + a + b, {"net": [int(10 * a), 1]}, None]
               for b in (0, 1) for a in alphas]
    return json.dumps({"file": file, "label": 1, "entries": entries}) + "\n"


def test_points_are_taken_renamed_and_only_where_asked(tmp_path, compose):
    records = tmp_path / "records"
    records.mkdir()
    (records / "long.0of1.jsonl").write_text(record("a.JPEG", "long", [0.0, 0.2], 0.5)
                                             + record("b.JPEG", "long", [0.0, 0.2], 0.7))
    (records / "short.0of1.jsonl.gz").write_bytes(gzip.compress(
        (record("a.JPEG", "short", [0.0, 0.2, 1.0], 0.0) + record("b.JPEG", "short", [0.0, 0.2, 1.0], 0.1)).encode()))
    out = compose.compose(tmp_path, "mix", [("long", [0.0]), ("short", [0.2, 1.0])])
    recs = {r["file"]: r for r in map(json.loads, gzip.decompress(out.read_bytes()).decode().splitlines())}
    assert sorted(recs) == ["a.JPEG", "b.JPEG"] and recs["a.JPEG"]["label"] == 1
    got = sorted((c, a, bpp) for c, a, bpp, _, _ in recs["b.JPEG"]["entries"])
    assert got == sorted([("mix-beta0", 0.0, 0.7), ("mix-beta1", 0.0, 1.7), ("mix-beta0", 0.2, 0.30000000000000004),
                          ("mix-beta1", 0.2, 1.3), ("mix-beta0", 1.0, 1.1), ("mix-beta1", 1.0, 2.1)])
    with pytest.raises(SystemExit, match="no point at alpha 1.0"):
        compose.compose(tmp_path, "bad", [("long", [1.0])])
    with pytest.raises(SystemExit, match="no curve nothing-beta"):
        compose.compose(tmp_path, "bad", [("nothing", [0.0])])

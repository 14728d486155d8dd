"""benchmarks/cognition.py: per-image records, resume/shard merging, aggregation and bootstrap intervals.

The LiteRT networks are replaced by a stand-in classifier so this runs without ../shared.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from .conftest import load_script

cognition = load_script("benchmarks/cognition.py")


class Brightness:
    """Stand-in classifier: 'class' = mean brightness // 8, so compression can change the answer."""

    name = "bright"

    def top5(self, image: np.ndarray) -> list[int]:
        k = int(image.mean()) // 8
        return [k, k + 1, k - 1, k + 2, k - 2]


def _write(folder, name, records):
    (folder / "records").mkdir(parents=True, exist_ok=True)
    with open(folder / "records" / name, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def _record(file, label, entries):
    return {"file": file, "label": label, "entries": entries}


def test_measure_image_covers_the_grid_and_counts_real_bytes(tmp_path, example, codec):
    path = tmp_path / "img.png"
    Image.fromarray(example).save(path)
    label = Brightness().top5(cognition.preprocess_center_crop(Image.open(path)))[0]
    rec = cognition.measure_image(path, label, "A", [Brightness()], None, codec, "ours", ["jpeg"], True)
    by_curve = {}
    for curve, setting, bpp, top5, m in rec["entries"]:
        by_curve.setdefault(curve, []).append((setting, bpp, top5["bright"]))
        assert m is None  # no segmenter
    assert sorted(by_curve) == sorted(["uncompressed", "jpeg"] + [f"ours-beta{b:g}" for b in cognition.BETAS])
    assert by_curve["uncompressed"] == [("original", 24.0, [label, label + 1, label - 1, label + 2, label - 2])]
    assert [s for s, _, _ in by_curve["jpeg"]] == cognition.SETTINGS["jpeg"]
    for b in cognition.BETAS:
        pts = by_curve[f"ours-beta{b:g}"]
        assert [s for s, _, _ in pts] == cognition.ALPHAS
        rates = [bpp for _, bpp, _ in pts]
        assert all(r1 < r2 for r1, r2 in zip(rates, rates[1:]))  # alpha raises the rate
    # beta = 1 is what a stripped file costs: fewer bits than the whole file at every alpha
    full = [bpp for _, bpp, _ in by_curve["ours-beta0"]]
    base = [bpp for _, bpp, _ in by_curve["ours-beta1"]]
    assert all(b < f for b, f in zip(base, full))
    assert full == [bpp for _, bpp, _ in by_curve["ours-beta0.5"]]


def test_measure_image_predicted_residual_curve(tmp_path, example, codec):
    path = tmp_path / "img.png"
    Image.fromarray(example).save(path)
    rec = cognition.measure_image(path, 0, "A", [Brightness()], None, codec, "ours", [], False, predicted=True)
    pts = [(c, s, bpp) for c, s, bpp, *_ in rec["entries"]]
    assert [(c, s) for c, s, _ in pts] == [("ours-pred-beta0", a) for a in cognition.ALPHAS]
    crop = cognition.preprocess_center_crop(Image.open(path))
    for _, a, bpp in pts:   # the rate is the base-only file's
        assert bpp == 8 * len(codec.compress(crop, a, residual=False, reconstruct=False).data) / crop[..., 0].size


def test_measure_image_takes_other_alphas(tmp_path, example, codec):
    path = tmp_path / "img.png"
    Image.fromarray(example).save(path)
    rec = cognition.measure_image(path, 0, "A", [Brightness()], None, codec, "ours", [], False, alphas=[0.1, 0.9])
    pts = {}
    for c, s, bpp, *_ in rec["entries"]:
        pts.setdefault(c, []).append((s, bpp))
    assert sorted(pts) == sorted(f"ours-beta{b:g}" for b in cognition.BETAS)
    assert all([s for s, _ in v] == [0.1, 0.9] for v in pts.values())
    assert pts["ours-beta1"][0][1] < pts["ours-beta1"][1][1]       # the higher alpha costs more
    for bad in ("0.1,x", "0.5,1.5", "-0.1"):                        # not numbers, or outside [0, 1]
        with pytest.raises(SystemExit):
            cognition.main(["folder", "--alphas", bad])
    with pytest.raises(SystemExit):                                 # alphas without an rdcodec curve
        cognition.main(["folder", "--name", "", "--alphas", "0.5"])


def test_measure_image_refines_for_machines(tmp_path, example, codec, toy_backbone):
    path = tmp_path / "img.png"
    Image.fromarray(example).save(path)
    rec = cognition.measure_image(path, 0, "A", [Brightness()], None, codec, "ours", [], False, refine=3,
                                  alphas=[0.5], machines=toy_backbone)
    crop = cognition.preprocess_center_crop(Image.open(path))
    data = codec.compress(crop, 0.5, refine=3, machines=toy_backbone).data
    bpp = {c: b for c, _, b, *_ in rec["entries"]}
    assert bpp["ours-beta0"] == 8 * len(data) / crop[..., 0].size    # the refined file, at its real size
    assert data != codec.compress(crop, 0.5).data
    with pytest.raises(SystemExit):                                 # refined files need their own curve
        cognition.main(["folder", "--name", "", "--machines", str(path)])
    with pytest.raises(SystemExit):                                 # no network there
        cognition.main(["folder", "--name", "x", "--machines", str(tmp_path / "none.tflite")])


def test_records_merge_shards_skip_duplicates_and_cut_lines(tmp_path):
    e = lambda curve, setting, bpp, top1, m=None: [curve, setting, bpp, {"c": [top1, 9, 9, 9, 9]}, m]  # noqa: E731
    _write(tmp_path, "x.0of2.jsonl", [_record("a.jpg", 1, [e("j", 10, 0.2, 1), e("j", 50, 0.8, 1)])])
    done = tmp_path / "records" / "x.0of2.jsonl"   # a finished shard, gzipped as committed
    done.with_suffix(".jsonl.gz").write_bytes(gzip.compress(done.read_bytes()))
    done.unlink()
    _write(tmp_path, "x.1of2.jsonl", [_record("b.jpg", 2, [e("j", 10, 0.4, 3), e("j", 50, 1.0, 2)]),
                                      # the same image again (a re-run): its first record stands
                                      _record("a.jpg", 1, [e("j", 10, 9.0, 5), e("j", 50, 9.0, 5)])])
    with open(tmp_path / "records" / "x.1of2.jsonl", "a") as f:
        f.write('{"file": "c.jpg", "label": 0, "entr')  # an interrupted write
    recs = cognition.read_records(tmp_path)
    assert sorted(recs["j"]) == ["a.jpg", "b.jpg"]
    assert recs["j"]["a.jpg"]["10"]["bpp"] == 0.2

    assert cognition.aggregate(tmp_path, "A") == ["j"]
    res = json.loads((tmp_path / "j.json").read_text())["results"]
    assert res["setting"] == [10, 50] and res["images"] == 2
    assert res["bpp"] == pytest.approx([0.3, 0.9])
    assert res["top1-c"] == pytest.approx([50.0, 100.0])   # a: hit, hit; b: miss, hit
    assert res["top5-c"] == pytest.approx([50.0, 100.0])
    assert cognition.SEG_KEY not in res                   # no mIoU recorded


def test_points_added_to_a_sweep_join_its_curve_in_rate_order(tmp_path):
    e = lambda setting, bpp, top1: ["h", setting, bpp, {"c": [top1, 9, 9, 9, 9]}, None]  # noqa: E731
    _write(tmp_path, "h.0of1.jsonl", [_record("a.jpg", 1, [e(6, 0.2, 0), e(26, 0.8, 1)]),
                                      _record("b.jpg", 2, [e(6, 0.3, 0), e(26, 1.0, 2)])])
    # a later run at a quality in between, for both images, and at one more for one image only
    _write(tmp_path, "h-q16.0of1.jsonl", [_record("a.jpg", 1, [e(16, 0.5, 1)]), _record("b.jpg", 2, [e(16, 0.6, 0)])])
    _write(tmp_path, "z.0of1.jsonl", [_record("a.jpg", 1, [e(6, 9.0, 1)])])   # a repeat, read last: the first stands
    _write(tmp_path, "h-q36.0of1.jsonl", [_record("a.jpg", 1, [e(36, 1.5, 1)])])
    assert cognition.aggregate(tmp_path, "A") == ["h"]
    res = json.loads((tmp_path / "h.json").read_text())["results"]
    assert res["setting"] == [6, 16, 26] and res["images"] == 2   # 36: not measured on b.jpg
    assert res["bpp"] == pytest.approx([0.25, 0.55, 0.9])
    assert res["top1-c"] == pytest.approx([0.0, 50.0, 100.0])


def test_measure_image_takes_another_sweep(tmp_path, example):
    path = tmp_path / "img.png"
    Image.fromarray(example).save(path)
    rec = cognition.measure_image(path, 0, "A", [Brightness()], None, None, "", ["jpeg"], False,
                                  settings={"jpeg": [15, 60]})
    assert [(c, s) for c, s, *_ in rec["entries"]] == [("jpeg", 15), ("jpeg", 60)]
    with pytest.raises(SystemExit):                 # a quality that is not a number
        cognition.main(["folder", "--codecs", "jpeg", "--settings", "jpeg=10,high"])
    with pytest.raises(SystemExit):                 # a codec this run does not code
        cognition.main(["folder", "--codecs", "jpeg", "--settings", "hevc=11"])
    with pytest.raises(SystemExit):                 # the prediction is measured on plain files
        cognition.main(["folder", "--predicted-residual", "--refine", "5"])


def test_bootstrap_intervals_from_records(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 50, 120)
    recs = []
    for i, y in enumerate(labels):
        entries = []
        for curve, p_hit in (("good", (0.5, 0.7, 0.9)), ("bad", (0.3, 0.5, 0.7))):
            for s, (bpp, p) in enumerate(zip((0.2, 0.4, 0.8), p_hit)):
                top1 = int(y) if rng.random() < p else int(y) + 1
                entries.append([curve, s, bpp * (1 + 0.1 * rng.random()), {"c": [top1, 0, 0, 0, 0]}, None])
        recs.append(_record(f"{i}.jpg", int(y), entries))
    _write(tmp_path, "r.0of1.jsonl", recs)
    cognition.aggregate(tmp_path, "A")
    point = cognition.bd_acc_table(tmp_path, ["good"], ["bad"], "c")["good vs bad"]
    lo, hi = cognition.bd_acc_intervals(tmp_path, ["good"], ["bad"], "top1-c")["good vs bad"]
    assert lo < point < hi
    assert 5 < point < 35 and hi - lo < 30            # true gap: 20 points
    missing = cognition.bd_acc_intervals(tmp_path, ["good"], ["absent"], "top1-c")["good vs absent"]
    assert missing.startswith("n/a")


def _curve(folder, name, bpp, top1):
    results = {"bpp": bpp, **{f"top1-{clf}": top1 for clf in cognition.CLASSIFIERS}}
    (folder / f"{name}.json").write_text(json.dumps({"name": name, "images": 10, "results": results}))


def test_report_keeps_a_named_model_table_beside_the_latest(tmp_path):
    bpp = [0.2, 0.4, 0.8, 1.6]
    _curve(tmp_path, "jpeg", bpp, [20.0, 40.0, 60.0, 70.0])
    _curve(tmp_path, "rdc-v9-beta1", bpp, [30.0, 50.0, 65.0, 72.0])
    _curve(tmp_path, "rdc-v9-beta0", bpp, [25.0, 45.0, 62.0, 71.0])
    table = cognition.report(tmp_path, ours="rdc-v9")
    assert table["ours"] == "rdc-v9"
    assert table["bd_acc"][cognition.HEADLINE]["rdc-v9-beta1 vs jpeg"] > 0
    assert (tmp_path / "bd_acc-rdc-v9.json").read_text() == (tmp_path / "bd_acc.json").read_text()
    _curve(tmp_path, "rdcodec-beta1", bpp, [10.0, 30.0, 50.0, 60.0])
    cognition.report(tmp_path)                   # the unnamed model: bd_acc.json only
    assert json.loads((tmp_path / "bd_acc.json").read_text())["ours"] == "rdcodec"
    assert json.loads((tmp_path / "bd_acc-rdc-v9.json").read_text())["ours"] == "rdc-v9"

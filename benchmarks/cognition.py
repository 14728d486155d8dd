"""Machine-vision accuracy against rate: rdcodec (alpha x beta grid), JPEG, WebP, HEVC-intra.

Protocol A (the paper's, the headline): resize the shorter side to 256, center-crop 224,
compress that crop, decode, classify. Protocol B: compress the image at its native size,
decode, then resize/crop and classify. For every rdcodec alpha the file is coded once and its
reconstruction rendered at each beta (the encoder's reconstruction equals the decoder's
pixel for pixel; ``tests/test_codec.py`` asserts it). bpp counts the real file: the whole file
for beta < 1 and header + base layer for beta = 1 (what a stripped file costs).

Classifiers are the LiteRT networks in ``../shared/models`` as shipped (uint8); the headline
is MobileNetV2 1.0 (not the MobileNetV1 extractor used in training). Output: one JSON per
codec/setting in ``--out`` with per-classifier top-1/top-5 (%) against bpp, ``bd_acc.json``
(BD-Acc: mean accuracy gap over log-rate, PCHIP, like BD-PSNR) and ``accuracy.png``.

``--segmentation`` adds a second task: segmentation agreement. DeepLabV3-MobileNetV2 (PASCAL
VOC, LiteRT, uint8) segments the decoded image and the uncompressed input (protocol A: the 224
crop; protocol B: the image at native size), and each curve's results get ``miou-deeplabv3``:
the mean over images of the per-image mIoU (%) of the first prediction against the second
(``rdcodec.eval.metrics.miou``: classes present in either map). ``report`` then adds BD-mIoU
(same BD integral) under ``bd_miou`` in ``bd_acc.json`` and plots ``segmentation.png``.

    python benchmarks/cognition.py ../shared/data/imagenet_sample --protocol A --limit 200 --segmentation
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import classical  # noqa: E402

from rdcodec.api import get_codec  # noqa: E402
from rdcodec.bitstream import container  # noqa: E402
from rdcodec.eval.bjontegaard import bd_quality  # noqa: E402
from rdcodec.eval.metrics import miou  # noqa: E402
from rdcodec.vision.reference import Classifier, Segmenter, preprocess_center_crop  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
CLASSIFIERS = ["mobilenet_v2_1.0_224_quant", "tf2_mobilenet_v2_1.0_224_ptq", "mobilenet_v1_0.75_192_quant"]
HEADLINE = CLASSIFIERS[0]
SEGMENTER = "deeplabv3_mnv2_pascal_quant"
SEG_KEY = "miou-deeplabv3"
ALPHAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
BETAS = [0.0, 0.25, 0.5, 0.75, 1.0]
SETTINGS = {"jpeg": [5, 10, 20, 35, 50, 75, 90], "webp": [0, 10, 30, 50, 70, 86, 93],
            "hevc": [6, 16, 26, 36, 46, 56, 66]}


def load_samples(folder: Path, limit: int) -> list[tuple[Path, int]]:
    """(file, ImageNet class index) pairs; ``limit`` takes every k-th image so all classes are spread."""
    with open(folder / "labels.csv") as f:
        rows = [(folder / r["file"], int(r["class_index"])) for r in csv.DictReader(f)]
    rows.sort()
    if limit and limit < len(rows):
        rows = rows[:: len(rows) // limit][:limit]
    return rows


class Tally:
    """Top-1/top-5 hits, bits and (optionally) segmentation mIoU per (curve, setting) over images."""

    def __init__(self):
        self.rows: dict[str, dict] = {}

    def add(self, curve: str, setting, bpp: float, image: np.ndarray, label: int, clfs: list[Classifier],
            miou_value: float | None = None):
        cell = self.rows.setdefault(curve, {}).setdefault(setting, {"bpp": [], "hits": {}, "miou": []})
        cell["bpp"].append(bpp)
        if miou_value is not None:
            cell["miou"].append(miou_value)
        for c in clfs:
            top5 = c.top5(image)
            h = cell["hits"].setdefault(c.name, {"top1": 0, "top5": 0})
            h["top1"] += int(top5[0] == label)
            h["top5"] += int(label in top5)

    def curve(self, curve: str) -> dict:
        cells = self.rows[curve]
        settings = list(cells)
        n = len(cells[settings[0]]["bpp"])
        out = {"setting": settings, "bpp": [float(np.mean(cells[s]["bpp"])) for s in settings], "images": n}
        for clf in cells[settings[0]]["hits"]:
            for k in ("top1", "top5"):
                out[f"{k}-{clf}"] = [100.0 * cells[s]["hits"][clf][k] / n for s in settings]
        if all(len(cells[s]["miou"]) == n for s in settings):
            out[SEG_KEY] = [100.0 * float(np.mean(cells[s]["miou"])) for s in settings]
        return out


def code_rdcodec(codec, crop: np.ndarray, alphas, betas):
    """Yield (beta, alpha, bpp, decoded uint8 image) for the alpha x beta grid."""
    an = codec.analyze(crop)
    pixels = crop.shape[0] * crop.shape[1]
    for a in alphas:
        c = codec.compress(an, a)

        base_bytes = container.base_only_size(c.data)
        for b in betas:
            size = len(c.data) if b < 1 else base_bytes
            yield b, a, 8 * size / pixels, c.recon.render(b)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/imagenet"))
    ap.add_argument("--protocol", choices=["A", "B"], default="A")
    ap.add_argument("--limit", type=int, default=0, help="every k-th image, N in all (default: all 1000)")
    ap.add_argument("--weights", default=None, help="rdcodec weights (default: the registry's default)")
    ap.add_argument("--name", default="rdcodec", help="curve name for --weights")
    ap.add_argument("--codecs", default="jpeg,webp,hevc", help="classical codecs ('' for none)")
    ap.add_argument("--uncompressed", action="store_true", help="also measure the original images")
    ap.add_argument("--segmentation", action="store_true",
                    help=f"also record DeepLabV3 segmentation agreement ({SEG_KEY}, %%) against the original")
    args = ap.parse_args(argv)

    samples = load_samples(args.folder, args.limit)
    clfs = [Classifier(MODELS / f"{n}.tflite") for n in CLASSIFIERS]
    seg = Segmenter(MODELS / f"{SEGMENTER}.tflite") if args.segmentation else None
    codec = get_codec(args.weights) if args.name else None
    names = [n for n in args.codecs.split(",") if n]
    tally = Tally()
    t0 = time.time()
    for i, (path, label) in enumerate(samples):
        img = Image.open(path)
        crop = preprocess_center_crop(img)
        src = crop if args.protocol == "A" else np.asarray(img.convert("RGB"))
        post = (lambda x: x) if args.protocol == "A" else (lambda x: preprocess_center_crop(Image.fromarray(x)))
        pixels = src.shape[0] * src.shape[1]
        # segmentation agreement on what was coded (A: the crop, B: the native image), before `post`
        ref_map = seg.predict(src) if seg is not None else None
        agree = (lambda x, r=ref_map: miou(seg.predict(x), r)) if seg is not None else (lambda x: None)
        if args.uncompressed:
            tally.add("uncompressed", "original", 24.0, crop, label, clfs)
        if codec is not None:
            for b, a, bpp, dec in code_rdcodec(codec, src, ALPHAS, BETAS):
                tally.add(f"{args.name}-beta{b:g}", a, bpp, post(dec), label, clfs, agree(dec))
        for n in names:
            for q in SETTINGS[n]:
                data, dec = classical.CODECS[n].code(src, q)
                tally.add(n, q, 8 * len(data) / pixels, post(dec), label, clfs, agree(dec))
        if (i + 1) % 20 == 0 or i + 1 == len(samples):
            print(f"[{i + 1}/{len(samples)}] {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

    out = args.out / f"protocol{args.protocol}"
    out.mkdir(parents=True, exist_ok=True)
    for curve in tally.rows:
        res = tally.curve(curve)
        doc = {"name": curve, "protocol": args.protocol, "images": res["images"],
               "description": f"ImageNet sample ({res['images']} images), protocol {args.protocol}",
               "classifiers": CLASSIFIERS, "results": res}
        if SEG_KEY in res:
            doc["segmenter"] = SEGMENTER
        (out / f"{curve}.json").write_text(json.dumps(doc, indent=1))
    print(f"wrote {len(tally.rows)} curves to {out}")


def bd_acc_table(folder: Path, tests: list[str], anchors: list[str], clf: str = HEADLINE,
                 key: str | None = None) -> dict:
    """BD-Acc (top-1 points, mean over the shared log-rate range) of each test curve against each anchor.

    ``key`` names another per-setting quality of the results instead of ``top1-<clf>``
    (e.g. ``miou-deeplabv3`` for BD-mIoU); a curve without it gives an "n/a" entry.
    """
    load = lambda n: json.loads((folder / f"{n}.json").read_text())["results"]  # noqa: E731
    key = key or f"top1-{clf}"
    table = {}
    for t in tests:
        for a in anchors:
            if a == t:
                continue
            try:
                rt, ra = load(t), load(a)
                for name, r in ((t, rt), (a, ra)):
                    if key not in r:
                        raise ValueError(f"{name} has no {key}")
                table[f"{t} vs {a}"] = bd_quality(ra["bpp"], ra[key], rt["bpp"], rt[key])
            except (ValueError, FileNotFoundError) as e:
                table[f"{t} vs {a}"] = f"n/a: {e}"
    return table


def report(folder: Path, ours: str = "rdcodec", mse: str = "rdcodec-mse-v1") -> dict:
    """BD-Acc table (headline classifier, top-1) and the accuracy plot for one protocol folder.

    Where curves carry ``miou-deeplabv3`` (``--segmentation``), also BD-mIoU (mIoU points, same
    integral) of the same pairs under ``bd_miou`` and the plot ``segmentation.png``.
    """
    curves = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.stem != "bd_acc"}
    anchors = [n for n in ("jpeg", "webp", "hevc", f"{ours}-beta0", f"{mse}-beta0", f"{mse}-beta1") if n in curves]
    tests = [n for n in (f"{ours}-beta1", f"{ours}-beta0") if n in curves]
    table = {"classifier": HEADLINE, "metric": "top-1 percentage points, mean over the shared log-bpp range",
             "bd_acc": {clf: bd_acc_table(folder, tests, anchors, clf) for clf in CLASSIFIERS}}
    if "uncompressed" in curves:
        table["uncompressed"] = {k: v[0] for k, v in curves["uncompressed"]["results"].items() if k.startswith("top")}
    segmented = {n: d for n, d in curves.items() if SEG_KEY in d["results"] and n != "uncompressed"}
    if segmented:
        table["segmenter"] = SEGMENTER
        table["miou_metric"] = (f"{SEG_KEY}: mIoU (%) of the segmentation of the decoded image against that of "
                                "the uncompressed input, per image over the classes present in either map, "
                                "mean over images; BD-mIoU in mIoU points over the shared log-bpp range")
        table["bd_miou"] = bd_acc_table(folder, tests, anchors, key=SEG_KEY)
    (folder / "bd_acc.json").write_text(json.dumps(table, indent=1))

    title = f"ImageNet sample, protocol {folder.name[-1]}, {next(iter(curves.values()))['images']} images"
    _plot(curves, f"top1-{HEADLINE}", f"top-1 (%), {HEADLINE}", title, ours, folder / "accuracy.png")
    if segmented:
        _plot(segmented, SEG_KEY, f"mIoU vs. original (%), {SEGMENTER}", title, ours, folder / "segmentation.png")
    return table


def _plot(curves: dict, key: str, ylabel: str, title: str, ours: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, doc in curves.items():
        r = doc["results"]
        if name == "uncompressed":
            ax.axhline(r[key][0], color="k", ls=":", lw=1, label="uncompressed")
            continue
        style = "-o" if name.startswith(ours + "-") else "--s"
        ax.plot(r["bpp"], r[key], style, ms=3, lw=1.2, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        print(json.dumps(report(Path(sys.argv[2])), indent=1))
    else:
        main()

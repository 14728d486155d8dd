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

Every image's outcome (bpp and each classifier's top-5 per curve and setting) is appended to
``--out/protocol<P>/records/<what>.<I>of<N>.jsonl`` as soon as it is measured, so a run that
is stopped resumes where it was, ``--shard I/N`` splits the images over N processes (one per
core), and the curve JSONs are always aggregated from all records in that folder. The records
also give ``report`` paired-bootstrap 95% intervals of every BD-Acc (``bd_acc_ci95``).

    python benchmarks/cognition.py ../shared/data/imagenet_sample --protocol A --uncompressed --shard 0/2 &
    python benchmarks/cognition.py ../shared/data/imagenet_sample --protocol A --uncompressed --shard 1/2
    python benchmarks/cognition.py --report benchmarks/results/imagenet/protocolA
"""

from __future__ import annotations

import argparse
import csv
import gzip
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

from rdcodec.api import get_codec, load_backbone  # noqa: E402
from rdcodec.bitstream import container  # noqa: E402
from rdcodec.errors import RdcError  # noqa: E402
from rdcodec.eval.bjontegaard import bd_quality, bd_quality_interval  # noqa: E402
from rdcodec.eval.metrics import miou  # noqa: E402
from rdcodec.vision.reference import Classifier, Segmenter, preprocess_center_crop  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
CLASSIFIERS = ["mobilenet_v2_1.0_224_quant", "tf2_mobilenet_v2_1.0_224_ptq", "mobilenet_v1_0.75_192_quant"]
HEADLINE = CLASSIFIERS[0]
SEGMENTER = "deeplabv3_mnv2_pascal_quant"
SEG_KEY = "miou-deeplabv3"
ALPHAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
BETAS = [0.0, 0.25, 0.5, 0.75, 1.0]
# Quality sweeps. HEVC-intra, the anchor of issue 5's target, has a point every 5 up to 46
# (four of its seven original points fell inside rdcodec's rate range; session 28 added the odd ones).
SETTINGS = {"jpeg": [5, 10, 20, 35, 50, 75, 90], "webp": [0, 10, 30, 50, 70, 86, 93],
            "hevc": [6, 11, 16, 21, 26, 31, 36, 41, 46, 56, 66]}


def load_samples(folder: Path, limit: int) -> list[tuple[Path, int]]:
    """(file, ImageNet class index) pairs; ``limit`` takes every k-th image so all classes are spread."""
    with open(folder / "labels.csv") as f:
        rows = [(folder / r["file"], int(r["class_index"])) for r in csv.DictReader(f)]
    rows.sort()
    if limit and limit < len(rows):
        rows = rows[:: len(rows) // limit][:limit]
    return rows


def measure_image(path: Path, label: int, protocol: str, clfs: list[Classifier], seg: Segmenter | None,
                  codec, name: str, codecs: list[str], uncompressed: bool, refine: int = 0,
                  settings: dict[str, list] | None = None, predicted: bool = False,
                  alphas: list[float] | None = None, machines=None) -> dict:
    """One image's record: for every (curve, setting) the bpp, each classifier's top-5 and the mIoU.

    ``{"file", "label", "entries": [[curve, setting, bpp, {classifier: top5}, miou or None], ...]}``
    ``settings`` replaces a classical codec's sweep of ``SETTINGS``. ``predicted`` measures, instead of
    rdcodec's alpha x beta grid, its base-only files decoded at beta = 0 with the residual the decoder
    predicts (curve ``<name>-pred-beta0``, rate = the stripped file). ``alphas`` replaces rdcodec's
    grid ``ALPHAS`` (e.g. to add the alphas between the trained levels to a curve measured before).
    ``machines`` (a :class:`~rdcodec.vision.features.FeatureBackbone`) makes the ``refine`` steps
    refine for that vision network (:func:`rdcodec.refine.refine_for_machines`).
    """
    settings = {**SETTINGS, **(settings or {})}
    alphas = ALPHAS if alphas is None else alphas
    with Image.open(path) as img:
        crop = preprocess_center_crop(img)
        src = crop if protocol == "A" else np.asarray(img.convert("RGB"))
    post = (lambda x: x) if protocol == "A" else (lambda x: preprocess_center_crop(Image.fromarray(x)))
    pixels = src.shape[0] * src.shape[1]
    # segmentation agreement on what was coded (A: the crop, B: the native image), before `post`
    ref_map = seg.predict(src) if seg is not None else None
    entries = []

    def add(curve, setting, bpp, decoded, classify_input):
        m = float(miou(seg.predict(decoded), ref_map)) if seg is not None and decoded is not None else None
        entries.append([curve, setting, bpp, {c.name: [int(k) for k in c.top5(classify_input)] for c in clfs}, m])

    if uncompressed:
        add("uncompressed", "original", 24.0, None, crop)
    if codec is not None and predicted:
        for a, bpp, dec in code_predicted(codec, src, alphas):
            add(f"{name}-pred-beta0", a, bpp, dec, post(dec))
    elif codec is not None:
        for b, a, bpp, dec in code_rdcodec(codec, src, alphas, BETAS, refine, machines):
            add(f"{name}-beta{b:g}", a, bpp, dec, post(dec))
    for n in codecs:
        for q in settings[n]:
            data, dec = classical.CODECS[n].code(src, q)
            add(n, q, 8 * len(data) / pixels, dec, post(dec))
    return {"file": path.name, "label": label, "entries": entries}


def read_records(folder: Path) -> dict[str, dict[str, dict]]:
    """All records under ``folder/records/*.jsonl[.gz]`` as {curve: {file: {"label", setting: entry}}}.

    A (curve, image, setting) measured twice (e.g. a resumed shard) keeps its first record, in
    file-name order (``x.jsonl`` of a run in progress before its gzipped ``x.jsonl.gz``, as committed);
    settings of a curve from different runs (``--settings``, points added to a sweep) join.
    """
    curves: dict[str, dict[str, dict]] = {}
    files = sorted([*(folder / "records").glob("*.jsonl"), *(folder / "records").glob("*.jsonl.gz")],
                   key=lambda f: (f.name.removesuffix(".gz"), f.suffix == ".gz"))
    for f in files:
        text = gzip.decompress(f.read_bytes()).decode() if f.suffix == ".gz" else f.read_text()
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by an interrupted run
                continue
            for curve, setting, bpp, top5, m in rec["entries"]:
                image = curves.setdefault(curve, {}).setdefault(rec["file"], {"label": rec["label"]})
                image.setdefault(str(setting), {"setting": setting, "bpp": bpp, "top5": top5, "miou": m})
    return curves


def per_image_matrices(images: dict[str, dict], files: list[str]) -> tuple[list, np.ndarray, dict, np.ndarray | None]:
    """(settings, bpp[S, N], {"top1-<clf>"/"top5-<clf>": hits[S, N] in %}, miou[S, N] in % or None).

    Only the settings every image has, in the order of their mean bpp.
    """
    first = images[files[0]]
    keys = [k for k in first if k != "label" and all(k in images[f] for f in files)]
    keys.sort(key=lambda k: sum(images[f][k]["bpp"] for f in files))
    settings = [first[k]["setting"] for k in keys]
    bpp = np.array([[images[f][k]["bpp"] for f in files] for k in keys])
    quality = {}
    labels = [images[f]["label"] for f in files]
    for clf in first[keys[0]]["top5"]:
        top5 = [[images[f][k]["top5"][clf] for f in files] for k in keys]
        quality[f"top1-{clf}"] = 100.0 * np.array([[t[0] == y for t, y in zip(row, labels)] for row in top5])
        quality[f"top5-{clf}"] = 100.0 * np.array([[y in t for t, y in zip(row, labels)] for row in top5])
    mious = [[images[f][k]["miou"] for f in files] for k in keys]
    seg = 100.0 * np.array(mious, dtype=np.float64) if all(m is not None for row in mious for m in row) else None
    return settings, bpp, quality, seg


def aggregate(folder: Path, protocol: str) -> list[str]:
    """Write one CompressAI-style JSON per curve from the records; returns the curve names."""
    written = []
    for curve, images in read_records(folder).items():
        files = sorted(images)
        settings, bpp, quality, seg = per_image_matrices(images, files)
        res = {"setting": settings, "bpp": bpp.mean(axis=1).tolist(), "images": len(files)}
        res.update({k: v.mean(axis=1).tolist() for k, v in quality.items()})
        if seg is not None and curve != "uncompressed":
            res[SEG_KEY] = seg.mean(axis=1).tolist()
        doc = {"name": curve, "protocol": protocol, "images": len(files),
               "description": f"ImageNet sample ({len(files)} images), protocol {protocol}",
               "classifiers": CLASSIFIERS, "results": res}
        if SEG_KEY in res:
            doc["segmenter"] = SEGMENTER
        (folder / f"{curve}.json").write_text(json.dumps(doc, indent=1))
        written.append(curve)
    return written


def code_rdcodec(codec, crop: np.ndarray, alphas, betas, refine: int = 0, machines=None):
    """Yield (beta, alpha, bpp, decoded uint8 image) for the alpha x beta grid (``refine``: steps
    of encoder-side latent refinement, :mod:`rdcodec.refine`, for the vision network ``machines``
    when given)."""
    an = codec.analyze(crop)
    pixels = crop.shape[0] * crop.shape[1]
    for a in alphas:
        c = codec.compress(an, a, refine=refine, machines=machines)

        base_bytes = container.base_only_size(c.data)
        for b in betas:
            size = len(c.data) if b < 1 else base_bytes
            yield b, a, 8 * size / pixels, c.recon.render(b)


def code_predicted(codec, crop: np.ndarray, alphas):
    """Yield (alpha, bpp, decoded uint8 image) of the base-only file at beta = 0 with the residual the
    decoder predicts from the base layer (``Codec.decompress(predict_residual=True)``)."""
    an = codec.analyze(crop)
    pixels = crop.shape[0] * crop.shape[1]
    for a in alphas:
        data = codec.compress(an, a, residual=False, reconstruct=False).data
        recon, _ = codec.decompress(data, predict_residual=True)
        yield a, 8 * len(data) / pixels, recon.render(0.0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/imagenet"))
    ap.add_argument("--protocol", choices=["A", "B"], default="A")
    ap.add_argument("--limit", type=int, default=0, help="every k-th image, N in all (default: all 1000)")
    ap.add_argument("--shard", default="0/1", metavar="I/N", help="measure only images I, I+N, I+2N, ... "
                    "(run N processes with I = 0..N-1 to use N cores)")
    ap.add_argument("--weights", default=None, help="rdcodec weights (default: the registry's default)")
    ap.add_argument("--name", default="rdcodec", help="curve name for --weights ('' for no rdcodec curve)")
    ap.add_argument("--codecs", default="jpeg,webp,hevc", help="classical codecs ('' for none)")
    ap.add_argument("--settings", action="append", default=[], metavar="CODEC=Q,Q,...",
                    help="code a classical codec at these qualities instead of its sweep, e.g. to add points "
                         "to a curve measured before (each curve, image and setting keeps its first record)")
    ap.add_argument("--alphas", default=None, metavar="A,A,...",
                    help=f"code rdcodec at these alphas instead of {','.join(map(str, ALPHAS))}, e.g. to add "
                         "points between the trained levels to a curve measured before (same --name)")
    ap.add_argument("--predicted-residual", action="store_true",
                    help="measure rdcodec's base-only files at beta = 0 with the residual the decoder predicts "
                         "(curve NAME-pred-beta0) instead of its alpha x beta grid")
    ap.add_argument("--refine", type=int, default=0, metavar="STEPS",
                    help="encode rdcodec with latent refinement of STEPS gradient steps (give it its own --name)")
    ap.add_argument("--machines", default=None, metavar="NETWORK",
                    help="refine rdcodec's latent for this vision network, a shipped one by name "
                         "(mobilenet-v1-embedding) or a TFLite file (--refine steps, by default rdcodec's: "
                         "20 at alpha 0, 10 from 0.2 on; rdcodec.refine.refine_for_machines; give it its own --name)")
    ap.add_argument("--uncompressed", action="store_true", help="also measure the original images")
    ap.add_argument("--segmentation", action="store_true",
                    help=f"also record DeepLabV3 segmentation agreement ({SEG_KEY}, %%) against the original")
    ap.add_argument("--aggregate", action="store_true",
                    help="measure nothing: write the curve JSONs from the records already in --out")
    args = ap.parse_args(argv)
    out = args.out / f"protocol{args.protocol}"
    if args.aggregate:
        print(f"wrote {len(aggregate(out, args.protocol))} curves to {out}")
        return

    try:
        shard, shards = (int(v) for v in args.shard.split("/"))
        assert 0 <= shard < shards
    except (ValueError, AssertionError):
        ap.error(f"--shard must be I/N with 0 <= I < N, not {args.shard!r}")
    if args.predicted_residual and (args.refine or args.machines):
        ap.error("--predicted-residual measures plain base-only files: leave out --refine and --machines")
    machines = None
    if args.machines is not None:
        if not args.name:
            ap.error("--machines refines rdcodec's files: give --name")
        try:
            machines = load_backbone(args.machines)
        except RdcError as exc:
            ap.error(str(exc))
    names = [n for n in args.codecs.split(",") if n]
    settings = {}
    for spec in args.settings:
        n, _, qs = spec.partition("=")
        try:
            settings[n] = [int(q) for q in qs.split(",")]
        except ValueError:
            ap.error(f"--settings must be CODEC=Q,Q,... with integer qualities, not {spec!r}")
        if n not in names:
            ap.error(f"--settings names {n!r}, which --codecs does not run")
    alphas = None
    if args.alphas is not None:
        try:
            alphas = [float(a) for a in args.alphas.split(",")]
        except ValueError:
            ap.error(f"--alphas must be A,A,... with numbers in [0, 1], not {args.alphas!r}")
        if not all(0.0 <= a <= 1.0 for a in alphas):
            ap.error(f"--alphas must lie in [0, 1], not {args.alphas!r}")
        if not args.name:
            ap.error("--alphas sets rdcodec's grid: give --name")
    tags = [n if n not in settings else f"{n}-q{'-'.join(map(str, settings[n]))}" for n in names]
    ours = [args.name + ("-pred" if args.predicted_residual else "")
            + (f"-a{'-'.join(f'{a:g}' for a in alphas)}" if alphas else "")] if args.name else []
    tag = "+".join(ours + tags + (["uncompressed"] if args.uncompressed else []))
    if not tag:
        ap.error("nothing to measure: give --name, --codecs or --uncompressed")
    tag += "+seg" if args.segmentation else ""
    records = out / "records" / f"{tag}.{shard}of{shards}.jsonl"
    records.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if records.exists():  # resume: skip the images this shard already measured
        for line in records.read_text().splitlines():
            try:
                done.add(json.loads(line)["file"])
            except (json.JSONDecodeError, KeyError):
                pass
    samples = load_samples(args.folder, args.limit)[shard::shards]
    todo = [(p, y) for p, y in samples if p.name not in done]
    print(f"{len(samples)} images in this shard, {len(samples) - len(todo)} already in {records}",
          file=sys.stderr)

    clfs = [Classifier(MODELS / f"{n}.tflite") for n in CLASSIFIERS]
    seg = Segmenter(MODELS / f"{SEGMENTER}.tflite") if args.segmentation else None
    codec = get_codec(args.weights) if args.name else None
    t0 = time.time()
    with open(records, "a") as f:
        for i, (path, label) in enumerate(todo):
            rec = measure_image(path, label, args.protocol, clfs, seg, codec, args.name, names, args.uncompressed,
                                args.refine, settings, args.predicted_residual, alphas, machines)
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            f.flush()
            if (i + 1) % 20 == 0 or i + 1 == len(todo):
                print(f"[{i + 1}/{len(todo)}] {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    print(f"wrote {len(aggregate(out, args.protocol))} curves to {out}")


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


def bd_acc_intervals(folder: Path, tests: list[str], anchors: list[str], key: str,
                     records: dict | None = None) -> dict:
    """95% paired-bootstrap intervals of the BD values of ``bd_acc_table``, from the per-image records.

    Only the images both curves measured are used; a pair without records gets "n/a".
    ``records`` (``read_records(folder)``) saves reading them again for every key.
    """
    records = read_records(folder) if records is None else records
    out = {}
    for t in tests:
        for a in anchors:
            if a == t:
                continue
            if t not in records or a not in records:
                out[f"{t} vs {a}"] = "n/a: no per-image records"
                continue
            files = sorted(set(records[t]) & set(records[a]))
            (_, rt, qt, _), (_, ra, qa, _) = (per_image_matrices(records[c], files) for c in (t, a))
            try:
                _, lo, hi = bd_quality_interval(ra, qa[key], rt, qt[key])
                out[f"{t} vs {a}"] = [lo, hi]
            except ValueError as e:
                out[f"{t} vs {a}"] = f"n/a: {e}"
    return out


def report(folder: Path, ours: str = "rdcodec", mse: str = "rdcodec-mse-v1", previous: tuple[str, ...] = ()) -> dict:
    """BD-Acc table (headline classifier, top-1) and the accuracy plot for one protocol folder.

    The table goes to ``bd_acc.json`` and, for a model under test named other than ``rdcodec``,
    also to ``bd_acc-<ours>.json``.

    Where curves carry ``miou-deeplabv3`` (``--segmentation``), also BD-mIoU (mIoU points, same
    integral) of the same pairs under ``bd_miou`` and the plot ``segmentation.png``.
    """
    curves = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))
              if not p.stem.startswith("bd_acc")}  # bd_acc*.json: tables, not curves
    anchors = [n for n in ("jpeg", "webp", "hevc", f"{ours}-beta0", f"{mse}-beta0", f"{mse}-beta1", *previous)
               if n in curves]
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
    if (folder / "records").is_dir():
        table["ci_metric"] = ("95% paired bootstrap interval over images (1000 resamples, "
                              "rdcodec.eval.bjontegaard.bd_quality_interval), [low, high]")
        records = read_records(folder)
        table["bd_acc_ci95"] = {clf: bd_acc_intervals(folder, tests, anchors, f"top1-{clf}", records)
                                for clf in CLASSIFIERS}
    table = {"ours": ours, **table}
    text = json.dumps(table, indent=1)
    (folder / "bd_acc.json").write_text(text)
    if ours != "rdcodec":  # named weights keep their own copy, which the next default's report leaves alone
        (folder / f"bd_acc-{ours}.json").write_text(text)

    # the plots show what the table compares: our curves at every beta, the anchors, the original
    shown = {n: d for n, d in curves.items()
             if n in anchors or n == "uncompressed" or n.startswith(f"{ours}-beta")}
    title = f"ImageNet sample, protocol {folder.name[-1]}, {next(iter(curves.values()))['images']} images"
    _plot(shown, f"top1-{HEADLINE}", f"top-1 (%), {HEADLINE}", title, ours, folder / "accuracy.png")
    if segmented:
        _plot({n: d for n, d in segmented.items() if n in shown}, SEG_KEY, f"mIoU vs. original (%), {SEGMENTER}",
              title, ours, folder / "segmentation.png")
    return table


def _plot(curves: dict, key: str, ylabel: str, title: str, ours: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    for name, doc in curves.items():
        r = doc["results"]
        if name == "uncompressed":
            ax.axhline(r[key][0], color="k", ls=":", lw=1, label="uncompressed")
            continue
        style = "-o" if name.startswith(ours + "-") else "--s"
        ax.plot(r["bpp"], r[key], style, ms=3, lw=1.2, label=name)
    ax.set_xscale("log")
    ax.set_xticks([t for t in (0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        rp = argparse.ArgumentParser(prog="cognition.py --report")
        rp.add_argument("folder", type=Path)
        rp.add_argument("--ours", default="rdcodec", help="curve name of the model under test")
        rp.add_argument("--previous", default="", help="comma list of more anchor curves (e.g. rdcodec-beta1)")
        ra = rp.parse_args(sys.argv[2:])
        print(json.dumps(report(ra.folder, ra.ours, previous=tuple(n for n in ra.previous.split(",") if n)),
                         indent=1))
    else:
        main()

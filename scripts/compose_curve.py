"""Join the points of measured ImageNet curves into one curve, for an encoder setting that reproduces them.

    python scripts/compose_curve.py benchmarks/results/imagenet/protocolA NEW SOURCE:ALPHA,ALPHA ...

Each ``SOURCE:ALPHAS`` takes the records of curve ``SOURCE`` (all its betas, ``SOURCE-beta0`` ...)
at those alphas from ``FOLDER/records``; they are written, renamed ``NEW-beta0`` ..., to
``FOLDER/records/NEW.composed.jsonl.gz``, and ``benchmarks/cognition.py --aggregate`` then makes the
curve JSONs. Use it only where the new setting codes those points byte for byte as the sources did
(check a sample with a short real run first): session 31 composed the refinement for machines'
step schedule (20 steps at alpha 0, 10 from 0.2 on) from session 30's 20-step run at alpha 0 and
its 10-step run at the other alphas, after a 20-image run of the schedule had matched both.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import cognition  # noqa: E402


def compose(folder: Path, name: str, sources: list[tuple[str, list[float]]]) -> Path:
    """Write ``NEW``'s records from the sources' and return the file; every image must have every point."""
    curves = cognition.read_records(folder)
    images: dict[str, dict] = {}
    for source, alphas in sources:
        found = sorted(c for c in curves if c.startswith(f"{source}-beta"))
        if not found:
            raise SystemExit(f"no curve {source}-beta* in {folder}/records")
        for curve in found:
            beta = curve.removeprefix(f"{source}-beta")
            for file, points in curves[curve].items():
                rec = images.setdefault(file, {"file": file, "label": points["label"], "entries": []})
                for alpha in alphas:
                    p = points.get(str(alpha))
                    if p is None:
                        raise SystemExit(f"{curve} has no point at alpha {alpha} for {file}")
                    rec["entries"].append([f"{name}-beta{beta}", p["setting"], p["bpp"], p["top5"], p["miou"]])
    counts = {len(r["entries"]) for r in images.values()}
    if len(counts) != 1:
        raise SystemExit(f"the sources do not cover the same images ({len(images)} images, entries {counts})")
    out = folder / "records" / f"{name}.composed.jsonl.gz"
    text = "".join(json.dumps(images[f], separators=(",", ":")) + "\n" for f in sorted(images))
    out.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="a protocol folder, e.g. benchmarks/results/imagenet/protocolA")
    ap.add_argument("name", help="the new curve's name")
    ap.add_argument("sources", nargs="+", metavar="SOURCE:ALPHA,ALPHA")
    args = ap.parse_args(argv)
    sources = []
    for spec in args.sources:
        source, _, alphas = spec.partition(":")
        try:
            sources.append((source, [float(a) for a in alphas.split(",")]))
        except ValueError:
            ap.error(f"a source is CURVE:ALPHA,ALPHA,..., not {spec!r}")
    print(compose(args.folder, args.name, sources))


if __name__ == "__main__":
    main()

"""BD-Acc of one curve against others on only the images both measured (a partial run).

``benchmarks/cognition.py --report`` compares whole curves; when a run was stopped early
(records of fewer images than the anchors have), that would compare different image sets.
This pairs per image instead: for each anchor, the images both curves measured, the BD-Acc
of their mean curves, and its 95% paired-bootstrap interval.

    python scripts/bd_acc_subset.py benchmarks/results/imagenet/protocolA rdc-v8-beta1 \
        --anchors hevc,jpeg,webp,rdc-v7-beta1 [--images-of CURVE] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

import cognition  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("test", help="curve name, e.g. rdc-v8-beta1")
    ap.add_argument("--anchors", required=True, help="comma list of curve names")
    ap.add_argument("--classifier", default=cognition.HEADLINE)
    ap.add_argument("--images-of", help="restrict further to the images this curve measured "
                    "(e.g. an earlier model's curve on the partial run's images)")
    ap.add_argument("--out", help="also write the table as JSON")
    args = ap.parse_args(argv)
    records = cognition.read_records(Path(args.folder))
    key = f"top1-{args.classifier}"
    table = {}
    for anchor in args.anchors.split(","):
        files = set(records[args.test]) & set(records[anchor])
        if args.images_of:
            files &= set(records[args.images_of])
        files = sorted(files)
        (_, rt, qt, _), (_, ra, qa, _) = (cognition.per_image_matrices(records[c], files)
                                          for c in (args.test, anchor))
        est, lo, hi = cognition.bd_quality_interval(ra, qa[key], rt, qt[key])
        table[f"{args.test} vs {anchor}"] = {"images": len(files), "bd_acc": est, "ci95": [lo, hi]}
        print(f"{args.test} vs {anchor}: {est:+.1f} [{lo:+.1f}, {hi:+.1f}] points on {len(files)} images")
    if args.out:
        Path(args.out).write_text(json.dumps({"classifier": args.classifier, "table": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()

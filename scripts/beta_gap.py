"""Does accuracy fall as beta goes from 1 to 0? Per alpha, from the committed ImageNet records.

For rdcodec curves ``<name>-beta<b>`` (``benchmarks/cognition.py``), prints and writes, per alpha,
the top-1 of each beta and the paired gap beta = 1 minus beta = 0 of the same files with a 95%
bootstrap interval over images (1000 resamples, fixed seed)::

    python scripts/beta_gap.py rdc-v28 [--classifier mobilenet_v2_1.0_224_quant]

Writes ``benchmarks/results/imagenet/protocolA/beta_gap/<name>.json`` (a folder of its own: the
report reads every JSON at the top of ``protocolA`` as a curve).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from cognition import BETAS, HEADLINE, per_image_matrices, read_records  # noqa: E402

RESAMPLES = 1000


def paired_interval(diff: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the mean of per-image differences ``diff`` (N,)."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (RESAMPLES, len(diff)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def beta_table(records: dict, name: str, clf: str = HEADLINE) -> dict:
    """{"alphas", "top1": {beta: [per alpha]}, "bpp_beta1", "gap": [[mean, lo, hi] per alpha]}."""
    curves = {b: records[f"{name}-beta{b:g}"] for b in BETAS if f"{name}-beta{b:g}" in records}
    if 1.0 not in curves or 0.0 not in curves:
        raise SystemExit(f"no records of {name}-beta1 and {name}-beta0")
    files = sorted(set.intersection(*(set(c) for c in curves.values())))
    mats = {b: per_image_matrices(c, files) for b, c in curves.items()}
    alphas = mats[1.0][0]
    key = f"top1-{clf}"
    out = {"name": name, "classifier": clf, "images": len(files), "alphas": alphas,
           "bpp_beta1": [float(v) for v in mats[1.0][1].mean(1)],
           "top1": {f"{b:g}": [float(v) for v in mats[b][2][key].mean(1)] for b in sorted(mats)}, "gap": []}
    for i, a in enumerate(alphas):
        j = mats[0.0][0].index(a)
        diff = mats[1.0][2][key][i] - mats[0.0][2][key][j]
        out["gap"].append([float(diff.mean()), *paired_interval(diff)])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="rdcodec curve name (without -beta<b>)")
    ap.add_argument("--folder", type=Path, default=ROOT / "benchmarks/results/imagenet/protocolA")
    ap.add_argument("--classifier", default=HEADLINE)
    args = ap.parse_args(argv)
    table = beta_table(read_records(args.folder), args.name, args.classifier)
    (args.folder / "beta_gap").mkdir(exist_ok=True)
    (args.folder / "beta_gap" / f"{args.name}.json").write_text(json.dumps(table, indent=1) + "\n")
    print(f"{args.name}, {table['images']} images, {args.classifier} top-1 (%)")
    print("alpha  bpp(b=1)  " + "  ".join(f"b={b:>4}" for b in table["top1"]) + "   beta1-beta0 [95%]")
    for i, a in enumerate(table["alphas"]):
        accs = "  ".join(f"{table['top1'][b][i]:6.1f}" for b in table["top1"])
        m, lo, hi = table["gap"][i]
        print(f"{a:5g}  {table['bpp_beta1'][i]:8.3f}  {accs}   {m:+.1f} [{lo:+.1f}, {hi:+.1f}]")


if __name__ == "__main__":
    main()

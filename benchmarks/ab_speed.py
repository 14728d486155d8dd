"""Encode and decode time of several weights in one process, alternating (an A/B timing).

``speed.py`` times each weights in its own run against CompressAI; runs an hour apart differ by
a few percent on a shared machine. This script times the weights given against each other
under the same conditions: every repetition codes the image once with each, in turn.

    python benchmarks/ab_speed.py rdc-v8 rdc-v9      # -> benchmarks/results/speed/ab-rdc-v8-rdc-v9.json

A weights name may end in ``:float32`` or ``:bfloat16`` to fix the precision of the transforms
(``docs/model.md``; by default it follows the CPU), so one run times the two forms:

    python benchmarks/ab_speed.py rdc-v11:float32 rdc-v11:bfloat16 --threads 2

``--beta B`` adds rendering at that beta to the decode time (a machine head, ``docs/model.md``,
runs only when a beta above 0 is rendered):

    python benchmarks/ab_speed.py rdc-v22 rdc-v28 --threads 2 --beta 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdcodec.api import get_codec  # noqa: E402
from rdcodec.image import load_rgb8  # noqa: E402

#: The transforms' precision a ``:suffix`` asks for (None: the CPU-based default).
FORMS = {"": None, "float32": False, "bfloat16": True}


def _split(spec: str) -> tuple[str, str]:
    """``"rdc-v11:float32"`` -> ``("rdc-v11", "float32")``; no known suffix -> ``(spec, "")``."""
    name, _, form = spec.rpartition(":")
    return (name, form) if name and form in FORMS else (spec, "")


def _codec(spec: str):
    name, form = _split(spec)
    return get_codec(name, bf16=FORMS[form])


def _label(spec: str, codec) -> str:
    form = _split(spec)[1]
    return codec.weights_name + (f":{form}" if form else "")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="+", help="names or files of the weights to compare")
    ap.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "kodim23.png")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--reps", type=int, default=7, help="repetitions (the median is reported)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speed")
    ap.add_argument("--beta", type=float, default=None,
                    help="also render at this beta within the decode time (default: decompress only)")
    args = ap.parse_args(argv)
    if not args.image.is_file():
        raise SystemExit(f"no such image: {args.image}")
    torch.set_num_threads(args.threads)
    image = load_rgb8(str(args.image))
    codecs = {w: _codec(w) for w in args.weights}
    labels = {w: _label(w, c) for w, c in codecs.items()}
    data = {w: c.compress(image, args.alpha, reconstruct=False).data for w, c in codecs.items()}
    for w, c in codecs.items():  # warm-up
        c.decompress(data[w])
    enc: dict[str, list[float]] = {w: [] for w in codecs}
    dec: dict[str, list[float]] = {w: [] for w in codecs}
    for _ in range(args.reps):
        for w, c in codecs.items():
            t = time.perf_counter()
            c.compress(image, args.alpha, reconstruct=False)
            enc[w].append(time.perf_counter() - t)
            t = time.perf_counter()
            recon, _ = c.decompress(data[w])
            if args.beta is not None:
                recon.render(args.beta)
            dec[w].append(time.perf_counter() - t)
    doc = {"image": str(args.image), "alpha": args.alpha, "threads": args.threads, "reps": args.reps,
           "render_beta": args.beta,
           "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "weights": {labels[w]: {"bytes": len(data[w]), "encode_median_s": float(np.median(enc[w])),
                                   "decode_median_s": float(np.median(dec[w])),
                                   "encode_runs_s": enc[w], "decode_runs_s": dec[w]}
                       for w in codecs}}
    args.out.mkdir(parents=True, exist_ok=True)
    threads = f"-{args.threads}t" if args.threads != 1 else ""
    beta = f"-beta{args.beta:g}" if args.beta is not None else ""
    path = args.out / ("ab-" + "-".join(labels[w].replace(":", "-") for w in codecs) + threads + beta + ".json")
    path.write_text(json.dumps(doc, indent=1) + "\n")
    for name, r in doc["weights"].items():
        print(f"{name:12s} {r['bytes']:7d} B  encode {r['encode_median_s']:.3f} s  decode {r['decode_median_s']:.3f} s")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

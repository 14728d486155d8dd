"""What the bfloat16 transforms cost in rate and quality: every file coded and decoded both ways.

``rdcodec.model.fastpath`` runs the inner layers of ``g_a`` (encoder), ``g_s`` and the residual
reconstruction (decoder) in bfloat16 on CPUs that have it natively. This benchmark encodes
each image at each alpha with a float32 and a bfloat16 encoder, decodes every file with a
float32 and a bfloat16 decoder, and reports mean bpp and PSNR (beta = 0 and 1) for the four
pairs, so the analysis and the synthesis are measured separately:

    python benchmarks/precision.py ../shared/data/kodak --every 3 --weights rdc-v12
    # -> benchmarks/results/speed/precision-rdc-v12.json

Rows are ``encoder/decoder``; ``float32/float32`` is the reference, ``bfloat16/float32`` moves
only the analysis (a few latents round the other way), ``float32/bfloat16`` only the synthesis.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdcodec.api import get_codec  # noqa: E402
from rdcodec.errors import RdcError  # noqa: E402
from rdcodec.eval.evaluate import list_images  # noqa: E402
from rdcodec.eval.metrics import psnr  # noqa: E402
from rdcodec.image import load_rgb8  # noqa: E402

FORMS = {"float32": False, "bfloat16": True}


def measure(images: list[np.ndarray], alphas: list[float], weights: str | None) -> dict:
    codecs = {form: get_codec(weights, bf16=flag) for form, flag in FORMS.items()}
    sums = {f"{e}/{d}": {"bpp": [], "psnr_beta0": [], "psnr_beta1": []} for e in FORMS for d in FORMS}
    differ = []  # whether the two encoders made different files
    for alpha in alphas:
        for img in images:
            pixels = img.shape[0] * img.shape[1]
            files = {e: codecs[e].compress(img, alpha, reconstruct=False).data for e in FORMS}
            differ.append(files["float32"] != files["bfloat16"])
            for e, data in files.items():
                for d, codec in codecs.items():
                    recon, _ = codec.decompress(data)
                    row = sums[f"{e}/{d}"]
                    row["bpp"].append(8 * len(data) / pixels)
                    row["psnr_beta0"].append(psnr(img, recon.render(0.0)))
                    row["psnr_beta1"].append(psnr(img, recon.render(1.0)))
    per_alpha = len(images)
    out = {}
    for pair, row in sums.items():
        out[pair] = {k: [float(np.mean(v[i * per_alpha:(i + 1) * per_alpha])) for i in range(len(alphas))]
                     for k, v in row.items()}
    ref = dict(out["float32/float32"])
    for row in out.values():
        row["delta_vs_float32"] = {k: [round(a - b, 5) for a, b in zip(row[k], ref[k])] for k in ref}
    return {"pairs": out, "files_that_differ": float(np.mean(differ))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--every", type=int, default=3, help="take every n-th image (sorted by name)")
    ap.add_argument("--alphas", default="0,0.5,1")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        paths = list_images(args.folder)[::args.every]
    except RdcError as e:
        raise SystemExit(str(e)) from None
    alphas = [float(a) for a in args.alphas.split(",")]
    name = get_codec(args.weights).weights_name
    doc = {"weights": name, "images": [p.name for p in paths], "alphas": alphas,
           **measure([load_rgb8(p) for p in paths], alphas, args.weights)}
    out = args.out or ROOT / "benchmarks" / "results" / "speed" / f"precision-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    for pair, row in doc["pairs"].items():
        d = row["delta_vs_float32"]
        print(f"{pair:<20} bpp {d['bpp']}  dB beta0 {d['psnr_beta0']}  beta1 {d['psnr_beta1']}")
    print(f"files that differ between the encoders: {doc['files_that_differ']:.0%}  -> {out}")


if __name__ == "__main__":
    main()

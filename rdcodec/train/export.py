"""Export a training checkpoint as shipped weights and register it.

    python -m rdcodec.train.export runs/res1/last.pt --name rdc-mse-v1 [--default]
    python -m rdcodec.train.export runs/enc22/last.pt --name rdc-v22 --decoder rdc-v19

Writes ``weights/NAME.safetensors`` and records its SHA-256 in ``weights/registry.json``. With
``--decoder`` (a stage ``encoder`` checkpoint) it writes encoder weights: only ``g_a`` and ``h_a``,
for the registered full weights named there, whose decoder every other tensor must equal
(``rdcodec.weights.export_encoder``); the registry entry records the decoder.
The model card (``weights/NAME.md``) is written by hand from measured results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..fileio import write_atomic
from ..weights import export, export_encoder, resolve
from .loop import load_checkpoint

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rdcodec.train.export", description=__doc__)
    ap.add_argument("checkpoint")
    ap.add_argument("--name", required=True)
    ap.add_argument("--default", action="store_true", help="make it the default weights")
    ap.add_argument("--out-dir", default=str(WEIGHTS))
    ap.add_argument("--decoder", help="write encoder weights (g_a, h_a only) for these full weights")
    args = ap.parse_args(argv)
    # the model as trained (a stage II run may set --residual-lambda-factor, --rrn-blocks)
    model, state, skipped = load_checkpoint(args.checkpoint)
    if skipped:
        print(f"warning: {len(skipped)} tensors not in the checkpoint keep their initial values, "
              f"e.g. {skipped[:3]}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{args.name}.safetensors"
    meta = {"name": args.name, "step": str(state.get("step", 0)), "stage": str(state.get("stage", ""))}
    if args.decoder:
        digest = export_encoder(model, path, args.decoder, meta)
    else:
        digest = export(model, path, meta)
    register(path, digest, args.name, args.default, resolve(args.decoder).name if args.decoder else None)


def register(path: Path, digest: str, name: str, default: bool = False, decoder: str | None = None) -> None:
    """Record weights written to ``path`` (SHA-256 ``digest``) as ``name`` in the ``registry.json``
    beside them (made the default with ``default``, or when they are the first); ``decoder``: the
    full weights that encoder weights belong to."""
    reg_path = path.parent / "registry.json"
    reg = json.loads(reg_path.read_text()) if reg_path.exists() else {"default": name, "weights": {}}
    reg["weights"][name] = {"file": path.name, "sha256": digest}
    if decoder:
        reg["weights"][name]["decoder"] = decoder
    if default or len(reg["weights"]) == 1:
        reg["default"] = name
    text = (json.dumps(reg, indent=2) + "\n").encode()
    write_atomic(str(reg_path), lambda f: f.write(text), force=True)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB) sha256={digest}")


if __name__ == "__main__":
    main()

"""A cache of analysis latents ``y = g_a(x)`` for training entropy models on a frozen base.

Stage ``context`` trains only the checkerboard context model (:mod:`rdcodec.model.context`):
``g_a`` is frozen, so ``y`` of every training crop is computed once (float32, as at coding
time) and stored as float16, ``(n, M, size/16, size/16)``: 96 KiB a 256² crop. A step then
costs only the small hyper path and the context network, not the analysis transform.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch

from ..model.rdc import RDCModel


@torch.no_grad()
def build_latent_cache(model: RDCModel, crops: torch.Tensor, batch: int = 16,
                       progress: bool = True) -> torch.Tensor:
    """``g_a`` of every uint8 crop (n, 3, S, S) -> float16 (n, M, S/16, S/16)."""
    g_a = model.g_a.eval()
    n, size = len(crops), crops.shape[-1]
    out = torch.empty((n, model.config.M, size // 16, size // 16), dtype=torch.float16)
    t0 = time.time()
    for i in range(0, n, batch):
        x = crops[i:i + batch].float().div_(255.0).contiguous(memory_format=torch.channels_last)
        out[i:i + batch] = g_a(x).half()
        if progress and (i // batch) % 50 == 0:
            print(f"latents {i + len(x)}/{n} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    return out


def g_a_fingerprint(model: RDCModel) -> str:
    """SHA-256 (16 hex digits) of ``g_a``'s tensors: which analysis transform a cache belongs to."""
    h = hashlib.sha256()
    for name, t in model.g_a.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_or_build_latents(path: Path, model: RDCModel, crops: torch.Tensor) -> torch.Tensor:
    """The cache at ``path`` if it was made by this ``g_a``, else build and save it (atomically).

    The cache stores the fingerprint of the transform that made it, so a file named after a
    checkpoint (``latents-last.pt``) or left over from other weights is rebuilt, not reused.
    """
    fp = g_a_fingerprint(model)
    if path.exists():
        cached = torch.load(path)
        if isinstance(cached, dict) and cached.get("g_a") == fp and len(cached["latents"]) == len(crops):
            return cached["latents"]
        print(f"{path} was made by another analysis transform or crop cache: rebuilding it",
              file=sys.stderr, flush=True)
    lat = build_latent_cache(model, crops)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"g_a": fp, "latents": lat}, tmp)
    tmp.replace(path)
    return lat

"""Fixed tables that make encoder and decoder agree on every probability model.

The hyper-synthesis ``h_s`` predicts a mean and a scale for every element of the gained
latent. Floating point can differ in the last bits between machines, thread counts and
devices, and a range decoder fed a model that differs by one bit decodes garbage. So the
predictions are snapped before use, in float64:

* scales -> index into :data:`SCALE_TABLE` (``SCALE_LEVELS`` log-spaced values from
  ``SCALE_MIN`` to ``SCALE_MAX``); the coder only ever sees table values;
* means -> the grid ``k / MEAN_GRID``, so the dequantized latent ``symbol + mean`` is exact.

A prediction would have to fall within ~1e-15 (relative) of a table boundary for two
machines to disagree.
"""

from __future__ import annotations

import numpy as np
import torch

SCALE_MIN = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 256
SCALE_TABLE: np.ndarray = np.exp(
    np.linspace(np.log(SCALE_MIN), np.log(SCALE_MAX), SCALE_LEVELS)
).astype(np.float32)
_LOG_STEP = (np.log(SCALE_MAX) - np.log(SCALE_MIN)) / (SCALE_LEVELS - 1)

MEAN_GRID = 256

#: Symbols of the Gaussian-coded latents (y and s) are clamped to [-Y_RANGE, Y_RANGE].
Y_RANGE = 1023
#: Symbols of the factorized hyper-latent z are clamped to [-Z_RANGE, Z_RANGE].
Z_RANGE = 63


def scale_indices(scales: torch.Tensor) -> np.ndarray:
    """Nearest table entry (in log domain) for each predicted scale -> int32 array."""
    s = scales.detach().to("cpu", torch.float64).clamp(SCALE_MIN, SCALE_MAX)
    idx = torch.round((s.log() - np.log(SCALE_MIN)) / _LOG_STEP)
    return idx.to(torch.int32).numpy()


def snap_means(means: torch.Tensor) -> torch.Tensor:
    """Means on the 1/MEAN_GRID grid, float32 (exactly representable for |mean| < 2^15)."""
    m = means.detach().to("cpu", torch.float64)
    return (torch.round(m * MEAN_GRID) / MEAN_GRID).to(torch.float32)

"""The Wiener output filter: a per-image linear filter that the encoder fits and signals.

Not in the paper. The distortion-oriented image ``x_0 = x_hat_1 + r`` (Eq. 9 at beta = 0)
still has errors that are linear in its own pixels and that differ from image to image (on
Kodak, a filter fitted per image gains 3-4x what one filter fitted over many images does,
``docs/model.md``). As in the adaptive loop filters of video codecs, the encoder solves the
least-squares (Wiener) problem for the filter that takes ``x_0`` closest to the original,
quantizes its coefficients and writes them at the start of the residual layer; the decoder
applies it. Eq. 9 is kept by filtering the residual: ``r' = W(x_0) - x_hat_1``, so
``x_bar = x_hat_1 + (1 - beta) r'`` is the filtered image at beta = 0 and ``x_hat_1`` at beta = 1,
and a file whose residual layer is cut off loses the filter with it.

The filter, per colour channel ``c`` and output pixel ``n`` (values in 8-bit levels, 0..255)::

    W(x)_c[n] = x_c[n] + sum_{o in D_rho} w_{c,o} (x_c[n + o] - x_c[n])
                       + sum_{c'} u_{c,c'} (x_{c'}[n] - 128) + b_c

``D_rho`` is the diamond ``0 < |dy| + |dx| <= rho`` (rho = 2..5: 12, 24, 40 or 60 taps); the
image border is extended by replication. Writing the taps on differences keeps the filter's
DC gain exact whatever the quantization. With ``phases = 4`` each of the four positions
``(y mod 2, x mod 2)`` has its own coefficients: the synthesis ends in stride-2 transposed
convolutions, whose errors differ by phase.

Coefficients are integers: ``w = q / 2**9``, ``u = q / 2**11``, ``b = q / 2**4``, each in
``[-Y_RANGE, Y_RANGE]``. Serialized (:meth:`OutputFilter.to_bytes`)::

    byte 0              rho | 0x80 if phases == 4
    next 3 * 3 * phases one scale index per (phase, channel, group), groups taps / cross / bias
    rest                the coefficients, range-coded (constriction) as zero-mean quantized
                        Gaussians with those scales, in (phase, channel, taps..., cross..., bias) order

The encoder (:func:`choose`) tries every shape, keeps the one whose squared-error reduction
pays most for its bits at the image's own rate-distortion slope, and none when none pays.

Example (tested in ``tests/test_wiener.py``)::

    >>> import numpy as np
    >>> f = OutputFilter(2, 1, np.zeros((1, 3, 16), dtype=np.int32))
    >>> OutputFilter.from_bytes(f.to_bytes()) == f
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .bitstream import container
from .entropy import coder
from .entropy.tables import SCALE_TABLE, Y_RANGE
from .errors import CorruptError

RADII = (2, 3, 4, 5)
PHASES = (1, 4)
TAP_SHIFT, CROSS_SHIFT, BIAS_SHIFT = 9, 11, 4
#: Slope of the codec's rate-distortion curve, dB of PSNR per unit of ln(bits): the exchange
#: rate between the filter's squared-error reduction and its bits (Kodak, beta = 0: 2.6-3.0).
RD_SLOPE_DB = 2.8
_BAND_PIXELS = 1 << 17  # pixels per band when accumulating normal equations (~64 MB of features)
_MAX_FIT_PIXELS = 1 << 22  # larger images are fitted on evenly spaced bands of this many pixels


def diamond(radius: int) -> list[tuple[int, int]]:
    """Offsets ``(dy, dx)`` with ``0 < |dy| + |dx| <= radius``, nearest first, so that every
    smaller diamond is a prefix of a larger one."""
    offs = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if 0 < abs(dy) + abs(dx) <= radius]
    return sorted(offs, key=lambda o: (abs(o[0]) + abs(o[1]), o))


def _groups(taps: int) -> list[slice]:
    """The coefficient groups of one (phase, channel), each with its own coded scale: taps, cross, bias."""
    return [slice(0, taps), slice(taps, taps + 3), slice(taps + 3, taps + 4)]


def _steps(taps: int) -> np.ndarray:
    """Quantization step of each coefficient of one (phase, channel): taps, 3 cross, bias."""
    return np.array([2.0 ** -TAP_SHIFT] * taps + [2.0 ** -CROSS_SHIFT] * 3 + [2.0 ** -BIAS_SHIFT])


@dataclass(frozen=True, eq=False)
class OutputFilter:
    """One image's filter: ``coef`` is int32 ``(phases, 3, taps + 4)`` (taps, cross, bias)."""

    radius: int
    phases: int
    coef: np.ndarray

    def __post_init__(self) -> None:
        if self.radius not in RADII or self.phases not in PHASES:
            raise ValueError(f"no filter shape radius {self.radius}, {self.phases} phases")
        if self.coef.shape != (self.phases, 3, len(diamond(self.radius)) + 4):
            raise ValueError(f"coefficients of shape {self.coef.shape} do not fit the filter shape")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, OutputFilter) and (self.radius, self.phases) == (other.radius, other.phases)
                and np.array_equal(self.coef, other.coef))

    __hash__ = None  # mutable array inside

    # -- bytes ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        groups = _groups(self.coef.shape[-1] - 4)
        idx = np.empty(self.coef.shape, dtype=np.int32)
        head = bytearray([self.radius | (0x80 if self.phases == 4 else 0)])
        for k in range(self.phases):
            for c in range(3):
                for g in groups:
                    q = self.coef[k, c, g].astype(np.float64)
                    rms = math.sqrt(float(np.mean(q * q))) if q.size else 0.0
                    i = int(np.argmin(np.abs(np.log(SCALE_TABLE) - math.log(max(rms, SCALE_TABLE[0])))))
                    idx[k, c, g] = i
                    head.append(i)
        return bytes(head) + coder.encode_gaussian(self.coef.astype(np.int32), idx)

    @classmethod
    def from_bytes(cls, data: bytes) -> OutputFilter:
        if not data:
            raise CorruptError("output filter is empty")
        radius, phases = data[0] & 0x7F, 4 if data[0] & 0x80 else 1
        if radius not in RADII:
            raise CorruptError(f"output filter radius {radius} is not one of {RADII}")
        taps = len(diamond(radius))
        n_idx = 9 * phases
        if len(data) < 1 + n_idx:
            raise CorruptError("output filter is truncated")
        idx = np.empty((phases, 3, taps + 4), dtype=np.int32)
        head = iter(data[1:1 + n_idx])
        for k in range(phases):
            for c in range(3):
                for g in _groups(taps):
                    idx[k, c, g] = next(head)
        coef = coder.decode_gaussian(data[1 + n_idx:], idx)
        return cls(radius, phases, coef)

    # -- decoder ----------------------------------------------------------------------------
    def apply(self, x: torch.Tensor, band_rows: int = 512) -> torch.Tensor:
        """``W(x)`` of a (1, 3, H, W) float32 image in [0, 1] units (unclamped), same shape.

        Runs in float32 in bands of ``band_rows`` rows (bounded memory on large images); the
        taps are one depthwise convolution per phase, the cross terms a 3x3 matrix product.
        """
        rho, taps = self.radius, self.coef.shape[-1] - 4
        steps = _steps(taps)
        kernels, mix, const = [], [], []
        for k in range(self.phases):
            c = self.coef[k].astype(np.float64) * steps  # (3, taps + 4)
            ker = np.zeros((3, 1, 2 * rho + 1, 2 * rho + 1))
            for t, (dy, dx) in enumerate(diamond(rho)):
                ker[:, 0, rho + dy, rho + dx] = c[:, t]
            ker[:, 0, rho, rho] = 1.0 - c[:, :taps].sum(1)
            kernels.append(torch.tensor(ker, dtype=torch.float32, device=x.device))
            mix.append(torch.tensor(c[:, taps:taps + 3], dtype=torch.float32, device=x.device))  # u_{c,c'}
            const.append(torch.tensor((c[:, taps + 3] - 128.0 * c[:, taps:taps + 3].sum(1)) / 255.0,
                                      dtype=torch.float32, device=x.device))
        h, w = x.shape[-2:]
        out = torch.empty_like(x)
        for top in range(0, h, band_rows):  # band_rows is even, so phases line up with the image
            bottom = min(top + band_rows, h)
            lo, hi = max(top - rho, 0), min(bottom + rho, h)
            xp = F.pad(x[..., lo:hi, :], (rho, rho, rho - (top - lo), rho - (hi - bottom)), mode="replicate")
            band = x[..., top:bottom, :]
            for k in range(self.phases):
                py, px = (k // 2, k % 2) if self.phases == 4 else (0, 0)
                s = 2 if self.phases == 4 else 1
                rows, cols = -(-(bottom - top - py) // s), -(-(w - px) // s)
                if rows <= 0 or cols <= 0:
                    continue  # a band of one row, or an image one pixel wide, has no pixel of this phase
                y = F.conv2d(xp[..., py:, px:], kernels[k], stride=s, groups=3)[..., :rows, :cols]
                xc = band[..., py::s, px::s]
                y = y + torch.einsum("ij,bjhw->bihw", mix[k], xc) + const[k].view(1, 3, 1, 1)
                out[..., top + py:bottom:s, px::s] = y
        return out

    @classmethod
    def split_layer(cls, layer: bytes) -> tuple[OutputFilter, bytes]:
        """A version-2 residual layer -> (its filter, the s string); ``CorruptError`` if malformed."""
        flt, s = container.split_strings(layer, "residual layer", "output filter")
        return cls.from_bytes(flt), s

    @property
    def nbytes(self) -> int:
        return len(self.to_bytes())


# -- encoder ----------------------------------------------------------------------------------

def normal_equations(x0: torch.Tensor, target: np.ndarray, rho: int = max(RADII)):
    """Least-squares statistics of the filter on ``x0`` (1, 3, H, W, [0, 1] units) against the
    (H, W, 3) uint8 ``target``, for the largest diamond ``rho`` and each of the 4 phases:
    ``A`` (4, 3, n, n) = sum f f^T, ``B`` (4, 3, n) = sum f e, ``E`` (4, 3) = sum e^2 with
    ``e = target - x0`` and ``f`` a pixel's n = taps + 4 features (taps, cross, 1), float64.

    Features and each band's products are float32 (a band holds at most 2^17 pixels, a
    phase a quarter of them), summed over bands in float64. Images over 4 MP contribute
    evenly spaced bands only."""
    v = x0[0].detach().to("cpu", torch.float32) * 255.0
    t = torch.tensor(target).permute(2, 0, 1).float()
    h, w = v.shape[1:]
    offs = diamond(rho)
    n = len(offs) + 4
    A, B, E = np.zeros((4, 3, n, n)), np.zeros((4, 3, n)), np.zeros((4, 3))
    band = max(2, (_BAND_PIXELS // max(w, 1)) & ~1)  # even, so every band starts on phase row 0
    starts = list(range(0, h, band))
    if h * w > _MAX_FIT_PIXELS:
        keep = max(1, _MAX_FIT_PIXELS // (band * w))
        starts = [starts[i * len(starts) // keep] for i in range(keep)]
    for top in starts:
        bottom = min(top + band, h)
        lo, hi = max(top - rho, 0), min(bottom + rho, h)
        vp = F.pad(v[None, :, lo:hi], (rho, rho, rho - (top - lo), rho - (hi - bottom)), mode="replicate")[0]
        planes = [[vp[:, a::2, b::2].contiguous() for b in range(2)] for a in range(2)]  # polyphase
        for k in range(4):
            py, px = k // 2, k % 2
            centre = v[:, top + py:bottom:2, px::2].contiguous()  # (3, rows, cols) of this phase
            rows, cols = centre.shape[1:]
            if rows == 0 or cols == 0:
                continue
            m = rows * cols
            err = (t[:, top + py:bottom:2, px::2] - centre).reshape(3, m)
            f = torch.empty(n, m)
            f[-4:-1], f[-1] = (centre - 128.0).reshape(3, m), 1.0
            for c in range(3):
                for i, (dy, dx) in enumerate(offs):  # vp[c, ry::2, rx::2] of this phase, read contiguously
                    ry, rx = rho + py + dy, rho + px + dx
                    torch.sub(planes[ry % 2][rx % 2][c, ry // 2:ry // 2 + rows, rx // 2:rx // 2 + cols],
                              centre[c], out=f[i].view(rows, cols))
                A[k, c] += (f @ f.T).double().numpy()
                B[k, c] += (f @ err[c]).double().numpy()
                E[k, c] += float(err[c].double() @ err[c].double())
    return A, B, E


def _solve(A: np.ndarray, B: np.ndarray, E: float, taps: int) -> tuple[np.ndarray, float] | None:
    """Quantized coefficients for a (taps + 4)-feature sub-problem and its squared error, or None
    when a coefficient does not fit the coded range."""
    idx = list(range(taps)) + [A.shape[0] - 4 + i for i in range(4)]
    a, b = A[np.ix_(idx, idx)], B[idx]
    ridge = 1e-6 * np.trace(a) / len(idx) + 1e-9
    try:
        wt = np.linalg.solve(a + ridge * np.eye(len(idx)), b)
    except np.linalg.LinAlgError:
        return None
    steps = _steps(taps)
    q = np.round(wt / steps)
    if np.abs(q).max() > Y_RANGE:
        return None
    wq = q * steps
    return q.astype(np.int32), float(E - 2 * wq @ b + wq @ a @ wq)


def fit(stats, radius: int, phases: int) -> tuple[OutputFilter, float] | None:
    """The quantized filter of one shape from :func:`normal_equations` statistics, with the
    squared error it leaves (8-bit units, unrounded output); None if it cannot be coded."""
    A, B, E = stats
    taps = len(diamond(radius))
    coef = np.zeros((phases, 3, taps + 4), dtype=np.int32)
    sse = 0.0
    for k in range(phases):
        for c in range(3):
            if phases == 1:
                got = _solve(A[:, c].sum(0), B[:, c].sum(0), E[:, c].sum(), taps)
            else:
                got = _solve(A[k, c], B[k, c], E[k, c], taps)
            if got is None:
                return None
            coef[k, c], s = got
            sse += s
    return OutputFilter(radius, phases, coef), sse


def choose(x0: torch.Tensor, target: np.ndarray, file_bits: int,
           slope_db: float = RD_SLOPE_DB) -> OutputFilter | None:
    """The filter shape that pays most, or None when no filter pays for its bits.

    A filter costing ``R_f`` bits is worth ``lambda R_f`` of squared error, where ``lambda`` is
    the squared error a bit buys at the codec's own slope: ``d SSE / d R = (slope ln 10 / 10)
    SSE / R`` for a file of ``R`` bits (``file_bits``) leaving ``SSE`` (from ``PSNR = 10 log10
    (255^2 N / SSE)`` and ``d PSNR / d ln R = slope``).
    """
    stats = normal_equations(x0, target)
    sse0 = float(stats[2].sum())
    if sse0 <= 0 or file_bits <= 0:
        return None
    # On a sample (images over 4 MP) sse0 and the gains are the sample's: both scale alike, so the
    # comparison below is the whole image's up to a positive factor.
    lam = slope_db * math.log(10) / 10 * sse0 / file_bits
    best, best_gain = None, 0.0
    for phases in PHASES:
        for radius in RADII:
            got = fit(stats, radius, phases)
            if got is None:
                continue
            flt, sse = got
            gain = (sse0 - sse) - lam * 8 * (flt.nbytes + 1)  # +1: the length varint
            if gain > best_gain:
                best, best_gain = flt, gain
    return best

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

    W(x)_c[n] = x_c[n] + sum_{o in D_rho} w_{g,c,o} (x_c[n + o] - x_c[n])
                       + sum_{c'} u_{g,c,c'} (x_{c'}[n] - 128) + b_{g,c}

``D_rho`` is the diamond ``0 < |dy| + |dx| <= rho`` (rho = 2..5: 12, 24, 40 or 60 taps); the
image border is extended by replication. Writing the taps on differences keeps the filter's
DC gain exact whatever the quantization. The coefficient set ``g`` depends on the pixel:

- its **phase** ``(y mod 2, x mod 2)`` when the filter has 4 phases (the synthesis ends in
  stride-2 transposed convolutions, whose errors differ by phase);
- its **direction class** (:func:`classify`, 5 classes: no dominant direction, horizontal,
  vertical and the two diagonal second differences dominant) mapped through the filter's
  ``merge`` table to one of its coefficient groups, as the classes of the adaptive loop
  filter in VVC. Edges need different filters than flat or textured areas; merging lets
  small files pay for fewer filters.

``shared`` filters use one set of taps for the three channels (cross and bias terms stay per
channel): a third of the taps' bytes, which pays on small files.

Coefficients are integers: ``w = q / 2**9``, ``u = q / 2**11``, ``b = q / 2**4``, each in
``[-Y_RANGE, Y_RANGE]``. Serialized (:meth:`OutputFilter.to_bytes`)::

    byte 0          rho | 0x80 if 4 phases | 0x40 if shared taps | 0x20 if classes are merged
                    into more than one group (0x40 and 0x20: format versions 3 and 4 only)
    5 bytes         with 0x20 only: the merge table, class -> group, in first-use order
    indices         one scale index per (phase, group, channel, coefficient group), the groups
                    being taps / cross / bias; with shared taps the taps' index comes once,
                    before the channels'
    rest            the coefficients, range-coded (constriction) as zero-mean quantized
                    Gaussians with those scales, in the order of the indices

The encoder (:func:`choose`) tries every shape, keeps the one whose squared-error reduction
pays most for its bits at the image's own rate-distortion slope, and none when none pays.

Example (tested in ``tests/test_wiener.py``)::

    >>> import numpy as np
    >>> f = OutputFilter(2, 1, np.zeros((1, 1, 3, 16), dtype=np.int32))
    >>> OutputFilter.from_bytes(f.to_bytes()) == f
    True
    >>> g = OutputFilter(3, 4, np.zeros((4, 3, 3, 28), dtype=np.int32), merge=(0, 1, 2, 0, 0), shared=True)
    >>> (g.groups, g.format_version, OutputFilter.from_bytes(g.to_bytes()) == g)
    (3, 3, True)
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
CLASSES = 5  # direction classes of :func:`classify`
#: Merge tables the encoder tries: one filter; none / horizontal / vertical with the diagonals
#: in "none"; the two diagonals together; every class its own. The decoder reads any table.
MERGES = ((0, 0, 0, 0, 0), (0, 1, 2, 0, 0), (0, 1, 2, 3, 3), (0, 1, 2, 3, 4))
TAP_SHIFT, CROSS_SHIFT, BIAS_SHIFT = 9, 11, 4
_PHASES4, _SHARED, _CLASSED = 0x80, 0x40, 0x20  # bits of byte 0
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


def classify(x: torch.Tensor, top: int = 0, bottom: int | None = None) -> torch.Tensor:
    """Direction class (int64, 0..4) of each pixel of rows ``top..bottom`` of a (1, 3, H, W)
    image in [0, 1] units: (rows, W).

    From the decoded 8-bit pixels (``x`` clamped and rounded) the luma ``Y = (77 R + 150 G +
    29 B + 128) >> 8``; its absolute second differences along the four directions (horizontal,
    vertical, the diagonal down-right and the one down-left), each summed over a 5x5 window
    (borders replicated): ``G_h, G_v, G_d, G_a``. The pair (h, v) or (d, a) with the larger
    max/min ratio decides (h, v on a tie); if its max is over twice its min the class is that
    pair's larger member (1 h, 2 v, 3 d, 4 a), else 0. Integer arithmetic throughout, so any
    band split, thread count or device that decodes the same pixels gives the same classes.
    """
    h, w = x.shape[-2:]
    bottom = h if bottom is None else bottom
    lo, hi = max(top - 3, 0), min(bottom + 3, h)
    q = x[0, :, lo:hi].clamp(0.0, 1.0).mul(255.0).round().to(torch.int32)
    luma = ((77 * q[0] + 150 * q[1] + 29 * q[2] + 128) >> 8).float()  # exact small integers
    yp = F.pad(luma[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    c2 = 2 * yp[1:-1, 1:-1]
    lap = torch.stack([(c2 - yp[1:-1, :-2] - yp[1:-1, 2:]).abs(), (c2 - yp[:-2, 1:-1] - yp[2:, 1:-1]).abs(),
                       (c2 - yp[:-2, :-2] - yp[2:, 2:]).abs(), (c2 - yp[:-2, 2:] - yp[2:, :-2]).abs()])
    a, b = max(top - 2, 0), min(bottom + 2, h)  # rows of second differences the window needs
    lap = F.pad(lap[None, :, a - lo:b - lo], (2, 2, 2 - (top - a), 2 - (b - bottom)), mode="replicate")[0]
    lap = lap.to(torch.int64)
    rows = bottom - top
    cols = sum(lap[:, :, j:j + w] for j in range(5))
    g = sum(cols[:, i:i + rows] for i in range(5))  # (4, rows, W) window sums
    gh, gv, gd, ga = g
    hv_max, hv_min = torch.maximum(gh, gv), torch.minimum(gh, gv)
    da_max, da_min = torch.maximum(gd, ga), torch.minimum(gd, ga)
    use_hv = hv_max * da_min >= da_max * hv_min
    strong = torch.where(use_hv, hv_max > 2 * hv_min, da_max > 2 * da_min)
    cls = torch.where(use_hv, torch.where(gh > gv, 1, 2), torch.where(gd > ga, 3, 4))
    return torch.where(strong, cls, 0)


def _layout(taps: int, shared: bool) -> list[tuple[int, slice]]:
    """The coded coefficient groups of one (phase, group) as (channel, slice), each with its own
    scale index: taps / cross / bias per channel, or the taps once (channel 0's) when shared."""
    t, x, b = slice(0, taps), slice(taps, taps + 3), slice(taps + 3, taps + 4)
    if shared:
        return [(0, t)] + [(c, s) for c in range(3) for s in (x, b)]
    return [(c, s) for c in range(3) for s in (t, x, b)]


def _steps(taps: int) -> np.ndarray:
    """Quantization step of each coefficient of one (phase, group, channel): taps, 3 cross, bias."""
    return np.array([2.0 ** -TAP_SHIFT] * taps + [2.0 ** -CROSS_SHIFT] * 3 + [2.0 ** -BIAS_SHIFT])


def _canonical(merge: tuple[int, ...]) -> bool:
    """A merge table names its groups 0, 1, ... in order of first use."""
    seen = -1
    for m in merge:
        if m > seen + 1:
            return False
        seen = max(seen, m)
    return len(merge) == CLASSES


@dataclass(frozen=True, eq=False)
class OutputFilter:
    """One image's filter: ``coef`` is int32 ``(phases, groups, 3, taps + 4)`` (taps, cross,
    bias); ``merge[k]`` is the group of direction class ``k``; ``shared``: the taps are equal
    across channels and coded once."""

    radius: int
    phases: int
    coef: np.ndarray
    merge: tuple[int, ...] = (0,) * CLASSES
    shared: bool = False

    def __post_init__(self) -> None:
        if self.radius not in RADII or self.phases not in PHASES:
            raise ValueError(f"no filter shape radius {self.radius}, {self.phases} phases")
        if not _canonical(tuple(self.merge)):
            raise ValueError(f"merge table {self.merge} is not {CLASSES} groups in first-use order")
        taps = len(diamond(self.radius))
        if self.coef.shape != (self.phases, self.groups, 3, taps + 4):
            raise ValueError(f"coefficients of shape {self.coef.shape} do not fit the filter shape")
        if self.shared and not (self.coef[:, :, :, :taps] == self.coef[:, :, :1, :taps]).all():
            raise ValueError("shared taps must be equal for the three channels")

    @property
    def groups(self) -> int:
        return max(self.merge) + 1

    @property
    def format_version(self) -> int:
        """The file format version that can carry this filter: 3 for classes or shared taps."""
        return 3 if self.shared or self.groups > 1 else 2

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, OutputFilter)
                and (self.radius, self.phases, tuple(self.merge), self.shared)
                == (other.radius, other.phases, tuple(other.merge), other.shared)
                and np.array_equal(self.coef, other.coef))

    __hash__ = None  # mutable array inside

    # -- bytes ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        layout = _layout(self.coef.shape[-1] - 4, self.shared)
        head = bytearray([self.radius | (_PHASES4 if self.phases == 4 else 0) | (_SHARED if self.shared else 0)
                          | (_CLASSED if self.groups > 1 else 0)])
        if self.groups > 1:
            head += bytes(self.merge)
        syms, idx = [], []
        for k in range(self.phases):
            for g in range(self.groups):
                for c, s in layout:
                    q = self.coef[k, g, c, s]
                    rms = math.sqrt(float(np.mean(q.astype(np.float64) ** 2)))
                    i = int(np.argmin(np.abs(np.log(SCALE_TABLE) - math.log(max(rms, SCALE_TABLE[0])))))
                    head.append(i)
                    syms.append(q)
                    idx.append(np.full(q.size, i, dtype=np.int32))
        return bytes(head) + coder.encode_gaussian(np.concatenate(syms), np.concatenate(idx))

    @classmethod
    def from_bytes(cls, data: bytes, version: int = container.FORMAT_VERSION) -> OutputFilter:
        """Parse a filter of a file of format ``version`` (classes and shared taps need 3)."""
        if not data:
            raise CorruptError("output filter is empty")
        b0 = data[0]
        radius, phases, shared, classed = b0 & 0x1F, 4 if b0 & _PHASES4 else 1, bool(b0 & _SHARED), b0 & _CLASSED
        if radius not in RADII:
            raise CorruptError(f"output filter radius {radius} is not one of {RADII}")
        if (shared or classed) and version < 3:
            raise CorruptError(f"output filter uses classes or shared taps, which format version {version} has not")
        pos, merge = 1, (0,) * CLASSES
        if classed:
            merge = tuple(data[1:1 + CLASSES])
            pos += CLASSES
            if not _canonical(merge) or max(merge) == 0:
                raise CorruptError(f"output filter merge table {merge} is malformed")
        taps = len(diamond(radius))
        layout = _layout(taps, shared)
        groups = max(merge) + 1
        n_idx = phases * groups * len(layout)
        if len(data) < pos + n_idx:
            raise CorruptError("output filter is truncated")
        head = iter(data[pos:pos + n_idx])
        idx = np.concatenate([np.full(s.stop - s.start, next(head), dtype=np.int32)
                              for _ in range(phases * groups) for _, s in layout])
        flat = coder.decode_gaussian(data[pos + n_idx:], idx)
        coef = np.zeros((phases, groups, 3, taps + 4), dtype=np.int32)
        at = 0
        for k in range(phases):
            for g in range(groups):
                for c, s in layout:
                    n = s.stop - s.start
                    coef[k, g, c, s] = flat[at:at + n]
                    at += n
                if shared:
                    coef[k, g, 1:, :taps] = coef[k, g, 0, :taps]
        return cls(radius, phases, coef, merge, shared)

    # -- decoder ----------------------------------------------------------------------------
    def apply(self, x: torch.Tensor, band_rows: int = 512) -> torch.Tensor:
        """``W(x)`` of a (1, 3, H, W) float32 image in [0, 1] units (unclamped), same shape.

        Runs in float32 in bands of ``band_rows`` rows (bounded memory on large images); the
        taps are one depthwise convolution per phase and group, the cross terms a 3x3 matrix
        product; with several groups each pixel takes its group's output.
        """
        rho, taps = self.radius, self.coef.shape[-1] - 4
        steps = _steps(taps)
        params = []  # [phase][group] -> (kernel, mix, const)
        for k in range(self.phases):
            row = []
            for g in range(self.groups):
                c = self.coef[k, g].astype(np.float64) * steps  # (3, taps + 4)
                ker = np.zeros((3, 1, 2 * rho + 1, 2 * rho + 1))
                for t, (dy, dx) in enumerate(diamond(rho)):
                    ker[:, 0, rho + dy, rho + dx] = c[:, t]
                ker[:, 0, rho, rho] = 1.0 - c[:, :taps].sum(1)
                row.append((torch.tensor(ker, dtype=torch.float32, device=x.device),
                            torch.tensor(c[:, taps:taps + 3], dtype=torch.float32, device=x.device),  # u_{c,c'}
                            torch.tensor((c[:, taps + 3] - 128.0 * c[:, taps:taps + 3].sum(1)) / 255.0,
                                         dtype=torch.float32, device=x.device).view(1, 3, 1, 1)))
            params.append(row)
        merge = torch.tensor(self.merge, device=x.device)
        h, w = x.shape[-2:]
        out = torch.empty_like(x)
        for top in range(0, h, band_rows):  # band_rows is even, so phases line up with the image
            bottom = min(top + band_rows, h)
            lo, hi = max(top - rho, 0), min(bottom + rho, h)
            xp = F.pad(x[..., lo:hi, :], (rho, rho, rho - (top - lo), rho - (hi - bottom)), mode="replicate")
            band = x[..., top:bottom, :]
            group = merge[classify(x, top, bottom)] if self.groups > 1 else None
            for k in range(self.phases):
                py, px = (k // 2, k % 2) if self.phases == 4 else (0, 0)
                s = 2 if self.phases == 4 else 1
                rows, cols = -(-(bottom - top - py) // s), -(-(w - px) // s)
                if rows <= 0 or cols <= 0:
                    continue  # a band of one row, or an image one pixel wide, has no pixel of this phase
                xc = band[..., py::s, px::s]
                ys = [F.conv2d(xp[..., py:, px:], ker, stride=s, groups=3)[..., :rows, :cols]
                      + torch.einsum("ij,bjhw->bihw", mix, xc) + const for ker, mix, const in params[k]]
                y = ys[0]
                if group is not None:
                    gk = group[py::s, px::s]
                    for g in range(1, self.groups):
                        y = torch.where(gk == g, ys[g], y)
                out[..., top + py:bottom:s, px::s] = y
        return out

    @classmethod
    def split_layer(cls, layer: bytes, version: int = container.FORMAT_VERSION) -> tuple[OutputFilter, bytes]:
        """A residual layer with a filter (versions 2 to 5) -> (its filter, the s string);
        ``CorruptError`` if malformed."""
        flt, s = container.split_strings(layer, "residual layer", "output filter")
        return cls.from_bytes(flt, version), s

    @property
    def nbytes(self) -> int:
        return len(self.to_bytes())

    def describe(self) -> dict:
        """The shape in words and numbers, for ``rdcodec info``."""
        return {"radius": self.radius, "phases": self.phases, "groups": self.groups,
                "merge": list(self.merge), "shared_taps": self.shared, "bytes": self.nbytes}


# -- encoder ----------------------------------------------------------------------------------

def normal_equations(x0: torch.Tensor, target: np.ndarray, rho: int = max(RADII)):
    """Least-squares statistics of the filter on ``x0`` (1, 3, H, W, [0, 1] units) against the
    (H, W, 3) uint8 ``target``, for the largest diamond ``rho``, each of the 4 phases and each
    of the 5 direction classes: ``A`` (4, 5, 3, n, n) = sum f f^T, ``B`` (4, 5, 3, n) = sum f e,
    ``E`` (4, 5, 3) = sum e^2 with ``e = target - x0`` and ``f`` a pixel's n = taps + 4
    features (taps, cross, 1), float64.

    Features and each band's products are float32 (a band holds at most 2^17 pixels, a
    phase a quarter of them), summed over bands in float64. Images over 4 MP contribute
    evenly spaced bands only."""
    xc = x0.detach().to("cpu", torch.float32)  # [0, 1] units, for the classes
    v = xc[0] * 255.0
    t = torch.tensor(target).permute(2, 0, 1).float()
    h, w = v.shape[1:]
    offs = diamond(rho)
    n = len(offs) + 4
    A, B, E = np.zeros((4, CLASSES, 3, n, n)), np.zeros((4, CLASSES, 3, n)), np.zeros((4, CLASSES, 3))
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
        cls_band = classify(xc, top, bottom)
        for k in range(4):
            py, px = k // 2, k % 2
            centre = v[:, top + py:bottom:2, px::2].contiguous()  # (3, rows, cols) of this phase
            rows, cols = centre.shape[1:]
            if rows == 0 or cols == 0:
                continue
            m = rows * cols
            labels = cls_band[py::2, px::2].reshape(m)
            order = torch.argsort(labels, stable=True)  # pixels grouped by class
            bounds = np.concatenate([[0], np.cumsum(torch.bincount(labels, minlength=CLASSES).numpy())])
            err = (t[:, top + py:bottom:2, px::2] - centre).reshape(3, m)[:, order]
            f = torch.empty(n, m)
            f[-4:-1], f[-1] = (centre - 128.0).reshape(3, m), 1.0
            for c in range(3):
                for i, (dy, dx) in enumerate(offs):  # vp[c, ry::2, rx::2] of this phase, read contiguously
                    ry, rx = rho + py + dy, rho + px + dx
                    torch.sub(planes[ry % 2][rx % 2][c, ry // 2:ry // 2 + rows, rx // 2:rx // 2 + cols],
                              centre[c], out=f[i].view(rows, cols))
                fs = f[:, order]
                for j in range(CLASSES):
                    a, b = int(bounds[j]), int(bounds[j + 1])
                    if a == b:
                        continue
                    fj, ej = fs[:, a:b], err[c, a:b]
                    A[k, j, c] += (fj @ fj.T).double().numpy()
                    B[k, j, c] += (fj @ ej).double().numpy()
                    E[k, j, c] += float(ej.double() @ ej.double())
    return A, B, E


def _lsq(a: np.ndarray, b: np.ndarray, e: float, steps: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Quantized least-squares coefficients (int) and the squared error they leave, or None
    when the system is singular or a coefficient does not fit the coded range."""
    ridge = 1e-6 * np.trace(a) / len(b) + 1e-9
    try:
        wt = np.linalg.solve(a + ridge * np.eye(len(b)), b)
    except np.linalg.LinAlgError:
        return None
    q = np.round(wt / steps)
    if not np.isfinite(q).all() or np.abs(q).max() > Y_RANGE:
        return None
    wq = q * steps
    return q.astype(np.int32), float(e - 2 * wq @ b + wq @ a @ wq)


def _solve(A: np.ndarray, B: np.ndarray, E: np.ndarray, taps: int, shared: bool) -> tuple[np.ndarray, float] | None:
    """Coefficients (3, taps + 4) of one (phase, group) from its per-channel statistics
    ``A`` (3, n, n), ``B`` (3, n), ``E`` (3,) of the largest diamond, and their squared error.
    Shared taps are one joint least-squares problem over the three channels."""
    n = A.shape[-1]
    idx = list(range(taps)) + list(range(n - 4, n))
    a = [A[c][np.ix_(idx, idx)] for c in range(3)]
    b = [B[c][idx] for c in range(3)]
    steps = _steps(taps)
    if not shared:
        got = [_lsq(a[c], b[c], E[c], steps) for c in range(3)]
        if any(g is None for g in got):
            return None
        return np.stack([g[0] for g in got]), sum(g[1] for g in got)
    m = taps + 12  # shared taps, then (cross, bias) of each channel
    aa, bb = np.zeros((m, m)), np.zeros(m)
    cols = [list(range(taps)) + list(range(taps + 4 * c, taps + 4 * c + 4)) for c in range(3)]
    for c in range(3):
        aa[np.ix_(cols[c], cols[c])] += a[c]
        bb[cols[c]] += b[c]
    got = _lsq(aa, bb, float(E.sum()), np.concatenate([steps[:taps]] + [steps[taps:]] * 3))
    if got is None:
        return None
    q, sse = got
    return np.stack([q[cols[c]] for c in range(3)]), sse


def fit(stats, radius: int, phases: int, merge: tuple[int, ...] = MERGES[0],
        shared: bool = False) -> tuple[OutputFilter, float] | None:
    """The quantized filter of one shape from :func:`normal_equations` statistics, with the
    squared error it leaves (8-bit units, unrounded output); None if it cannot be coded."""
    A, B, E = stats
    taps = len(diamond(radius))
    groups = max(merge) + 1
    coef = np.zeros((phases, groups, 3, taps + 4), dtype=np.int32)
    sse = 0.0
    for k in range(phases):
        sel = slice(None) if phases == 1 else slice(k, k + 1)
        for g in range(groups):
            members = [j for j in range(CLASSES) if merge[j] == g]
            got = _solve(A[sel][:, members].sum((0, 1)), B[sel][:, members].sum((0, 1)),
                         E[sel][:, members].sum((0, 1)), taps, shared)
            if got is None:
                return None
            coef[k, g], s = got
            sse += s
    return OutputFilter(radius, phases, coef, tuple(merge), shared), sse


def choose(x0: torch.Tensor, target: np.ndarray, file_bits: int,
           slope_db: float = RD_SLOPE_DB) -> OutputFilter | None:
    """The filter shape that pays most, or None when no filter pays for its bits.

    Tries every radius, phase count, merge table of :data:`MERGES` and both tap layouts. A
    filter costing ``R_f`` bits is worth ``lambda R_f`` of squared error, where ``lambda`` is
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
            for merge in MERGES:
                for shared in (False, True):
                    got = fit(stats, radius, phases, merge, shared)
                    if got is None:
                        continue
                    flt, sse = got
                    gain = (sse0 - sse) - lam * 8 * (flt.nbytes + 1)  # +1: the length varint
                    if gain > best_gain:
                        best, best_gain = flt, gain
    return best

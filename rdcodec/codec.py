"""Image <-> .rdc bytes: the compress and decompress entry points.

compress(x, alpha):
    1. pad x to a multiple of 32 (edge replication); y = g_a(x)
    2. gains for alpha (alpha is first rounded to the 16 bits stored in the header)
    3. z symbols = round(h_a(y * G_y) * G_z), with y * G_y edge-replicated to a multiple of 4
       latent positions                                          -> factorized coder
    4. means, scales = h_s(z_sym * G_z^-1), cut to y's size (float64, CPU, snapped to tables)
    5. y symbols = round(y * G_y - means)                        -> Gaussian coder
       (weights with a context model: in passes, each refining the means and scales of
       its positions from the symbols of the passes before, all in the same string:
       anchors then the rest for the checkerboard, ``rdcodec.model.context``; per channel
       group within each for the space-channel model, ``rdcodec.model.channel``)
    6. y_hat = (y_sym + means) * G_y^-1                           (base layer done)
    7. s symbols = round(enc(y - y_hat) * G_s - mu_s), mu_s, sigma_s = prior(y_hat)
                                                                  -> Gaussian coder
    8. (``output_filter=True``) W = the Wiener filter fitted to x_eye (below) against x, kept
       when it pays for its bytes; written before the s string (``rdcodec.wiener``)
decompress(data, beta) runs steps 4, 6 and 7 backwards from the decoded symbols, takes
r' = W(x_eye) - x_hat_1 when the file has a filter, and renders
x_bar = x_hat_1 + (1 - beta) * r (Eq. 9), clamped to [0, 1] only at the output. A file
without its residual layer has r = None (x_hat_1 at every beta), or with
``predict_residual=True`` the r of step 7 with every s symbol 0: s_hat = mu_s(y_hat).
Weights with a machine head (``rdcodec.model.head``) render beta P(x_hat_1) + (1 - beta) x_eye
instead, beta = 1 being the head's image. x_eye is x_hat_1 + r (the same beta = 0 image as without
the head, at no more cost), or with an eye share c(alpha) (``ModelConfig.eye_share``)
(1 - c)(x_hat_1 + r) + c P(x_hat_1); with a filter, W is fitted to and applied on x_eye.

Files of format versions 1 to 3 were coded on a 64-pixel grid (the image padded to a multiple of
64, so the latent is a multiple of 4 positions); the decoder reads the grid from the header
(``container.Header.grid``). The 32-pixel grid spends no bits on up to 32 of the rows and columns
of padding the coarse grid needs: about 12% of a 224 x 224 image's bits (``docs/model.md``).

The encoder derives its reconstruction with exactly the decoder's functions, so
``decompress(compress(x).data)`` equals ``compress(x).render(beta)`` pixel for pixel.

Images over 4 megapixels run ``g_a`` and ``g_s`` + the residual reconstruction tile by
tile, with enough overlap that the result equals the untiled one up to float rounding
(``rdcodec.model.tiling``); the tiling depends only on the image size.

``compress`` and ``decompress`` take an optional ``timings`` dict that receives the wall
seconds spent per stage (analysis, refine, hyper, entropy, synthesis, residual, decision,
filter);
``benchmarks/speed.py`` uses it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import wiener
from .bitstream import container
from .entropy import coder
from .entropy.tables import Y_RANGE, Z_RANGE, scale_indices, snap_means
from .errors import CorruptError, LimitError, RdcError, WeightsError
from .model import tiling
from .model.context import anchor_mask
from .model.rdc import CodingModel
from .refine import machine_steps, refine_for_machines, refine_latent
from .vision.features import FeatureBackbone


def refinement_steps(alpha: float, refine: int = 0, machines: object | None = None) -> int:
    """The latent refinement steps an encode at ``alpha`` with ``refine=`` and ``machines=`` takes:
    ``refine``, or :func:`rdcodec.refine.machine_steps` at the coded (quantized) alpha when
    refining for machines without a count."""
    if refine or machines is None:
        return refine
    return machine_steps(container.quantize_alpha(alpha) / container.ALPHA_STEPS)


PAD = container.GRID  # the encoder pads images to a multiple of this (the 32-pixel grid of format versions 4 and 5)
DEFAULT_MAX_PIXELS = 200_000_000


@dataclass
class Reconstruction:
    """Decoder-side tensors of one image; ``render`` applies Eq. 9.

    With a machine head (``head``, :mod:`rdcodec.model.head`) the base layer's image is
    ``P(x_hat_1)`` (:meth:`base_image`, computed on first use) and ``render`` gives
    ``P(x_hat_1) + (1 - beta) (x_eye - P(x_hat_1))`` with :meth:`eye_image` the beta = 0 image:
    ``x_hat_1 + r``, or ``eye(x_hat_1 + r, P(x_hat_1))`` for weights that make it from both
    (the eye share, :meth:`rdcodec.model.rdc.CodingModel.eye_image`). Without ``eye`` the beta = 0
    image is the one without a head, at no cost (the head runs only for a beta above 0).
    """

    x_hat_1: torch.Tensor          # (1, 3, H, W) float32, unclamped: g_s(y_hat)
    r: torch.Tensor | None         # (1, 3, H, W) float32, or None without a residual layer
    head: Callable[[torch.Tensor], torch.Tensor] | None = None
    eye: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # (x_0, P) -> x_eye, with a head
    _base: torch.Tensor | None = field(default=None, repr=False)

    def base_image(self) -> torch.Tensor:
        """The image the base layer decodes to (beta = 1): ``P(x_hat_1)`` with a head, else ``x_hat_1``."""
        if self.head is None:
            return self.x_hat_1
        if self._base is None:
            self._base = self.head(self.x_hat_1)
        return self._base

    def eye_image(self) -> torch.Tensor:
        """The beta = 0 image (needs ``r``): ``x_0 = x_hat_1 + r``, or ``eye(x_0, P(x_hat_1))``."""
        if self.r is None:
            raise ValueError("a reconstruction without its residual layer has no beta = 0 image of its own")
        x_0 = self.x_hat_1 + self.r
        if self.eye is None or self.head is None:
            return x_0
        return self.eye(x_0, self.base_image())

    def filtered(self, flt: wiener.OutputFilter) -> Reconstruction:
        """This reconstruction with the Wiener filter ``W`` on its beta = 0 image, as the residual
        ``r' = W(x_eye) - x_hat_1`` (``eye`` is inside ``W``'s input, so it is not applied again)."""
        return dataclasses.replace(self, r=flt.apply(self.eye_image()) - self.x_hat_1, eye=None)

    def render(self, beta: float) -> np.ndarray:
        if not 0.0 <= beta <= 1.0 or math.isnan(beta):
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if self.r is None or beta == 1.0:
            x = self.base_image()
        elif beta == 0.0:
            x = self.eye_image()
        elif self.head is None:
            x = self.x_hat_1 + (1.0 - beta) * self.r
        else:  # Eq. 9 with the head: x_m + (1 - beta) r_m, r_m = x_eye - x_m
            x_m = self.base_image()
            x = x_m + (1.0 - beta) * (self.eye_image() - x_m)
        x = x[0].clamp(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)  # in place after clamp's copy
        return x.permute(1, 2, 0).contiguous().cpu().numpy()


def _residual_helps(image: np.ndarray, rec: Reconstruction) -> bool:
    """Encoder-side layer decision: keep the residual layer only if beta = 0 beats beta = 1 (MSE, uint8).

    The residual branch is trained on average; on a few images at high rates it makes things
    worse (rdc-v2 on kodim02 at alpha >= 0.8: 23.8 dB at beta = 0 against 30.7 dB at beta = 1).
    The decoder needs no signal: the file simply has no residual layer.
    """
    err = [_squared_error(rec.render(b), image) for b in (0.0, 1.0)]
    return bool(err[0] < err[1])


def _squared_error(a: np.ndarray, b: np.ndarray, rows: int = 256) -> int:
    """Exact sum of squared differences of two uint8 images, a band of rows at a time (bounded memory)."""
    return sum(int(np.square(a[i:i + rows].astype(np.int32) - b[i:i + rows]).sum(dtype=np.int64))
               for i in range(0, a.shape[0], rows))


class _Clock:
    """``with clock("stage"):`` adds the block's wall seconds to ``timings[stage]`` (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None, device: torch.device) -> None:
        self.timings = timings
        self.sync = timings is not None and device.type == "cuda"
        self._inner: list[float] = []  # seconds of nested blocks, per open block

    @contextmanager
    def __call__(self, stage: str):
        """Nested blocks count only for their own stage (the decoder's range coding between
        the context model's passes is "entropy", not "hyper")."""
        if self.timings is None:
            yield
            return
        t0 = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            self.timings[stage] = self.timings.get(stage, 0.0) + dt - self._inner.pop()
            if self._inner:
                self._inner[-1] += dt


@dataclass
class Analysis:
    """``y = g_a(x)`` of a padded image, with the original size."""

    y: torch.Tensor
    height: int
    width: int
    image: np.ndarray | None = None  # the (H, W, 3) uint8 original, for encoder-side checks


@dataclass
class Compressed:
    data: bytes
    recon: Reconstruction | None
    estimated_bits: dict[str, float] | None = None


class Codec:
    """A loaded model ready to code images (``weights_id`` ties files to these weights)."""

    def __init__(self, coding: CodingModel, weights_id: int, weights_name: str = "") -> None:
        self.m = coding
        self.weights_id = weights_id
        self.weights_name = weights_name

    # ------------------------------------------------------------------ helpers
    # The *_model methods are the only source of probability models, shared by the
    # encoder and the decoder: (snapped means, scale-table indices, raw scales).
    def _gaussian_model(self, params: tuple[torch.Tensor, torch.Tensor]):
        """The model of Gaussian-coded symbols from float64 (means, scales): of y from
        ``hyper = self.m.y_params(z_sym, igz)`` (``h_s``'s), of s and e from their priors."""
        means, scales = params
        return snap_means(means), scale_indices(scales), scales

    def _encode_y(self, yg: torch.Tensor, hyper,
                  clock: _Clock) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bytes]:
        """Gained latent (1, M, h, w) float32 on the CPU -> (symbols, snapped means, scales, y string).

        With a context model the symbols are coded in the passes of
        :func:`rdcodec.model.channel.run_passes` (each pass's parameters from the ones before),
        all in one string.
        """
        if self.m.context64 is None:
            mu, idx, scales = self._gaussian_model(hyper)
            y_sym = torch.round(yg - mu).clamp_(-Y_RANGE, Y_RANGE)
            with clock("entropy"):
                return y_sym, mu, scales, coder.encode_gaussian(y_sym.to(torch.int32).numpy(), idx)
        anchor = anchor_mask(*yg.shape[-2:])
        syms, idxs = [], []

        def code(phase, chans, means, scales):
            mu, idx, at = _pass_model(anchor, phase, means, scales)
            q = torch.round(yg[:, chans][at] - mu).clamp_(-Y_RANGE, Y_RANGE)
            syms.append(q.to(torch.int32).numpy())
            idxs.append(idx)
            return _coded(q, mu, at)

        means, scales, y_sym = self.m.y_passes(hyper, code)
        with clock("entropy"):
            y_str = coder.encode_gaussian(np.concatenate(syms), np.concatenate(idxs))
        return y_sym.float(), snap_means(means), scales, y_str

    def _s_model(self, y_hat: torch.Tensor):
        return self._gaussian_model(self.m.s_params(y_hat))

    def _s_hat(self, s_sym: np.ndarray, s_means: torch.Tensor, igs: torch.Tensor) -> torch.Tensor:
        return (torch.from_numpy(s_sym).float() + s_means).to(self.m.device) * igs

    def _e_model(self, y_hat: torch.Tensor):
        """The detail latent's model (:mod:`rdcodec.model.detail`), like :meth:`_s_model`."""
        return self._gaussian_model(self.m.e_params(y_hat))

    def _head(self, alpha: float) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """What a :class:`Reconstruction` of a file at ``alpha`` renders the base image with: the
        machine head, if any."""
        return functools.partial(self.m.machine_image, alpha=alpha) if self.m.has_head else None

    def _recon(self, x_hat_1: torch.Tensor, r: torch.Tensor | None, alpha: float) -> Reconstruction:
        """The :class:`Reconstruction` of a file at ``alpha``: with the weights' machine head and,
        if they make the beta = 0 image from both, their ``eye_image``."""
        eye = functools.partial(self.m.eye_image, alpha=alpha) if self.m.has_eye else None
        return Reconstruction(x_hat_1, r, self._head(alpha), eye)

    def _reconstruct(self, y_hat: torch.Tensor, s_hat: torch.Tensor | None, h: int, w: int,
                     clock: _Clock, e_hat: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x_hat_1 = g_s(y_hat)`` and ``r = rrn(y_hat + dec(s_hat); f1, f2, f3)`` (None without
        ``s_hat``; with the detail latent ``e_hat``, ``D_s(e_hat)`` joins at H/8), cropped to h x w;
        tiled for large images (:mod:`rdcodec.model.tiling`)."""
        y_hat_2 = None
        if s_hat is not None:
            with clock("residual"):
                y_hat_2 = y_hat + self.m.latent_correction(s_hat)
        detail = None
        if e_hat is not None:
            def detail(rows: slice, cols: slice) -> torch.Tensor:
                return self.m.detail(e_hat[..., 2 * rows.start:2 * rows.stop, 2 * cols.start:2 * cols.stop])
        config = self.m.model.config
        return tiling.synthesis(self.m.g_s, self.m.rrn, y_hat, y_hat_2, h, w, clock,
                                config.rrn_blocks, config.synthesis_blocks, detail)

    def _encode_e(self, an: Analysis, y_hat: torch.Tensor, gains_e, clock: _Clock):
        """The detail latent of a file: (symbols, snapped means, scales, e string).

        ``e = D_a(x, x_hat_1, f1) * G_e`` needs the base layer's reconstruction, one more
        synthesis. Images that code tile by tile (over 4 megapixels) send every symbol at its
        predicted mean instead (the decoder's ``e_hat`` is then the prior's guess, as for a
        stripped file with ``predict_residual``): the analysis would need tiles of its own."""
        ge, _ = gains_e
        with clock("residual"):
            e_mu, e_idx, e_scales = self._e_model(y_hat)
        if _tiled(an.height, an.width):
            e_sym = np.zeros(e_mu.shape, np.int32)
        else:
            if an.image is None:
                raise ValueError("weights with a detail latent code the residual layer from the image, "
                                 "not only its analysis")
            with clock("synthesis"):
                x_hat_pad, feats = self.m.g_s(y_hat)
            with clock("residual"):
                eg = self.m.e_latent(self._padded(an.image), x_hat_pad.float(), feats[0], ge)
                e_sym = torch.round(eg.double() - e_mu).clamp_(-Y_RANGE, Y_RANGE).to(torch.int32).numpy()
        with clock("entropy"):
            e_str = coder.encode_gaussian(e_sym, e_idx)
        return e_sym, e_mu, e_scales, e_str

    # ------------------------------------------------------------------ encode
    @torch.no_grad()
    def analyze(self, image: np.ndarray) -> Analysis:
        """``y = g_a(x)`` of an (H, W, 3) uint8 image; independent of alpha, so reusable.

        The image is padded to a multiple of 32 by edge replication; large images run
        ``g_a`` tile by tile (:mod:`rdcodec.model.tiling`).
        """
        h, w = image.shape[:2]
        if _tiled(h, w):
            padded = np.pad(image, ((0, -h % PAD), (0, -w % PAD), (0, 0)), mode="edge")
            y = tiling.analysis(self.m.g_a, padded, self.m.device, self.m.model.config.encoder_blocks)
            return Analysis(y, h, w, image)
        return Analysis(self.m.g_a(self._padded(image)).contiguous(), h, w, image)  # decoder-side layout

    def _padded(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, H', W') float32 in [0, 1] on the device, padded to a multiple
        of 64 by edge replication."""
        h, w = image.shape[:2]
        x = torch.from_numpy(image.copy()).to(self.m.device).permute(2, 0, 1)[None].float() / 255.0
        return F.pad(x, (0, -w % PAD, 0, -h % PAD), mode="replicate")

    def refine(self, an: Analysis, alpha: float, steps: int,
               progress: Callable[[int, int], None] | None = None,
               machines: FeatureBackbone | None = None) -> Analysis:
        """``an`` with its latent refined for ``alpha`` by ``steps`` gradient steps on this image's
        own rate-distortion loss (:mod:`rdcodec.refine`), or for the vision network ``machines``
        (:func:`rdcodec.refine.refine_for_machines`); needs the original (``an.image``).

        The refined latent is coded like any other: files decode with every rdcodec. Images
        coded tile by tile (over 4 megapixels) are not refined (the gradient would need the
        whole synthesis in memory at once): that raises :class:`~rdcodec.errors.RdcError`.
        """
        if an.image is None:
            raise ValueError("latent refinement needs the original image, not only its analysis")
        h, w = an.height, an.width
        if _tiled(h, w):
            raise RdcError(f"latent refinement works on images up to {tiling.MIN_TILED_PIXELS} pixels "
                           f"(after padding to a multiple of {PAD}); this one is {w}x{h}: encode it without it")
        x, gains = self._padded(an.image), self.m.gains(alpha)
        if machines is None:
            y = refine_latent(self.m.model, x, an.y, alpha, gains, steps, h, w, bf16=self.m.bf16, progress=progress)
        else:
            y = refine_for_machines(self.m.model, x, an.y, alpha, gains, steps, h, w, machines, self.m.bf16,
                                    progress)
        return Analysis(y, h, w, an.image)

    @torch.no_grad()
    def compress(self, image: np.ndarray | Analysis, alpha: float, residual: bool = True,
                 estimate: bool = False, reconstruct: bool = True, check_residual: bool = False,
                 timings: dict[str, float] | None = None, refine: int = 0,
                 progress: Callable[[int, int], None] | None = None,
                 output_filter: bool = False, machines: FeatureBackbone | None = None) -> Compressed:
        """Code an (H, W, 3) uint8 image (or its :meth:`analyze` result) at rate ``alpha`` in [0, 1].

        ``reconstruct=False`` returns no reconstruction (``recon`` is None) and skips the
        synthesis, the most expensive step. ``check_residual=True`` (with an image or its
        ``analyze`` result) makes the encoder decode its own file and leave the residual layer
        out when it would not improve beta = 0 over beta = 1 (see ``_residual_helps``); it costs
        a synthesis. It is off by default since rdc-v3: the residual layer improved beta = 0 on
        every Kodak image at every alpha (``benchmarks/results/kodak/summary.json``).
        ``timings``, when given, receives wall seconds per stage. ``refine > 0`` first refines
        the latent for this alpha by that many gradient steps (:meth:`refine`; needs the image,
        ``progress(step, steps)`` follows it): a smaller file and a better image, more encode time.
        ``output_filter=True`` (with an image or its ``analyze`` result, and the residual layer)
        fits a Wiener filter to this image's beta = 0 reconstruction and writes it into the
        residual layer when it pays for its bytes (:mod:`rdcodec.wiener`; header flag bit 1); it
        costs a synthesis and a least-squares fit. ``machines``, a vision network's feature maps
        (:class:`~rdcodec.vision.features.FeatureBackbone`), makes the ``refine`` steps search a
        base layer for vision networks instead (:func:`rdcodec.refine.refine_for_machines`;
        ``refine=0`` then means :func:`rdcodec.refine.machine_steps` for this alpha); the residual
        layer then codes the rest toward beta = 0 as usual.
        """
        if refine < 0:
            raise ValueError(f"refine must be >= 0 steps, got {refine}")
        if not 0.0 <= alpha <= 1.0 or math.isnan(alpha):
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        model, dev = self.m.model, self.m.device
        clock = _Clock(timings, dev)
        if isinstance(image, Analysis):
            an = image
        else:
            with clock("analysis"):
                an = self.analyze(image)
        alpha_q = container.quantize_alpha(alpha)
        coded_alpha = alpha_q / container.ALPHA_STEPS  # the alpha the decoder reads from the header
        refine = refinement_steps(alpha, refine, machines)
        if refine:
            with clock("refine"):
                an = self.refine(an, coded_alpha, refine, progress, machines)
        y, h, w = an.y, an.height, an.width

        with clock("hyper"):
            gains = self.m.gains(coded_alpha)
            (gy, igy), (gz, igz), (gs, igs) = gains["y"], gains["z"], gains["s"]
            yg = y * gy
            z_sym = torch.round(model.h_a(yg) * gz).clamp_(-Z_RANGE, Z_RANGE).cpu().to(torch.int32)
            hyper = self.m.y_params(z_sym, igz, yg.shape[-2:])
            y_sym, mu, scales, y_str = self._encode_y(yg.cpu(), hyper, clock)
            y_hat = ((y_sym + mu).to(dev)) * igy
        with clock("entropy"):
            zc = z_sym[0].reshape(z_sym.shape[1], -1).numpy()
            z_str = coder.encode_factorized(zc, self.m.z_pmf, Z_RANGE)
            base = container.join_strings(z_str, y_str)
        check = residual and check_residual and an.image is not None
        fit = residual and output_filter and an.image is not None
        synthesize = reconstruct or check or fit

        res_str, s_sym, s_scales, s_hat, e_sym, e_hat = None, None, None, None, None, None
        if residual:
            with clock("residual"):
                sg = self.m.s_latent(y - y_hat, gs)
                s_mu, s_idx, s_scales = self._s_model(y_hat)
                s_sym = torch.round(sg - s_mu).clamp_(-Y_RANGE, Y_RANGE).to(torch.int32).numpy()
                s_hat = self._s_hat(s_sym, s_mu, igs) if synthesize else None
            with clock("entropy"):
                res_str = coder.encode_gaussian(s_sym, s_idx)
            if model.config.enhance:  # the residual layer: varint(len(s)), s string, e string
                e_sym, e_mu, e_scales, e_str = self._encode_e(an, y_hat, gains["e"], clock)
                e_hat = self._s_hat(e_sym, e_mu, gains["e"][1]) if synthesize else None
                res_str = container.join_strings(res_str, e_str)
        rec = self._recon(*self._reconstruct(y_hat, s_hat, h, w, clock, e_hat), coded_alpha) if synthesize else None
        if check and rec.r is not None:
            with clock("decision"):
                if not _residual_helps(an.image, rec):
                    res_str, s_sym, e_sym = None, None, None  # a residual that hurts is not worth its bytes
                    rec = dataclasses.replace(rec, r=None)
        flt = None
        if fit and rec.r is not None:
            with clock("filter"):
                file_bits = 8 * (container.compact_header_size(w, h, len(base), len(res_str))
                                 + len(base) + len(res_str))
                flt = wiener.choose(rec.eye_image(), an.image, file_bits)
                if flt is not None and reconstruct:
                    rec = rec.filtered(flt)  # Eq. 9 with the filtered residual
        with clock("entropy"):
            data = container.pack(self.weights_id, w, h, alpha_q, base, res_str,
                                  flt.to_bytes() if flt is not None else None,
                                  flt.format_version if flt is not None else 2)
        est = None
        if estimate:
            est = {"z": _factorized_bits(model, z_sym), "y": _gaussian_bits(model, y_sym, scales)}
            if res_str is not None:
                est["s"] = _gaussian_bits(model, torch.from_numpy(s_sym).float(), s_scales)
                if e_sym is not None:
                    est["e"] = _gaussian_bits(model, torch.from_numpy(e_sym).float(), e_scales)
        return Compressed(data, rec if reconstruct else None, est)

    def compress_to_size(self, image: np.ndarray, max_bytes: int, residual: bool = True,
                         tolerance: float = 0.02, check_residual: bool = False,
                         reconstruct: bool = True, output_filter: bool = False) -> tuple[Compressed, float]:
        """The largest alpha whose file fits in ``max_bytes`` (bisection on real coded sizes).

        Stops when the file is within ``tolerance`` below the target. Returns the file and
        alpha; when even alpha = 0 is too big, returns alpha = 0 (the nearest reachable rate).
        With ``output_filter`` every probe fits its filter, so the sizes include its bytes.
        """
        an = self.analyze(image)

        def size(a: float) -> int:
            return len(self.compress(an, a, residual, reconstruct=False, output_filter=output_filter).data)

        lo, hi = 0.0, 1.0
        if size(hi) <= max_bytes:
            lo = hi
        elif size(lo) <= max_bytes:
            for _ in range(20):  # alpha_q has 16 bits; 20 halvings reach it
                mid = (lo + hi) / 2
                n = size(mid)
                if n <= max_bytes:
                    lo = mid
                    if n >= max_bytes * (1 - tolerance):
                        break
                else:
                    hi = mid
        return self.compress(an, lo, residual, reconstruct=reconstruct, check_residual=check_residual,
                             output_filter=output_filter), lo

    # ------------------------------------------------------------------ decode
    def decode_y(self, y_str: bytes, z_sym: torch.Tensor, igz: torch.Tensor, shape: tuple[int, int],
                 clock: _Clock | None = None):
        """The y string of a latent of ``shape`` (h, w) -> (int32 symbols (1, M, h, w), snapped
        means, scales before the table).

        With a context model: the passes of :func:`rdcodec.model.channel.run_passes`, in the
        encoder's order, each decoded with the parameters refined from the passes before.
        """
        clock = clock or _Clock(None, self.m.device)
        with clock("hyper"):
            hyper = self.m.y_params(z_sym, igz, shape)
        if self.m.context64 is None:
            mu, y_idx, scales = self._gaussian_model(hyper)
            with clock("entropy"):
                return coder.decode_gaussian(y_str, y_idx), mu, scales
        anchor = anchor_mask(*hyper[0].shape[-2:])
        y_dec = coder.GaussianDecoder(y_str)

        def code(phase, chans, means, scales):
            mu, idx, at = _pass_model(anchor, phase, means, scales)
            with clock("entropy"):
                q = y_dec.decode(idx)
            return _coded(torch.from_numpy(q).float(), mu, at)

        with clock("hyper"):
            means, scales, y_sym = self.m.y_passes(hyper, code)
        return y_sym.to(torch.int32).numpy(), snap_means(means), scales

    @torch.no_grad()
    def decompress(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                   ignore_residual_errors: bool = False,
                   timings: dict[str, float] | None = None,
                   predict_residual: bool = False) -> tuple[Reconstruction, dict]:
        """Decode ``data``; returns the reconstruction (render it at any beta) and notes.

        ``timings``, when given, receives wall seconds per stage. ``predict_residual=True``
        gives a file without its residual layer (never written, stripped, or dropped as damaged)
        the residual the decoder predicts from the base layer alone: the residual latent at
        its conditional mean, ``s_hat = mu_s(y_hat)`` (every symbol 0), through the residual
        branch. It costs no bits and one residual synthesis; ``beta < 1`` then moves toward
        fidelity as with a coded residual (notes: ``residual_predicted``). Without it such a
        file renders ``x_hat_1`` at every beta.
        """
        head = container.parse_header(data)
        if head.width * head.height > max_pixels:
            raise LimitError(f"image is {head.width}x{head.height} = {head.width * head.height} pixels, "
                             f"over the limit of {max_pixels} (raise --max-pixels to allow it)")
        if head.weights_id != self.weights_id:
            raise WeightsError(_weights_mismatch(head.weights_id, self.weights_id, self.weights_name))
        h, w = head.height, head.width
        hz, wz = head.hyper_shape
        model, dev = self.m.model, self.m.device
        clock = _Clock(timings, dev)
        N = model.config.N
        with clock("entropy"):
            f = container.unpack(data, ignore_residual_errors=ignore_residual_errors)
            notes = {"residual_dropped": f.residual_error} if f.residual_error else {}
            z_str, y_str = container.split_strings(f.base)
            s_str, e_str, flt = f.residual, None, None
            if s_str is not None:
                try:
                    if head.has_filter:
                        flt, s_str = wiener.OutputFilter.split_layer(s_str, head.version)
                    if model.config.enhance:
                        s_str, e_str = container.split_strings(s_str, "residual layer", "s")
                except CorruptError as e:
                    if not ignore_residual_errors:
                        raise CorruptError(f"{e}; --ignore-residual-errors decodes the base layer alone") from None
                    s_str, flt, notes = None, None, {"residual_dropped": str(e)}
            zc = coder.decode_factorized(z_str, self.m.z_pmf, Z_RANGE, hz * wz)
        with clock("hyper"):
            gains = self.m.gains(head.alpha)
            (_, igy), (_, igz), (_, igs) = gains["y"], gains["z"], gains["s"]
            z_sym = torch.from_numpy(zc).reshape(1, N, hz, wz)
        y_sym, mu, _ = self.decode_y(y_str, z_sym, igz, head.latent_shape, clock)
        with clock("hyper"):
            y_hat = ((torch.from_numpy(y_sym).float() + mu).to(dev)) * igy
        s_hat = e_hat = None
        if s_str is not None:
            with clock("residual"):
                s_mu, s_idx, _ = self._s_model(y_hat)
            with clock("entropy"):
                s_sym = coder.decode_gaussian(s_str, s_idx)
            with clock("residual"):
                s_hat = self._s_hat(s_sym, s_mu, igs)
            if e_str is not None:
                with clock("residual"):
                    e_mu, e_idx, _ = self._e_model(y_hat)
                with clock("entropy"):
                    e_sym = coder.decode_gaussian(e_str, e_idx)
                e_hat = self._s_hat(e_sym, e_mu, gains["e"][1])
        elif predict_residual:
            with clock("residual"):
                s_mu, _, _ = self._s_model(y_hat)
                s_hat = self._s_hat(np.zeros(s_mu.shape, np.int32), s_mu, igs)
                if model.config.enhance:
                    e_mu, _, _ = self._e_model(y_hat)
                    e_hat = self._s_hat(np.zeros(e_mu.shape, np.int32), e_mu, gains["e"][1])
            notes["residual_predicted"] = True
        rec = self._recon(*self._reconstruct(y_hat, s_hat, h, w, clock, e_hat), head.alpha)
        if flt is not None and rec.r is not None:
            with clock("filter"):
                rec = rec.filtered(flt)
        return rec, notes


def _tiled(h: int, w: int) -> bool:
    """Whether an h x w image runs its transforms tile by tile (sizes after padding to ``PAD``)."""
    return tiling.is_tiled(h + (-h % PAD), w + (-w % PAD))


def _pass_model(anchor: torch.Tensor, phase: int, means: torch.Tensor, scales: torch.Tensor):
    """One pass's coding model at its positions only: (snapped means, scale indices, in the
    order the string holds them, and the positions as a bool mask shaped like ``means``)."""
    at = (anchor if phase == 0 else ~anchor).expand_as(means)
    return snap_means(means[at]), scale_indices(scales[at]), at


def _coded(q: torch.Tensor, mu: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A pass's (symbols, decoded values ``q + mu``) at positions ``at`` as the context model
    reads them: float64, zero elsewhere. Encoder and decoder both build them here."""
    q = q.double()
    sym, vals = (torch.zeros(at.shape, dtype=torch.float64) for _ in range(2))
    sym[at], vals[at] = q, q + mu.double()
    return sym, vals


def _weights_mismatch(file_id: int, ours: int, name: str) -> str:
    from .weights import known_weights

    known = known_weights().get(file_id)
    made = f"weights '{known}'" if known else f"unknown weights (id {file_id:08x})"
    return (f"file was made with {made}, but the loaded weights are '{name}' (id {ours:08x}); "
            "pass --weights with the matching file")


def _gaussian_bits(model, sym: torch.Tensor, scales: torch.Tensor) -> float:
    """Model-estimated bits of Gaussian-coded symbols (unsnapped scales, as in training)."""
    lik = model.gaussian._likelihood(sym.float(), scales.float())
    return float(-torch.log2(lik.clamp_min(1e-9)).sum())


def _factorized_bits(model, z_sym: torch.Tensor) -> float:
    v = z_sym.float()[0].reshape(z_sym.shape[1], 1, -1)
    lik, _, _ = model.entropy_z._likelihood(v)
    return float(-torch.log2(lik.clamp_min(1e-9)).sum())

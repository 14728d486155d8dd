"""The rate-distortion-cognition model (paper §3, Fig. 3), read top to bottom.

Primary branch (stage I, Eq. 3), with ``G`` the interpolated gain vectors for ``alpha``::

    y      = g_a(x)                              (B, M, H/16, W/16)
    z      = h_a(y * G_y)                        (B, N, H/64, W/64)
    z_hat  = Q(z * G_z) * G_z^{-1}
    mu, sigma = h_s(z_hat)                       parameters of y * G_y
    y_hat  = (Q(y * G_y - mu) + mu) * G_y^{-1}
    x_hat_1, (f1, f2, f3) = g_s(y_hat)

Auxiliary branch (stage II, §3.3), base frozen::

    s       = enc(y - y_hat) * G_s               (B, S, H/16, W/16)
    s_hat   = Q(s - mu_s) + mu_s, with mu_s, sigma_s = prior(y_hat)
    y_hat_2 = y_hat + dec(s_hat * G_s^{-1})
    r       = rrn(y_hat_2; f1, f2, f3)          (+ optional refinement blocks per scale)
    x_bar   = x_hat_1 + (1 - beta) * r            (Eq. 9)

With a detail latent (``ModelConfig.enhance`` = E > 0, :mod:`.detail`, not in the paper) the
residual layer also carries ``e`` (B, E, H/8, W/8), read from the pixels, and ``rrn`` adds
its decoded contribution ``d`` at H/8. With a machine head (``ModelConfig.machine_head`` = C > 0,
:mod:`.head`, not in the paper) the base layer decodes to ``P(x_hat_1)`` and ``r`` is re-expressed
against it, so that Eq. 9's beta = 0 image stays ``x_hat_1 + r`` (:mod:`.head`). With an eye share
(``ModelConfig.eye_share``) the beta = 0 image takes a fitted share ``c(alpha)`` of ``P(x_hat_1)``,
and an eye head ``E`` (``ModelConfig.eye_head``) refines that from both images::

    x_eye = E((1 - c) (x_hat_1 + r) + c P(x_hat_1), P(x_hat_1)),    x_bar = P + (1 - beta) (x_eye - P)

Training uses additive uniform noise for the rate terms and straight-through rounding for
the values fed forward ("mixed" quantization). Coding (``rdcodec.codec``) uses the
``*_params`` methods below, which are the only place where probability models come from.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import nn

from .channel import ChannelContext, PhasedChannelContext, rounding_code, run_passes
from .context import CheckerboardContext, PhasedContext
from .detail import DetailAnalysis, DetailPrior, DetailSynthesis
from .fastpath import bf16_default, coding_copy
from .gain import LAMBDAS, GainUnit, interpolate_levels
from .head import MAX_HEAD_BLOCKS, MachineHead, apply_even, apply_in_stripes
from .residual import ResidualPrior, ResidualReconstruction, ScalableTransform
from .transforms import AnalysisTransform, HyperAnalysis, HyperSynthesis, SynthesisTransform

CONTEXTS = ("hyperprior", "checkerboard", "space-channel")


@dataclass(frozen=True)
class ModelConfig:
    N: int = 128   # hidden channels of g_a / g_s / hyper path, and channels of z
    M: int = 192   # channels of y
    S: int = 64    # channels of the residual latent s
    # Distortion weights per rate point for the MSE-trained base and the residual branch:
    # loss = bpp + lambda * 255^2 * MSE.  base_lambda_scale * LAMBDAS[n] for the base.
    base_lambda_scale: float = 0.015
    residual_lambda_factor: float = 2.0
    # RefineBlocks after each upsampling of the residual reconstruction (0 = the paper's).
    rrn_blocks: int = 0
    # RefineBlocks at H/4 and at H/8 of the analysis g_a (0 = the paper's). Encoder only: files
    # made with any number decode with the same decoder (encoder weights, rdcodec.weights).
    encoder_blocks: int = 0
    # RefineBlocks at H/8 and H/4 of the synthesis g_s (0 = the paper's). A decoder field: the
    # base image x_hat_1 and the features the residual branch reads both change with it.
    synthesis_blocks: int = 0
    # Entropy model of y: "hyperprior" (the paper's), "checkerboard" (+ :mod:`.context`) or
    # "space-channel" (the checkerboard + channel groups, :mod:`.channel`).
    context: str = "hyperprior"
    # Channels E of the residual layer's detail latent at H/8 (0 = the paper's layer: only the
    # quantization error of y). A decoder field, :mod:`.detail`.
    enhance: int = 0
    # Channels C of the machine head on x_hat_1 (0 = the paper's base image). A decoder field: it
    # changes the beta = 1 image, not the beta = 0 one (:mod:`.head`).
    machine_head: int = 0
    # Per-level gains on the machine head's channels, interpolated in alpha like the gain units
    # (:class:`.head.MachineHead`): a head conditioned on the rate. A decoder field.
    head_gains: bool = False
    # Per-level, per-colour shares c of the machine head's image in the beta = 0 image,
    # ``(1 - c)(x_hat_1 + r) + c P(x_hat_1)``, fitted by least squares (:mod:`rdcodec.train.eye_share`).
    # A decoder field; needs a machine head.
    eye_share: bool = False
    # Channels C of the eye head: a network that makes the beta = 0 image from x_hat_1 + r (with
    # the eye share) and P(x_hat_1), trained on MSE (stage eye; :mod:`.head`). A decoder field;
    # needs a machine head.
    eye_head: int = 0
    # RefineBlocks of the eye head (3: rdc-v31's and rdc-v32's). New blocks start as the identity,
    # so a deeper head warm-starts from a shallower one exactly. A decoder field.
    eye_head_blocks: int = 3

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(CONTEXTS)}, not {self.context!r}")
        if (self.eye_share or self.eye_head) and not self.machine_head:
            raise ValueError("eye_share and eye_head take the machine head's image into beta = 0: "
                             "they need machine_head > 0")
        if not 1 <= self.eye_head_blocks <= MAX_HEAD_BLOCKS:
            raise ValueError(f"eye_head_blocks must be 1 to {MAX_HEAD_BLOCKS} (the reach that the head's stripes "
                             f"cover), not {self.eye_head_blocks}")

    def to_dict(self) -> dict:
        return asdict(self)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Rounding with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()


def bits(likelihoods: torch.Tensor) -> torch.Tensor:
    """Total information content in bits, per sample: (B, ...) -> (B,)."""
    return -torch.log2(likelihoods).flatten(1).sum(1)


class RDCModel(nn.Module):
    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        N, M, S = config.N, config.M, config.S
        self.g_a = AnalysisTransform(N, M, blocks=config.encoder_blocks)
        self.g_s = SynthesisTransform(N, M, blocks=config.synthesis_blocks)
        self.h_a = HyperAnalysis(N, M)
        self.h_s = HyperSynthesis(N, M)
        init = [math.sqrt(lam / LAMBDAS[-1]) for lam in LAMBDAS]
        self.gain_y = GainUnit(M, init)
        self.gain_z = GainUnit(N, [1.0] * len(LAMBDAS))
        self.entropy_z = EntropyBottleneck(N)
        self.gaussian = GaussianConditional(None)
        self.context = CheckerboardContext(M) if config.context != "hyperprior" else None
        self.channel_context = ChannelContext(M) if config.context == "space-channel" else None
        # auxiliary branch
        self.scalable = ScalableTransform(M, S)
        self.residual_prior = ResidualPrior(M, S)
        self.gain_s = GainUnit(S, [1.0] * len(LAMBDAS))
        self.rrn = ResidualReconstruction(M, (N, N, N), blocks=config.rrn_blocks)
        if config.enhance:
            E = config.enhance
            self.detail_a = DetailAnalysis(N, E)
            self.detail_prior = DetailPrior(M, E)
            self.detail_s = DetailSynthesis(E, self.rrn.up[0].out_channels)
            self.gain_e = GainUnit(E, init)  # as y's: the step shrinks with the distortion weight
        self.head = (MachineHead(config.machine_head, levels=len(LAMBDAS) if config.head_gains else 0)
                     if config.machine_head else None)
        # c_n (L, 3): the share of P(x_hat_1) in the beta = 0 image at level n (0: the paper's x_hat_1 + r)
        self.eye_share = nn.Parameter(torch.zeros(len(LAMBDAS), 3)) if config.eye_share else None
        self.eye_head = (MachineHead(config.eye_head, blocks=config.eye_head_blocks, levels=len(LAMBDAS), inputs=6)
                         if config.eye_head else None)

    def machine_image(self, x_hat_1: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
        """The base layer's image as decoded: ``P(x_hat_1; alpha)`` with a machine head, else
        ``x_hat_1``. ``alpha``: a float or per-sample (B,) (a trained level n is alpha = n / 5)."""
        if self.head is None:
            return x_hat_1
        return apply_even(self.head, x_hat_1, torch.as_tensor(alpha, dtype=torch.float32).reshape(-1))

    def eye_image(self, x_0: torch.Tensor, x_m: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
        """The beta = 0 image from ``x_0 = x_hat_1 + r`` and ``x_m = P(x_hat_1)`` (B, 3, H, W):
        ``x_s = x_0 + c(alpha) (x_m - x_0)`` with the eye share, then ``E(x_s, x_m)`` with the eye
        head (:mod:`.head`); ``x_0`` for weights with neither. ``alpha`` as in :meth:`machine_image`."""
        alpha = torch.as_tensor(alpha, dtype=torch.float32).reshape(-1)
        x = x_0
        if self.eye_share is not None:
            x = x + interpolate_levels(self.eye_share, alpha)[:, :, None, None].to(x.dtype) * (x_m - x)
        if self.eye_head is not None:
            x = apply_even(self.eye_head, x, alpha, x_m)
        return x

    # ------------------------------------------------------------------ training
    def base_lambda(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.tensor(LAMBDAS, device=idx.device)[idx] * self.config.base_lambda_scale

    def residual_lambda(self, idx: torch.Tensor) -> torch.Tensor:
        return self.base_lambda(idx) * self.config.residual_lambda_factor

    def forward_base(self, x: torch.Tensor, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stage-I forward at trained levels ``idx`` (B,). Returns x_hat_1, bits_y, bits_z, ...

        The reconstruction always uses rounded latents (straight-through); the likelihoods
        follow the module mode like compressai's: uniform noise in ``train()``, rounding in
        ``eval()`` (so an eval-mode forward estimates the real coded bits).
        """
        return self.base_from_latent(self.g_a(x), self.gain_y.at_levels(idx), self.gain_z.at_levels(idx))

    def base_from_latent(self, y: torch.Tensor, gains_y: tuple[torch.Tensor, torch.Tensor],
                         gains_z: tuple[torch.Tensor, torch.Tensor],
                         noise: bool | None = None) -> dict[str, torch.Tensor]:
        """The primary branch from ``y`` (B, M, h, w) on: everything of :meth:`forward_base` after
        ``g_a``, for given (gain, inverse gain) pairs of y and z. ``noise`` overrides the module
        mode for the likelihoods (True: uniform noise, as in training); the encoder's latent
        refinement (:mod:`rdcodec.refine`) differentiates this with respect to ``y``."""
        (gy, igy), (gz, igz) = gains_y, gains_z
        yg = y * gy
        zg = self.h_a(yg) * gz
        with torch.autocast(y.device.type, enabled=False):
            zg = zg.float()
            _, z_lik = self.entropy_z(zg, training=noise)
            z_hat = round_ste(zg) * igz
            means, scales = self.y_entropy_params(yg.float(), z_hat)
            yg32 = yg.float()
            _, y_lik = self.gaussian(yg32, scales, means, training=noise)
            yg_hat = round_ste(yg32 - means) + means
        y_hat = yg_hat * igy
        x_hat, feats = self.g_s(y_hat)
        return {"x_hat": x_hat, "feats": feats, "y": y, "y_hat": y_hat,
                "bits_y": bits(y_lik), "bits_z": bits(z_lik)}

    def y_entropy_params(self, yg: torch.Tensor, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and scales of the gained latent ``yg``: ``h_s(z_hat)`` cut to ``yg``'s size,
        refined by the context model when the model has one (:meth:`y_context`)."""
        means, scales = self.h_s(z_hat, yg.shape[-2:])
        if self.context is not None:
            means, scales = self.y_context(yg, means, scales)
        return means, scales

    def y_context(self, yg: torch.Tensor, means_h: torch.Tensor,
                  scales_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hyperprior's ``(mu_h, sigma_h)`` refined by the checkerboard (and the channel
        groups) from ``yg``'s symbols, in the coding order of :func:`.channel.run_passes`."""
        means, scales, _ = run_passes(means_h, scales_h, self.context, self.channel_context,
                                      rounding_code(yg))
        return means, scales

    def forward_residual(self, x: torch.Tensor, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stage-II forward: the base runs without gradients, the auxiliary branch learns."""
        with torch.no_grad():
            base = self.forward_base(x, idx)
        gains_e = self.gain_e.at_levels(idx) if self.config.enhance else None
        return self.residual_from_base(base, self.gain_s.at_levels(idx), x=x, gains_e=gains_e)

    def residual_from_base(self, base: dict[str, torch.Tensor], gains_s: tuple[torch.Tensor, torch.Tensor],
                           noise: bool | None = None, x: torch.Tensor | None = None,
                           gains_e: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The auxiliary branch on a :meth:`base_from_latent` result: ``s`` from ``y - y_hat``,
        its bits, and the residual image ``r`` (B, 3, H, W). ``noise`` as in :meth:`base_from_latent`.

        A model with a detail latent also needs the original ``x`` and ``e``'s gains; its
        bits are in ``bits_e`` and counted in ``bits_s`` (the whole residual layer)."""
        gs, igs = gains_s
        y, y_hat = base["y"].float(), base["y_hat"].float()
        sg = self.scalable.enc(y - y_hat) * gs
        with torch.autocast(y.device.type, enabled=False):
            sg = sg.float()
            means, scales = self.residual_prior(y_hat)
            _, s_lik = self.gaussian(sg, scales, means, training=noise)
            sg_hat = round_ste(sg - means) + means
        out = {"x_hat_1": base["x_hat"], "bits_s": bits(s_lik), "bits_base": base["bits_y"] + base["bits_z"]}
        detail = None
        if self.config.enhance:
            if x is None or gains_e is None:
                raise ValueError("a model with a detail latent needs x and gains_e for its residual layer")
            ge, ige = gains_e
            eg = self.detail_a(x, base["x_hat"], base["feats"][0]) * ge
            with torch.autocast(y.device.type, enabled=False):
                eg = eg.float()
                means_e, scales_e = self.detail_prior(y_hat)
                _, e_lik = self.gaussian(eg, scales_e, means_e, training=noise)
                eg_hat = round_ste(eg - means_e) + means_e
            detail = self.detail_s(eg_hat * ige)
            out["bits_e"] = bits(e_lik)
            out["bits_s"] = out["bits_s"] + out["bits_e"]
        out["r"] = self.residual_from(sg_hat * igs, y_hat, base["feats"], detail)
        return out

    def residual_from(self, s_hat: torch.Tensor, y_hat: torch.Tensor,
                      feats: list[torch.Tensor], detail: torch.Tensor | None = None) -> torch.Tensor:
        """``r = rrn(y_hat + dec(s_hat); f1, f2, f3)`` (plus the detail latent's ``d`` at H/8)."""
        return self.rrn(y_hat + self.scalable.dec(s_hat), feats, detail)


#: :meth:`CodingModel.latent_correction` rounds to multiples of ``1 / CORRECTION_STEPS``.
CORRECTION_STEPS = 2 ** 16


class CodingModel:
    """Coding-time view of a trained :class:`RDCModel`.

    Splits the model into what may run anywhere (the big transforms, in float32 on the
    chosen device, in the channels-last forms of :func:`.fastpath.coding_copy`; the inner
    layers of ``g_a``, ``g_s`` and the residual reconstruction in bfloat16 when ``bf16``, by
    default on CPUs with native bfloat16: :func:`.fastpath.bf16_default`) and what
    must give bit-identical results on every machine (the paths that produce probability
    models: ``h_s`` and the residual prior, run in float64 on the CPU, with outputs snapped
    by :mod:`rdcodec.entropy.tables`).
    """

    def __init__(self, model: RDCModel, z_pmf: torch.Tensor, device: str = "cpu",
                 bf16: bool | None = None) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        # the big transforms in their fast coding forms (same functions, :mod:`.fastpath`);
        # their inner layers in bfloat16 where the CPU has it natively (None: decide by the CPU)
        if bf16 is None:
            bf16 = bf16_default(self.device)
        self.bf16 = bf16
        self.g_a = coding_copy(self.model.g_a, bf16=bf16)
        self.g_s = coding_copy(self.model.g_s, bf16=bf16)
        self.rrn = coding_copy(self.model.rrn, bf16=bf16)
        self.h_s64 = _cpu_double_copy(model.h_s)
        self.residual_prior64 = _cpu_double_copy(model.residual_prior)
        # the residual layer's latent-resolution transforms: oneDNN splits their float32 sums by
        # thread count at small sizes (up to 12 x 16 latents on an Intel Xeon), so they run in
        # float64 on the CPU like the prior (about 20 ms each for a Kodak image)
        self.scalable64 = _cpu_double_copy(model.scalable)
        # the context in its coding forms (same functions, less work: :class:`.PhasedContext`,
        # :class:`.PhasedChannelContext`)
        self.context64 = PhasedContext(_cpu_double_copy(model.context)) if model.context is not None else None
        self.channel64 = (PhasedChannelContext(_cpu_double_copy(model.channel_context))
                          if model.channel_context is not None else None)
        self.z_pmf = z_pmf.to(torch.float64).numpy()
        # the detail latent (:mod:`.detail`): its prior like the residual prior's, float64 on the
        # CPU; its analysis (encoder only) and synthesis (pixels only) like the big transforms
        self.detail_a = self.detail_s = self.detail_prior64 = None
        if model.config.enhance:
            self.detail_a = coding_copy(self.model.detail_a, bf16=bf16)
            self.detail_s = coding_copy(self.model.detail_s, bf16=bf16)
            self.detail_prior64 = _cpu_double_copy(model.detail_prior)
        # the machine head (:mod:`.head`): pixels only, like the big transforms
        self.head = coding_copy(self.model.head, bf16=bf16) if model.head is not None else None
        self.eye_head = coding_copy(self.model.eye_head, bf16=bf16) if model.eye_head is not None else None

    def gains(self, alpha: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Interpolated (gain, inverse gain) of y, z and s (and e, with a detail latent) for
        ``alpha``, float32 on the device."""
        m = self.model
        out = {}
        units = [("y", m.gain_y), ("z", m.gain_z), ("s", m.gain_s)] + ([("e", m.gain_e)] if m.config.enhance else [])
        for name, unit in units:
            g, ig = unit.at_alpha(alpha)
            out[name] = (g.to(self.device), ig.to(self.device))
        return out

    def y_params(self, z_sym: torch.Tensor, inv_gain_z: torch.Tensor,
                 shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic ``h_s``: integer z symbols -> (means, scales) of the latent of size
        ``shape`` = (h, w), float64 on the CPU."""
        with torch.no_grad():
            z_hat = z_sym.to(torch.float64) * inv_gain_z.cpu().double()
            return self.h_s64(z_hat, shape)

    def y_passes(self, hyper: tuple[torch.Tensor, torch.Tensor], code) -> tuple[torch.Tensor, ...]:
        """The context model's coding order (:func:`.channel.run_passes`) in its deterministic
        form: ``h_s``'s float64 (means, scales) and a ``code`` function -> the final (means,
        scales, symbols), float64 on the CPU."""
        with torch.no_grad():
            return run_passes(*hyper, self.context64, self.channel64, code)

    def s_latent(self, y_res: torch.Tensor, gain_s: torch.Tensor) -> torch.Tensor:
        """Encoder: ``y - y_hat`` (B, M, h, w) -> ``enc(y - y_hat) * G_s`` (B, S, h, w), float64
        on the CPU, so that the rounded symbols do not depend on the thread count."""
        with torch.no_grad():
            return self.scalable64.enc(y_res.detach().cpu().double()) * gain_s.cpu().double()

    def latent_correction(self, s_hat: torch.Tensor) -> torch.Tensor:
        """Decoder: ``dec(s_hat)`` (B, S, h, w) -> (B, M, h, w), the correction added to ``y_hat``
        before the residual reconstruction (paper §3.3). Computed in float64 on the CPU and
        rounded to multiples of 2^-16 (exact in float32 up to magnitude 256), so float64's
        thread-dependent last bits never reach the pixels; float32 on the device."""
        with torch.no_grad():
            out = self.scalable64.dec(s_hat.detach().cpu().double())
            return (torch.round(out * CORRECTION_STEPS) / CORRECTION_STEPS).float().to(self.device)

    def s_params(self, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic residual prior: ``y_hat`` -> (means, scales) float64 on the CPU."""
        with torch.no_grad():
            return self.residual_prior64(y_hat.detach().cpu().double())

    def e_params(self, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic detail prior: ``y_hat`` (1, M, h, w) -> (means, scales) of ``e * G_e``,
        (1, E, 2h, 2w) each, float64 on the CPU."""
        with torch.no_grad():
            return self.detail_prior64(y_hat.detach().cpu().double())

    def e_latent(self, x: torch.Tensor, x_hat_1: torch.Tensor, f1: torch.Tensor,
                 gain_e: torch.Tensor) -> torch.Tensor:
        """Encoder: the padded image and its base reconstruction (1, 3, H, W), ``f1`` (1, N, H/8,
        W/8) -> ``D_a(x, x_hat_1, f1) * G_e`` (1, E, H/8, W/8), float32 on the CPU."""
        with torch.no_grad():
            return (self.detail_a(x, x_hat_1, f1).float() * gain_e).cpu()

    def machine_image(self, x_hat_1: torch.Tensor, alpha: float) -> torch.Tensor:
        """Decoder: ``x_hat_1`` (1, 3, H, W) -> ``P(x_hat_1; alpha)`` (float32), the image the base
        layer decodes to with a machine head (:mod:`.head`; in stripes for tall images). Only for
        weights with a head (:attr:`has_head`)."""
        with torch.no_grad():
            return apply_in_stripes(self.head, x_hat_1, torch.tensor([alpha], device=x_hat_1.device)).float()

    def eye_share(self, alpha: float) -> torch.Tensor | None:
        """The share ``c(alpha)`` of ``P(x_hat_1)`` in the beta = 0 image, (1, 3, 1, 1) float32 on the
        device, linear in alpha between the fitted levels; None for weights without one."""
        share = self.model.eye_share
        if share is None:
            return None
        c = interpolate_levels(share.detach().float(), torch.tensor([alpha], dtype=torch.float32))
        return c.reshape(1, 3, 1, 1).to(self.device)

    def eye_image(self, x_0: torch.Tensor, x_m: torch.Tensor, alpha: float) -> torch.Tensor:
        """Decoder: the beta = 0 image from ``x_0 = x_hat_1 + r`` and ``x_m = P(x_hat_1)`` (both
        (1, 3, H, W)), as :meth:`RDCModel.eye_image` (the eye head in stripes for tall images).
        Only where :attr:`has_eye`."""
        share = self.eye_share(alpha)
        x = x_0 if share is None else x_0 + share * (x_m - x_0)
        if self.eye_head is None:
            return x
        with torch.no_grad():
            return apply_in_stripes(self.eye_head, x, torch.tensor([alpha], device=x.device), x_m).float()

    @property
    def has_eye(self) -> bool:
        """Whether the beta = 0 image takes the machine head's image in (:meth:`eye_image`)."""
        return self.model.eye_share is not None or self.eye_head is not None

    @property
    def has_head(self) -> bool:
        return self.head is not None

    def detail(self, e_hat: torch.Tensor) -> torch.Tensor:
        """Decoder: ``e_hat`` (1, E, h, w) -> ``D_s(e_hat)``, the residual reconstruction's H/8 input."""
        with torch.no_grad():
            return self.detail_s(e_hat.to(self.device, torch.float32)).float()


def _cpu_double_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).cpu().double().eval()


def z_pmf_table(model: RDCModel, z_range: int) -> torch.Tensor:
    """Per-channel probabilities of the integer values -z_range..z_range of ``z * G_z``.

    Computed once when weights are exported and stored with them, so decoders never
    recompute (and never disagree on) the factorized prior.
    """
    eb = model.entropy_z
    values = torch.arange(-z_range, z_range + 1, dtype=torch.float32)
    values = values.repeat(eb.channels, 1)[:, None, :]  # (C, 1, K)
    with torch.no_grad():
        lik, _, _ = eb._likelihood(values)
    return lik[:, 0, :].clamp_min(0.0).float()

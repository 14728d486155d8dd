"""Encoder-side latent refinement (not in the paper): a better ``y`` for this one image.

The analysis transform ``g_a`` is amortized: one network maps every image to its latent, so
``y = g_a(x)`` is a good start but not the latent that minimizes *this* image's
rate-distortion loss (the "amortization gap" of Cremer et al. 2018). The encoder has ``x``,
so it can search: starting from ``g_a(x)``, ``steps`` Adam steps on ::

    L(y) = (R_z + R_y + R_s) / (H W)  +  lambda(alpha) * 255^2 * MSE(x, x_hat_1 + r)

with ``R`` the bits under the model's own entropy models (uniform noise, as in training),
``x_hat_1 + r`` the beta = 0 image (Eq. 9; the reconstruction uses rounded latents with a
straight-through gradient), ``lambda(alpha)`` the base distortion weight of the trained
levels interpolated like the gains (log-linear between neighbours, ``rdcodec.model.gain``),
and the learning rate decayed linearly to 0. This is the test-time optimization of Campos
et al. 2019 (*Content adaptive optimization for neural image compression*) and Yang et al.
2020 (*Improving inference for neural image compression*), on rdcodec's two-layer model.

Only the encoder changes: the refined ``y`` is coded exactly like ``g_a(x)`` would be, so
every rdcodec decoder reads the file, and the file format is unchanged. It costs about one
synthesis forward + backward per step (``docs/model.md`` has the measured times and gains).
For machines, :func:`refine_for_machines` searches the same way on another loss: the base
layer's rate, half its MSE term, and stage I's feature term ``D_feat`` on a vision network
(:mod:`rdcodec.vision.features`), so that the beta = 1 image keeps what that network sees.

Runs are reproducible at a given thread count: the noise comes from a fixed seed, with the
caller's RNG state kept. Unlike the plain encoder's, the bytes can change with the thread count
(the gradient steps carry its rounding into ``y``); every such file decodes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import torch

from .model.gain import LAMBDAS, alpha_to_position
from .model.rdc import RDCModel
from .vision.features import FeatureBackbone, feature_distance

#: {"y" | "z" | "s": (gain, inverse gain)}, each (1, C, 1, 1)
Gains = dict[str, tuple[torch.Tensor, torch.Tensor]]

#: Adam's initial step size on ``y`` (the latent's values are O(1) to O(10)). On kodim05 at
#: alpha 0.4 with 50 steps, 0.01 and 0.02 gave +0.24 and +0.20 dB at equal rate (``docs/model.md``).
LEARNING_RATE = 0.01

#: ``nu_n``, the weight of ``D_feat`` per trained level when refining for machines (run 21's
#: stage I weights; ``scripts/probe_machine_refine.py`` measured them at encode time).
FEATURE_WEIGHTS = (0.5, 0.8, 1.3, 2.0, 3.2, 5.0)
#: ``m``, the share of the base MSE weight ``lambda(alpha)`` kept when refining for machines.
MACHINE_MSE_SHARE = 0.5
#: Steps per trained level (alpha 0, 0.2, ..., 1; :func:`machine_steps` in between) and initial
#: step size when refining for machines. On 40 ImageNet crops (session 30), 10 steps at 0.02
#: raised MobileNetV2's true-class score as much as the probe's 20 at 0.01 (+11.1 / +4.0 against
#: +5.1 / +4.4 on a 0-255 scale at alpha 0.4 / 1) in half the time; 10 steps at 0.01 fell short
#: (+4.4 / -1.1). The lowest rate wants the longer search: on all 1000 crops at alpha 0, 20 steps
#: gave 53.3% MobileNetV2 top-1 where 10 gave 50.7% (plain files 47.1%), at the same rate.
MACHINE_STEPS = (20, 10, 10, 10, 10, 10)
MACHINE_LEARNING_RATE = 0.02


def per_level(values, alpha: float) -> float:
    """A positive weight given per trained level (``values[i]`` at level ``i``) at ``alpha``,
    interpolated log-linearly between the two neighbouring levels, like the gains."""
    s, l = alpha_to_position(alpha, len(values))
    return math.exp(l * math.log(values[s]) + (1.0 - l) * math.log(values[s + 1]))


def machine_steps(alpha: float) -> int:
    """The refinement steps for machines at ``alpha``: :data:`MACHINE_STEPS` at the trained levels,
    interpolated like the gains in between and rounded (20 at alpha 0, 14 at 0.1, 10 from 0.2 on)."""
    return round(per_level(MACHINE_STEPS, alpha))


def distortion_weight(model: RDCModel, alpha: float) -> float:
    """``lambda(alpha)``: the base distortion weight ``base_lambda_scale * lambda_n`` of the
    trained levels, interpolated log-linearly between the two neighbours of ``alpha``."""
    return per_level(LAMBDAS, alpha) * model.config.base_lambda_scale


def refinement_loss(model: RDCModel, x: torch.Tensor, y: torch.Tensor, gains: Gains, lam: float,
                    height: int, width: int, bf16: bool = False) -> torch.Tensor:
    """``L(y)`` of the module docstring for a padded image ``x`` (1, 3, Hp, Wp) in [0, 1] whose
    top-left ``height x width`` pixels are the image, and a latent ``y`` (1, M, Hp/16, Wp/16),
    with the (gain, inverse gain) pairs of y, z and s and ``lam`` = :func:`distortion_weight` for alpha.
    Differentiable with respect to ``y``; the transforms run under bf16 autocast when ``bf16``."""
    with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=bf16):
        base = model.base_from_latent(y, gains["y"], gains["z"], noise=True)
        out = model.residual_from_base(base, gains["s"], noise=True, x=x, gains_e=gains.get("e"))
    x_bar = (out["x_hat_1"].float() + out["r"].float())[..., :height, :width]
    mse = (x_bar - x[..., :height, :width]).square().mean()
    rate = (out["bits_base"] + out["bits_s"]).sum() / (height * width)
    return rate + lam * 255.0 ** 2 * mse


@contextmanager
def _frozen(model: RDCModel):
    """No parameter gradients while refining; the caller's ``requires_grad`` flags come back."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def refine_latent(model: RDCModel, x: torch.Tensor, y: torch.Tensor, alpha: float, gains: Gains, steps: int,
                  height: int, width: int, lr: float = LEARNING_RATE, seed: int = 0, bf16: bool = False,
                  progress: Callable[[int, int], None] | None = None,
                  objective: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``steps`` Adam steps on :func:`refinement_loss` from ``y`` (1, M, h, w); returns the refined
    latent (same shape, float32, detached). ``steps = 0`` returns ``y`` itself. ``gains`` are
    alpha's interpolated gains on ``y``'s device (:meth:`rdcodec.model.rdc.CodingModel.gains`).

    ``progress(step, steps)`` is called after every step. The result depends only on the
    inputs, ``seed`` and the machine's arithmetic (the global RNG state is left untouched).
    ``objective(latent)``, when given, replaces :func:`refinement_loss` as the loss to minimize
    (e.g. ``scripts/probe_machine_refine.py``'s loss for the classifiers).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if steps == 0:
        return y
    devices = [y.device] if y.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), _frozen(model), torch.enable_grad():
        torch.manual_seed(seed)
        latent = y.detach().float().clone().requires_grad_(True)
        opt = torch.optim.Adam([latent], lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / steps)
        if objective is None:
            lam = distortion_weight(model, alpha)
            objective = lambda y_: refinement_loss(model, x, y_, gains, lam, height, width, bf16)  # noqa: E731
        for step in range(steps):
            loss = objective(latent)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(step + 1, steps)
    return latent.detach().contiguous()


def machine_loss(model: RDCModel, x: torch.Tensor, y: torch.Tensor, alpha: float, gains: Gains, lam: float,
                 nu: float, backbone: FeatureBackbone, f_ref: list[torch.Tensor], height: int, width: int,
                 bf16: bool = False, share: float = MACHINE_MSE_SHARE) -> torch.Tensor:
    """The loss of :func:`refine_for_machines` for the latent ``y`` (1, M, h, w) of a padded image
    ``x`` (1, 3, Hp, Wp) whose top-left ``height x width`` pixels are the image::

        L(y) = (R_z + R_y) / (H W) + m * lambda(alpha) * 255^2 * MSE(x_hat_1, x) + nu(alpha) * D_feat(x_hat_1, x)

    with ``m`` = ``share`` (:data:`MACHINE_MSE_SHARE`), ``lam`` = ``lambda(alpha)``, ``nu`` = ``nu(alpha)`` and
    ``f_ref`` the backbone's maps of the original ``x[..., :height, :width]``. Only the base
    layer counts: the beta = 1 image ``x_hat_1`` is the one machines see (with a machine head,
    ``D_feat`` is on the image the file decodes to, ``P(x_hat_1; alpha)``: :mod:`rdcodec.model.head`).
    """
    with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=bf16):
        base = model.base_from_latent(y, gains["y"], gains["z"], noise=True)
    x_hat_1 = base["x_hat"].float()[..., :height, :width]
    loss = (base["bits_y"] + base["bits_z"]).sum() / (height * width)
    loss = loss + share * lam * 255.0 ** 2 * (x_hat_1 - x[..., :height, :width]).square().mean()
    return loss + nu * feature_distance(backbone(model.machine_image(x_hat_1, alpha)), f_ref).sum()


def refine_for_machines(model: RDCModel, x: torch.Tensor, y: torch.Tensor, alpha: float, gains: Gains,
                        steps: int, height: int, width: int, backbone: FeatureBackbone,
                        bf16: bool = False, progress: Callable[[int, int], None] | None = None,
                        lr: float = MACHINE_LEARNING_RATE, nu: float | None = None,
                        share: float = MACHINE_MSE_SHARE) -> torch.Tensor:
    """:func:`refine_latent` on :func:`machine_loss`: a base layer for vision networks.

    Stage I's feature term ``D_feat`` on ``backbone`` (the network stage I trained against, e.g.
    the MobileNetV1 embedding extractor) with weight ``nu(alpha)`` (:data:`FEATURE_WEIGHTS`,
    interpolated like the gains), half the base MSE weight, and the base rate. On all 1000
    ImageNet crops at the default steps (:func:`machine_steps`; ``docs/cognition.md``) it kept bpp
    and raised the top-1 of classifiers the codec never saw at beta = 1 (MobileNetV2: +2.5 points
    BD-Acc over the plain files, +7.1 against HEVC-intra). ``nu`` and ``share`` override ``nu(alpha)`` and ``m``
    (``scripts/probe_machine_refine.py`` explores them).
    """
    with torch.no_grad():
        f_ref = [f.detach() for f in backbone(x[..., :height, :width])]
    lam = distortion_weight(model, alpha)
    nu = per_level(FEATURE_WEIGHTS, alpha) if nu is None else nu
    return refine_latent(model, x, y, alpha, gains, steps, height, width, lr, bf16=bf16, progress=progress,
                         objective=lambda y_: machine_loss(model, x, y_, alpha, gains, lam, nu, backbone, f_ref,
                                                           height, width, bf16, share))

"""Resumable training loops for the two stages.

Stage ``base``: variable-rate base codec, loss per sample ``bpp + lambda_n * 255^2 * MSE``
with the level ``n`` drawn per sample (the paper draws one per step; per-sample levels give
every gain vector a gradient at every step). Stage ``residual`` (paper Eq. 8): base frozen,
loss ``bpp(s_hat) + lambda_m * 255^2 * MSE(x, x_hat_1 + r)``. Stage ``cognition`` (paper
stage I, Eq. 7): the base codec again, loss ``bpp + lambda_n * C + lambda_local * 255^2 * D_local``
with C the contrastive loss of :mod:`.cognition`; ``--mse-anchor mu`` adds
``mu_n * base_lambda_n * 255^2 * MSE`` (0 = the paper's loss; one mu, or one per level n) and
``--feature-weight nu`` adds ``nu_n * D_feat``, the backbone's feature distance (:mod:`.cognition`).
Stage ``encoder`` (not in the paper): everything frozen but the encoder-only modules ``g_a`` and
``h_a``, loss the beta = 0 rate-distortion ``(R_z + R_y + R_s) / px + lambda_n * 255^2 * MSE(x, x_hat_1 + r)``
with ``lambda_n`` the base codec's: the amortized form of the encoder's latent refinement
(:mod:`rdcodec.refine`). The decoder and every entropy model stay bit for bit as they were, so
files from the new encoder decode with the old weights' decoder. ``--objective cognition`` trains
the same modules on stage I's loss instead (the base layer only, with ``--mse-anchor`` and the
contrastive C): an encoder tuned for machines at beta = 1 for the same decoder. ``--objective
machines`` is the amortized form of the encoder's refinement for machines
(:func:`rdcodec.refine.refine_for_machines`): ``bpp + mu_n * lambda_n * 255^2 * MSE + nu_n * D_feat``
with ``D_feat`` on the backbone and the base layer's image, the rate and MSE those of both layers
(:func:`machine_loss`), ``mu`` and ``nu`` by default the refinement's (``MACHINE_MSE_SHARE``,
``FEATURE_WEIGHTS``) and no contrastive term.
Stage ``head`` (not in the paper, :mod:`rdcodec.model.head`): everything frozen but the machine
head ``P`` on the base image, loss ``D_feat(P(x_hat_1), x) + w * MSE(P(x_hat_1), x) + lambda_local *
255^2 * D_local`` with ``D_feat`` on the backbone and ``w`` = ``--head-mse``: the base layer's image
for vision networks at no cost in bits, the beta = 0 image unchanged. ``--head-gains`` conditions
the head on alpha, ``--head-balance`` weighs the levels alike (:class:`LevelBalance`).
Stage ``eye`` (not in the paper, :mod:`rdcodec.model.head`): everything frozen but the eye head ``E``,
loss ``255^2 * MSE(x, x_eye)`` with ``x_eye = E(x_s, P(x_hat_1))`` the beta = 0 image made from the
codec's ``x_s`` (``x_hat_1 + r`` with the eye share) and the machine head's image: fidelity at no cost
in bits, beta = 1 unchanged. ``--head-balance`` weighs its levels alike too. ``--residual-decoder``
also trains the residual layer's decoder side (same bytes); ``--residual-layer`` the whole residual
layer, on ``bits_s / pixels + lambda_m * 255^2 * MSE(x, x_eye)`` (stage II's loss on the eye's image).
Stage ``context`` (not in the paper, :mod:`.context`): everything frozen but the context model (and
with ``--hyper-lr`` the hyper path), loss the rate of ``y`` (plus ``z``) on cached latents, ``alpha``
drawn continuously.

Options may come from a TOML file (``--config``, flat keys named like the options, e.g.
``stage = "cognition"``, ``mse_anchor = 0.1``); options given on the command line win.
Every ``--eval-every`` steps a short Kodak evaluation (:mod:`.monitor`: estimated bpp and
PSNR at three levels) goes to the log and to stdout.

The learning rate follows a cosine over a *wall-clock* budget, so a run that is stopped and
resumed still ends its schedule on time. Checkpoints (``last.pt``) are written every
``--checkpoint-minutes`` and on exit; a run resumes from them automatically.

    python -m rdcodec.train --stage base --budget-minutes 80 --out runs/base
    python -m rdcodec.train --stage cognition --init runs/base/last.pt --out runs/cog
    python -m rdcodec.train --stage residual --init runs/cog/last.pt --out runs/res
    python -m rdcodec.train --stage encoder --context space-channel --init weights/rdc-v19.safetensors --out runs/enc
    python -m rdcodec.train --stage head --machine-head 48 --context space-channel \
        --init weights/rdc-v22.safetensors --out runs/head
    python -m rdcodec.train --stage eye --machine-head 48 --head-gains --eye-share --eye-head 48 \
        --context space-channel --init weights/rdc-v30.safetensors --out runs/eye
    python -m rdcodec.train --stage context --context checkerboard --init weights/rdc-v7b.safetensors --out runs/ctx
    python -m rdcodec.train --config scripts/configs/v3-cognition.toml
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import time
from pathlib import Path

import torch

from ..model.fastpath import bf16_default
from ..model.gain import level_alpha
from ..model.rdc import CONTEXTS, LAMBDAS, ModelConfig, RDCModel
from ..vision.features import feature_distance
from ..weights import ENCODER_PREFIXES  # what stage encoder trains: g_a, h_a
from .data import load_or_build, mixed_batch
from .monitor import load_eval_images, quick_eval

BASE_PREFIXES = ("g_a.", "g_s.", "h_a.", "h_s.", "gain_y.", "gain_z.", "entropy_z.", "gaussian.", "context.",
                 "channel_context.")

STAGES = ("base", "cognition", "residual", "context", "encoder", "head", "eye")

#: What stage ``head`` trains (:mod:`rdcodec.model.head`); no other stage does.
HEAD_PREFIXES = ("head.",)

#: What stage ``eye`` trains (the eye head, :mod:`rdcodec.model.head`); no other stage does. The eye
#: share is fitted, not trained (:mod:`.eye_share`).
EYE_PREFIXES = ("eye_head.", "eye_share")

#: What stage ``eye --residual-decoder`` trains beside the eye head: the residual branch's decoder
#: side, ``dec`` of ``y_hat_2 = y_hat + dec(s_hat)`` and the reconstruction network (and the detail
#: latent's synthesis). The encoder side (``scalable.enc``, the priors, ``gain_s``) stays, so the
#: files are the same bytes.
RESIDUAL_DECODER_PREFIXES = ("scalable.dec.", "rrn.", "detail_s.")

OBJECTIVES = ("rd", "cognition", "machines")  # stage encoder's losses

#: Longest wall time one step may add to the budget clock: a run paused with SIGSTOP (to time a
#: benchmark on the same cores) resumes where its learning-rate schedule left off.
MAX_STEP_SECONDS = 60.0

#: Non-finite losses in a row after which a run stops with an error: each one is skipped without
#: a step (and without moving the budget clock), so a model that gives nothing else would spin.
MAX_NONFINITE_IN_A_ROW = 20


def is_base_param(name: str) -> bool:
    return name.startswith(BASE_PREFIXES)


def is_residual_param(name: str) -> bool:
    """A tensor of the residual layer (what stage residual trains): neither the base codec nor a head."""
    return not is_base_param(name) and not name.startswith(HEAD_PREFIXES + EYE_PREFIXES)


def eye_trains(name: str, residual_decoder: bool = False, residual_layer: bool = False) -> bool:
    """Whether stage ``eye`` trains tensor ``name``: the eye head; with ``--residual-decoder`` also the
    residual layer's decoder side (:data:`RESIDUAL_DECODER_PREFIXES`, the files keep their bytes); with
    ``--residual-layer`` the whole residual layer (:func:`is_residual_param`: its encoder side, prior
    and gains too, so its bytes change). The base layer, and so beta = 1, never."""
    if residual_layer:
        return name.startswith("eye_head.") or is_residual_param(name)
    return name.startswith(("eye_head.", *RESIDUAL_DECODER_PREFIXES) if residual_decoder else "eye_head.")


def load_matching(model: torch.nn.Module, state: dict, keep=lambda name: True) -> list[str]:
    """Load the tensors of ``state`` whose names and shapes fit ``model``; return the rest's names."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if keep(k) and k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


class LevelBalance:
    """Per-sample weights ``mean_n(m_n) / m_level`` with ``m_n`` a running mean (decay ``decay``) of
    level ``n``'s per-sample loss: a loss whose size differs by level (``D_feat`` falls with the
    rate) then weighs each level's relative progress alike. Weights carry no gradient."""

    def __init__(self, levels: int, decay: float = 0.99) -> None:
        self.mean = torch.full((levels,), float("nan"))
        self.decay = decay

    def __call__(self, loss: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``loss`` (B,) at levels ``idx`` (B,) -> weights (B,); updates the running means."""
        with torch.no_grad():
            for n in idx.unique().tolist():
                m = loss[idx == n].mean().float()
                old = self.mean[n]
                self.mean[n] = m if torch.isnan(old) else self.decay * old + (1 - self.decay) * m
            seen = self.mean[~torch.isnan(self.mean)]
            return (seen.mean() / self.mean[idx]).to(loss.dtype)


def model_config(args: dict) -> ModelConfig:
    """The model options of a run's ``vars(args)`` (also what export reads back from a checkpoint):
    every :class:`ModelConfig` field the run has an option for (the options are named like the
    fields); the others, and those an older checkpoint lacks, keep their defaults."""
    return ModelConfig(**{f.name: args[f.name] for f in dataclasses.fields(ModelConfig) if f.name in args})


#: The detail latent's tensors (:mod:`rdcodec.model.detail`), new like refinement blocks.
DETAIL_PREFIXES = ("detail_a.", "detail_prior.", "detail_s.", "gain_e.")


def is_block_param(name: str) -> bool:
    """A tensor of a module added to a trained model that starts without effect: a
    :class:`~rdcodec.model.transforms.RefineBlock` (in g_a, g_s or rrn) or the detail latent."""
    return ".refine." in name or name.startswith(DETAIL_PREFIXES)


def param_groups(model: torch.nn.Module, params: list, block_lr: float = 0.0) -> list[dict]:
    """Adam's parameter groups for the trained ``params``: one group, or with ``block_lr`` > 0 the
    refinement blocks' tensors in a second group (marked ``blocks``) at that peak lr. The order is
    the model's, so a resumed optimizer state fits."""
    if block_lr <= 0:
        return [{"params": params}]
    trained = {id(p) for p in params}
    named = [(n, p) for n, p in model.named_parameters() if id(p) in trained]
    rest = [p for n, p in named if not is_block_param(n)]
    blocks = [p for n, p in named if is_block_param(n)]
    return [g for g in ({"params": rest}, {"params": blocks, "blocks": True}) if g["params"]]


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int,
                    elapsed: float, args: argparse.Namespace) -> None:
    """Write ``last.pt`` atomically: weights, optimizer, step, budget clock and the run's options."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "elapsed": elapsed, "stage": args.stage, "args": vars(args)}, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> tuple[RDCModel, dict, list[str]]:
    """A checkpoint of :func:`save_checkpoint` as the model it trained (its run's model options) ->
    (model, the checkpoint's dict, names of the model's tensors it lacks, which keep their init)."""
    state = torch.load(path, weights_only=False)
    model = RDCModel(model_config(state.get("args", {})))
    return model, state, load_matching(model, state["model"])


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list) -> bool:
    """One Adam step with the gradient norm clipped at 1; a non-finite loss is skipped (False)
    instead of poisoning the weights."""
    opt.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return False
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return True


class NonFiniteGuard:
    """Counts the losses :func:`optimizer_step` skipped; stops the run when ``limit`` come in a row.

    ``guard(stepped, step)`` returns ``stepped``, so a loop reads
    ``if not guard(optimizer_step(opt, loss, params), step): continue``.
    """

    def __init__(self, limit: int = MAX_NONFINITE_IN_A_ROW):
        self.limit, self.in_a_row, self.total = limit, 0, 0

    def __call__(self, stepped: bool, step: int) -> bool:
        if stepped:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.limit:
            raise SystemExit(f"error: {self.in_a_row} non-finite losses in a row after step {step}; none of them "
                             "changed the weights and the last checkpoint is as it was. Check the init weights, "
                             "or lower --lr.")
        return False

    def log_fields(self) -> dict:
        """What a log line adds: the skips so far, or nothing while there are none."""
        return {"nonfinite_skipped": self.total} if self.total else {}


def stop_on_sigterm() -> dict:
    """A flag ``{"now": bool}`` that SIGTERM sets, so a run stops after its step and checkpoints."""
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    return stop


#: The rate term's weight at the first step of a ``--rate-warmup``.
RATE_WARMUP_START = 1e-3


def rate_weight(step: int, warmup: int) -> float:
    """The rate term's weight at ``step`` with ``--rate-warmup`` ``warmup`` steps: rises
    geometrically from :data:`RATE_WARMUP_START` to 1 (a factor of 10 every third of it), then stays 1.

    A latent trained from scratch beside a trained decoder (the detail latent of run 27) starts
    as information its decoder cannot read yet, and its first steps make a few hundredths of a dB
    from bits that cost the loss far more: at full weight the rate term empties the latent
    first (run 27's second start: 0.050 -> 0.022 bpp at level 5 in 500 steps, no gain in PSNR),
    and so did a linear ramp, which is at 8% of the weight after a twelfth of the ramp."""
    if warmup <= 0 or step >= warmup:
        return 1.0
    return RATE_WARMUP_START ** (1.0 - step / warmup)


#: The learning rate of a run's first step, as a share of the peak: the warm-up starts here, not
#: at 0, so that every step moves the weights (a run cut to one step by its budget still trains).
WARMUP_START = 0.01


def lr_at(progress: float, peak: float, warmup: float = 0.02, floor: float = 0.05) -> float:
    """Linear warm-up from ``WARMUP_START * peak``, then cosine decay to ``floor * peak`` at ``progress = 1``."""
    if progress < warmup:
        return peak * max(progress / warmup, WARMUP_START)
    p = min(1.0, (progress - warmup) / (1 - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m rdcodec.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="TOML file of option defaults (flat keys, e.g. mse_anchor = 0.1)")
    ap.add_argument("--stage", choices=STAGES)
    ap.add_argument("--data", nargs="+", default=["../shared/data/train/bsds500",
                                                  "../shared/data/train/sun_hays80"])
    ap.add_argument("--cache", default="cache/crops256.pt")
    ap.add_argument("--n-crops", type=int, default=12000)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--budget-minutes", type=float, default=60.0)
    ap.add_argument("--checkpoint-minutes", type=float, default=10.0)
    ap.add_argument("--rate-warmup", type=int, default=0, metavar="STEPS",
                    help="raise the rate term's weight geometrically from 0.001 to 1 over the first STEPS steps, so "
                    "that a new latent's decoder can learn to use it before the rate empties it (0: off)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--init", help="checkpoint (.pt) or shipped weights (.safetensors) to start from; "
                    "stage residual takes only the base codec from it")
    ap.add_argument("--out")
    ap.add_argument("--mix-data", nargs="+", default=None,
                    help="second training source (e.g. ../shared/data/train/imagenette), cached separately")
    ap.add_argument("--mix-cache", default="cache/mix224.pt")
    ap.add_argument("--mix-size", type=int, default=224, help="crop side of the second cache")
    ap.add_argument("--mix-crops", type=int, default=5000)
    ap.add_argument("--mix-fraction", type=float, default=0.5, help="share of each batch from --mix-data")
    ap.add_argument("--mix-crop", type=int, default=None,
                    help="sub-crop side for the --mix-data samples (default --crop); a different side "
                    "runs them as a second forward pass of the same step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", action="store_true",
                    help="train in float32 (the default where the CPU lacks native bfloat16: there "
                    "autocast would be emulated, about 8x slower; rdcodec.model.fastpath.bf16_default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=2000, help="steps between short Kodak evaluations (0 = off)")
    ap.add_argument("--eval-dir", default="../shared/data/kodak")
    ap.add_argument("--eval-images", type=int, default=4)
    ap.add_argument("--residual-lambda-factor", type=float, default=ModelConfig.residual_lambda_factor,
                    help="stage residual: lambda_m = factor * base lambda_n (stored with the weights)")
    ap.add_argument("--rrn-blocks", type=int, default=ModelConfig.rrn_blocks,
                    help="refinement blocks per scale in the residual reconstruction (0 = the paper's; "
                    "new blocks start as the identity, so a residual stage warm-starts exactly)")
    ap.add_argument("--enhance", type=int, default=ModelConfig.enhance,
                    help="channels of the residual layer's detail latent at H/8 (0 = the paper's layer; "
                    "rdcodec/model/detail.py). Its decoder starts at zero, so a residual stage warm-starts exactly")
    ap.add_argument("--machine-head", type=int, default=ModelConfig.machine_head,
                    help="channels of the machine head on the base image (0 = none; rdcodec/model/head.py). "
                    "It starts as the identity; stage head trains it alone")
    ap.add_argument("--head-mse", type=float, default=50.0,
                    help="stage head: weight w of MSE(P(x_hat_1), x) (values in [0, 1]) beside D_feat")
    ap.add_argument("--head-gains", action="store_true",
                    help="condition the machine head on alpha: per-level channel gains, interpolated like the "
                    "gain units (rdcodec/model/head.py). They start at 1: a head from --init keeps its output")
    ap.add_argument("--head-balance", action="store_true",
                    help="stages head and eye: weigh each sample's loss by 1 / (running mean of its level's loss), "
                    "so every level's relative progress counts alike (high rates have the smallest D_feat)")
    ap.add_argument("--eye-share", action="store_true",
                    help="the model has an eye share (fitted by python -m rdcodec.train.eye_share; kept from --init)")
    ap.add_argument("--eye-head", type=int, default=ModelConfig.eye_head,
                    help="channels of the eye head, which makes the beta = 0 image from x_hat_1 + r and the "
                    "machine head's image (0 = none; rdcodec/model/head.py). It starts as the identity; "
                    "stage eye trains it alone")
    ap.add_argument("--eye-head-blocks", type=int, default=ModelConfig.eye_head_blocks,
                    help="refinement blocks of the eye head; blocks beyond --init's start as the identity, so a "
                    "deeper head warm-starts from a shallower one exactly")
    ap.add_argument("--residual-decoder", action="store_true",
                    help="stage eye: also train the residual branch's decoder side (dec and the reconstruction "
                    "network) for the beta = 0 image through the eye head; the encoder side stays, so files are "
                    "the same bytes and beta = 1 is unchanged")
    ap.add_argument("--residual-layer", action="store_true",
                    help="stage eye: train the whole residual layer (encoder side, prior, gain_s and decoder) "
                    "with the eye head on the beta = 0 rate-distortion loss bits_s / pixels + lambda_m 255^2 "
                    "MSE(x, x_eye), lambda_m as in stage residual; the residual layer's bytes change, the base "
                    "layer and beta = 1 do not")
    ap.add_argument("--encoder-blocks", type=int, default=ModelConfig.encoder_blocks,
                    help="refinement blocks at H/4 and H/8 of g_a (0 = the paper's; new blocks start as the "
                    "identity). Encoder only: export with --decoder, and files decode with that decoder")
    ap.add_argument("--synthesis-blocks", type=int, default=ModelConfig.synthesis_blocks,
                    help="refinement blocks at H/8 and H/4 of g_s (0 = the paper's; new blocks start as the "
                    "identity). A decoder change: stage base or cognition trains them, then retrain stage residual")
    ap.add_argument("--block-lr", type=float, default=0.0,
                    help="peak learning rate of the refinement blocks and the detail latent among the trained "
                    "tensors (0 = --lr): new, zero-started modules can learn faster than a trained model may move")
    ap.add_argument("--context", choices=CONTEXTS, default=ModelConfig.context,
                    help="entropy model of y (stored with the weights); a new checkerboard context "
                    "starts as the hyperprior, a new space-channel one as the init's checkerboard; "
                    "--stage context trains them on a frozen base")
    ap.add_argument("--objective", choices=OBJECTIVES, default="rd",
                    help="stage encoder's loss: the beta = 0 rate-distortion (rd), stage I's cognition "
                         "loss on the base layer (cognition; the options of stage cognition apply), or the "
                         "refinement for machines' loss (machines: both layers' rate, --mse-anchor times the "
                         "beta = 0 MSE, --feature-weight times D_feat on the base layer's image; by default "
                         "rdcodec.refine's weights)")
    ap.add_argument("--hyper-lr", type=float, default=0.0,
                    help="stage context: also train the hyper path (h_a, h_s, z's gains and prior) at this "
                    "peak learning rate, on the rate of y plus z (0 = frozen)")
    ap.add_argument("--latent-cache", default=None,
                    help="stage context: cache of g_a(crop) latents (default: cache/latents-<init name>.pt)")
    cog = ap.add_argument_group("stage cognition (paper Eq. 7)")
    cog.add_argument("--backbone", default=None, help="TFLite embedding network (default: MobileNetV1 1.0 extractor)")
    cog.add_argument("--queue", type=int, default=2048, help="negative keys kept (K in Eq. 5)")
    cog.add_argument("--tau", type=float, default=0.07, help="InfoNCE temperature")
    cog.add_argument("--lambda-local", type=float, default=1e-5, help="weight of D_local (Eq. 6), times 255^2")
    cog.add_argument("--mse-anchor", type=float, nargs="+", default=0.0,
                     help="extra mu * base_lambda_n * 255^2 * MSE (0 = the paper's loss): one mu for "
                     f"every level, or {len(LAMBDAS)}, one per level n (in a config: mse_anchor = [...])")
    cog.add_argument("--feature-weight", type=float, nargs="+", default=0.0,
                     help="extra nu * D_feat, the backbone's feature distance between x_hat_1 and x (0 = off): "
                     f"one nu for every level, or {len(LAMBDAS)}, one per level n")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    """Command line over ``--config`` over built-in defaults; ``--stage`` and ``--out`` are required."""
    ap = build_parser()
    first = ap.parse_args(argv)
    if first.config:
        try:
            import tomllib  # Python >= 3.11
        except ModuleNotFoundError:  # pragma: no cover - Python 3.10
            ap.error("--config needs Python 3.11 or newer (tomllib)")
        with open(first.config, "rb") as f:
            config = {k.replace("-", "_"): v for k, v in tomllib.load(f).items()}
        known = {a.dest for a in ap._actions}
        unknown = sorted(set(config) - known)
        if unknown:
            ap.error(f"unknown option(s) in {first.config}: {', '.join(unknown)}")
        ap.set_defaults(**config)
    args = ap.parse_args(argv)
    args.no_bf16 = args.no_bf16 or not bf16_default()  # emulated bfloat16 is slower than float32
    for name in ("stage", "out"):
        if getattr(args, name) is None:
            ap.error(f"--{name} is required (on the command line or in --config)")
    if args.stage not in STAGES:
        ap.error(f"stage must be one of {', '.join(STAGES)}, not {args.stage!r}")
    try:
        args.mse_anchor = per_level(args.mse_anchor, "mse_anchor")
        args.feature_weight = per_level(args.feature_weight, "feature_weight")
    except ValueError as e:
        ap.error(str(e))
    if args.objective != "rd" and args.stage != "encoder":
        ap.error(f"--objective {args.objective} is for --stage encoder (stage {args.stage} has its own loss)")
    if args.stage != "cognition" and args.objective == "rd":  # stage I's terms would be ignored
        given = [f"--{n.replace('_', '-')}" for n in ("mse_anchor", "feature_weight") if any(getattr(args, n))]
        if given:
            ap.error(f"{' and '.join(given)} only apply to --stage cognition (or encoder with --objective "
                     f"cognition or machines), not {args.stage}")
    if args.stage == "head" and args.machine_head <= 0:
        ap.error("--stage head trains the machine head: give it channels with --machine-head C")
    if args.stage == "eye" and (args.eye_head <= 0 or args.machine_head <= 0):
        ap.error("--stage eye trains the eye head on the machine head's image: give both channels with "
                 "--eye-head C and --machine-head C")
    for name in ("residual_decoder", "residual_layer"):
        if getattr(args, name) and args.stage != "eye":
            ap.error(f"--{name.replace('_', '-')} is for --stage eye (stage {args.stage} trains its own tensors)")
    if args.objective == "machines":  # unset weights: the refinement for machines' own
        from ..refine import FEATURE_WEIGHTS, MACHINE_MSE_SHARE

        args.mse_anchor = args.mse_anchor if any(args.mse_anchor) else (MACHINE_MSE_SHARE,) * len(LAMBDAS)
        args.feature_weight = args.feature_weight if any(args.feature_weight) else tuple(FEATURE_WEIGHTS)
    return args


def per_level(mu, name: str = "mse_anchor") -> tuple[float, ...]:
    """A per-level weight option (``--mse-anchor``, ``--feature-weight``) as one weight per level n:
    a single value (or a list of one) applies to every level; a list must have one value per
    trained level, each finite and >= 0."""
    values = [mu] if isinstance(mu, (int, float)) else list(mu)
    if len(values) == 1:
        values = values * len(LAMBDAS)
    if len(values) != len(LAMBDAS):
        raise ValueError(f"{name} takes 1 or {len(LAMBDAS)} values (one per level), not {len(values)}")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"{name} values must be finite numbers >= 0, not {values}")
    return tuple(float(v) for v in values)


def cognition_loss(bpp: torch.Tensor, c: torch.Tensor, d_local: torch.Tensor, mse: torch.Tensor,
                   idx: torch.Tensor, lam: torch.Tensor, mse_anchor: tuple[float, ...],
                   lambda_local: float, feat: torch.Tensor | None = None,
                   feature_weight: tuple[float, ...] = (0.0,) * len(LAMBDAS)) -> torch.Tensor:
    """Stage I's loss per sample, all (B,): paper Eq. 7 plus the MSE anchor and the feature term
    of level ``idx``,

        bpp + lambda_n * C + lambda_local * 255^2 * D_local + mu_n * lam * 255^2 * MSE + nu_n * D_feat

    with ``lambda_n = LAMBDAS[idx]``, ``mu_n = mse_anchor[idx]``, ``nu_n = feature_weight[idx]``
    and ``lam`` the base codec's distortion weight of the same level (``RDCModel.base_lambda``)."""
    lam_n = torch.tensor(LAMBDAS)[idx]
    mu = torch.tensor(mse_anchor)[idx]
    loss = bpp + lam_n * c + lambda_local * 255 ** 2 * d_local + mu * lam * 255 ** 2 * mse
    if feat is not None:
        loss = loss + torch.tensor(feature_weight)[idx] * feat
    return loss


def machine_loss(bpp: torch.Tensor, mse: torch.Tensor, feat: torch.Tensor, idx: torch.Tensor, lam: torch.Tensor,
                 mse_share: tuple[float, ...], feature_weight: tuple[float, ...]) -> torch.Tensor:
    """Stage ``encoder --objective machines``' loss per sample, all (B,):

        bpp + mu_n * lam * 255^2 * MSE(x_bar, x) + nu_n * D_feat(x_hat_1, x)

    at level ``idx``, with ``mu_n = mse_share[idx]``, ``nu_n = feature_weight[idx]``, ``lam`` the
    base codec's distortion weight, ``bpp`` both layers' and ``x_bar = x_hat_1 + r`` the beta = 0
    image. It is :func:`rdcodec.refine.machine_loss` at the trained levels, except that the rate and
    the MSE count the residual layer: on the base layer alone (run 26's first start) the encoder
    drifted within 1,000 steps to latents that the frozen residual branch has never seen, and
    its beta = 0 image fell to 18.9 dB at level 5 (4 Kodak images; 31.6 dB before)."""
    mu, nu = torch.tensor(mse_share)[idx], torch.tensor(feature_weight)[idx]
    return bpp + mu * lam * 255 ** 2 * mse + nu * feat


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"

    model = RDCModel(model_config(vars(args)))
    state = None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        load_matching(model, state["model"])
    elif args.init:  # take the base codec from an earlier checkpoint or shipped weights
        if args.init.endswith(".safetensors"):
            from ..weights import load

            init_state = load(args.init)[0].state_dict()
        else:
            init_state = torch.load(args.init, weights_only=False)["model"]
        has = ("space-channel" if any(k.startswith("channel_context.") for k in init_state)
               else "checkerboard" if any(k.startswith("context.") for k in init_state) else None)
        keeps = {None: True, "checkerboard": model.context is not None,
                 "space-channel": model.channel_context is not None}[has]
        if not keeps:
            raise SystemExit(f"{args.init} has a {has} context model: pass --context {has} "
                             f"(or context = \"{has}\" in the config) to keep it")
        # everything that fits: a residual stage warm-starts from the init's residual branch too
        load_matching(model, init_state)
    model = model.to(memory_format=torch.channels_last).train()
    if args.stage == "context":
        from .context import run

        if args.latent_cache is None:
            args.latent_cache = f"cache/latents-{Path(args.init or out).stem}.pt"
        run(args, model, state, out)
        return

    contrastive = backbone = None
    # stage encoder on stage I's loss: g_a and h_a learn the base layer alone for machines
    machine = args.stage == "encoder" and args.objective == "cognition"
    if args.stage == "cognition" or args.objective == "cognition":
        from .cognition import DEFAULT_BACKBONE, ContrastiveLoss, local_mse

        contrastive = ContrastiveLoss(args.backbone or DEFAULT_BACKBONE, args.queue, args.tau)
    elif args.objective == "machines" or args.stage == "head":
        from ..vision.features import FeatureBackbone
        from .cognition import DEFAULT_BACKBONE, local_mse

        backbone = FeatureBackbone.load(args.backbone or DEFAULT_BACKBONE)
    if args.stage in ("base", "cognition"):
        params = [p for n, p in model.named_parameters() if is_base_param(n) and not n.endswith("quantiles")]
    else:
        trains = {"encoder": lambda n: n.startswith(ENCODER_PREFIXES),
                  "head": lambda n: n.startswith(HEAD_PREFIXES),
                  "eye": lambda n: eye_trains(n, args.residual_decoder, args.residual_layer)}.get(
            args.stage, is_residual_param)
        for n, p in model.named_parameters():
            p.requires_grad_(trains(n))
        params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(param_groups(model, params, args.block_lr), lr=args.lr)
    peaks = [args.block_lr if g.get("blocks") else args.lr for g in opt.param_groups]
    step, elapsed = 0, 0.0
    if state is not None:
        opt.load_state_dict(state["opt"])
        step, elapsed = state["step"], state["elapsed"]

    crops = load_or_build(Path(args.cache), args.data, args.n_crops, 256)
    mix = load_or_build(Path(args.mix_cache), args.mix_data, args.mix_crops, args.mix_size) if args.mix_data else None
    n_mix = round(args.batch * args.mix_fraction) if mix is not None else 0
    gen = torch.Generator().manual_seed(args.seed + step)
    budget = args.budget_minutes * 60
    log = open(out / "log.jsonl", "a")
    stop = stop_on_sigterm()

    def save() -> None:
        save_checkpoint(ckpt_path, model, opt, step, elapsed, args)

    eval_images = []
    if args.eval_every > 0:
        try:
            eval_images = load_eval_images(args.eval_dir, args.eval_images)
        except FileNotFoundError as e:
            print(f"no in-loop evaluation: {e}", file=sys.stderr)

    def evaluate() -> None:
        t0 = time.time()
        rec = quick_eval(model, eval_images, residual=args.stage in ("residual", "encoder", "eye"))
        rec = {"event": "eval", "step": step, "elapsed_min": round(elapsed / 60, 2), **rec,
               "eval_s": round(time.time() - t0, 1)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(json.dumps(rec), flush=True)

    use_features = (contrastive is not None and any(args.feature_weight)) or backbone is not None

    def sample_losses(x: torch.Tensor, idx: torch.Tensor):
        """Per-sample (loss, bpp, mse, C, D_feat) of one batch part, all (b,): the stage's loss."""
        pixels = x.shape[-1] * x.shape[-2]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16):
            if args.stage in ("base", "cognition") or machine:
                o = model.forward_base(x, idx)
                x_hat, bpp = o["x_hat"].float(), (o["bits_y"] + o["bits_z"]) / pixels
                lam = model.base_lambda(idx)
            elif args.stage == "head":  # the frozen base's image through the head
                with torch.no_grad():
                    x_hat_1 = model.forward_base(x, idx)["x_hat"].float()
                alpha = level_alpha(idx.float())
                x_hat, bpp, lam = model.machine_image(x_hat_1, alpha).float(), torch.zeros(len(x)), None
            elif args.stage == "eye":  # the codec's beta = 0 image and P(x_hat_1) through the eye head
                # r learns too with --residual-decoder, and its bits with --residual-layer
                with torch.set_grad_enabled(args.residual_decoder or args.residual_layer):
                    o = model.forward_residual(x, idx)
                alpha = level_alpha(idx.float())
                x_hat_1 = o["x_hat_1"].float().detach()
                x_0 = x_hat_1 + o["r"].float()
                with torch.no_grad():
                    x_m = model.machine_image(x_hat_1, alpha).float()
                x_hat = model.eye_image(x_0, x_m, alpha).float()
                bpp, lam = ((o["bits_s"] / pixels, model.residual_lambda(idx)) if args.residual_layer
                            else (torch.zeros(len(x)), None))
            elif args.stage == "encoder":  # gradients through the frozen decoder into g_a and h_a
                base = model.forward_base(x, idx)
                gains_e = model.gain_e.at_levels(idx) if model.config.enhance else None
                o = model.residual_from_base(base, model.gain_s.at_levels(idx), x=x, gains_e=gains_e)
                x_hat, bpp = (o["x_hat_1"] + o["r"]).float(), (o["bits_base"] + o["bits_s"]) / pixels
                lam = model.base_lambda(idx)
            else:
                o = model.forward_residual(x, idx)
                x_hat, bpp = (o["x_hat_1"] + o["r"]).float(), o["bits_s"] / pixels
                lam = model.residual_lambda(idx)
            c = feat = torch.zeros(len(x))
            if backbone is not None:  # on the base layer's image, the one machines see
                with torch.no_grad():
                    f_ref = backbone(x)
                feat = feature_distance(backbone(x_hat if args.stage == "head" else o["x_hat_1"].float()), f_ref)
            elif use_features:
                c, feat = contrastive.with_features(x, x_hat, gen)
            elif contrastive is not None:
                c = contrastive(x, x_hat, gen)
        mse = (x_hat - x).pow(2).flatten(1).mean(1)
        if args.stage == "head":
            loss = feat + args.head_mse * mse + args.lambda_local * 255 ** 2 * local_mse(x, x_hat)
        elif args.stage == "eye" and lam is None:  # decoder side only: the bits are fixed
            loss = 255 ** 2 * mse
        elif backbone is not None:  # rdcodec.refine.machine_loss, per sample at level idx
            loss = machine_loss(bpp, mse, feat, idx, lam, args.mse_anchor, args.feature_weight)
        elif contrastive is not None:
            loss = cognition_loss(bpp, c, local_mse(x, x_hat), mse, idx, lam, args.mse_anchor, args.lambda_local,
                                  feat, args.feature_weight)
        else:
            loss = rate_weight(step, args.rate_warmup) * bpp + lam * 255 ** 2 * mse
        return loss, bpp, mse, c, feat

    def fresh() -> dict:
        """Zeroed sums of the logged means (``feat`` only in a run with the feature term)."""
        return {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "c": 0.0, **({"feat": 0.0} if use_features else {}), "n": 0}

    t_last, t_ckpt = time.time(), time.time()
    balance = LevelBalance(len(LAMBDAS)) if args.stage in ("head", "eye") and args.head_balance else None
    nonfinite = NonFiniteGuard()
    acc = fresh()
    while elapsed < budget and not stop["now"]:
        lr = lr_at(elapsed / budget, args.lr)
        for g, peak in zip(opt.param_groups, peaks):
            g["lr"] = lr_at(elapsed / budget, peak)
        xs = mixed_batch(crops, mix, args.batch, n_mix, args.crop, gen, args.mix_crop)
        idx = torch.randint(6, (args.batch,), generator=gen)
        per_sample = [sample_losses(x, i) for x, i in zip(xs, idx.split([len(x) for x in xs]))]
        loss_n, bpp, mse, c, feat = (torch.cat(t) for t in zip(*per_sample))
        loss = (loss_n * balance(loss_n, idx)).mean() if balance is not None else loss_n.mean()
        if not nonfinite(optimizer_step(opt, loss, params), step):
            continue
        step += 1
        now = time.time()
        elapsed += min(now - t_last, MAX_STEP_SECONDS)  # a paused (SIGSTOP) run does not spend its budget
        t_last = now
        acc["loss"] += loss.item()
        acc["bpp"] += bpp.mean().item()
        acc["mse"] += mse.mean().item()
        acc["c"] += c.mean().item()
        if use_features:
            acc["feat"] += feat.mean().item()
        acc["n"] += 1
        if step % args.log_every == 0:
            n = acc.pop("n")
            rec = {"step": step, "elapsed_min": round(elapsed / 60, 2), "lr": lr,
                   **{k: v / n for k, v in acc.items()}}
            rec["psnr"] = -10 * math.log10(max(rec["mse"], 1e-10))
            rec.update(nonfinite.log_fields())
            log.write(json.dumps(rec) + "\n")
            log.flush()
            acc = fresh()
        if eval_images and step % args.eval_every == 0:
            evaluate()
            t_last = time.time()  # evaluation time is not training time
        if now - t_ckpt > args.checkpoint_minutes * 60:
            save()
            t_ckpt = now
    save()
    if eval_images:
        evaluate()
    log.write(json.dumps({"step": step, "elapsed_min": round(elapsed / 60, 2), "event": "stopped"}) + "\n")
    log.close()


if __name__ == "__main__":
    main()

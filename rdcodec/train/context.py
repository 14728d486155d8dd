"""Stage ``context``: train the context model of ``y`` on a frozen base codec.

Everything but the context model (the checkerboard :class:`~rdcodec.model.context.CheckerboardContext`
and, for ``--context space-channel``, the channel groups :class:`~rdcodec.model.channel.ChannelContext`)
is frozen, so the images' latents ``y = g_a(x)`` never change and come from a cache
(:mod:`.latents`). The loss is the rate of ``y`` alone (nats -> bits per pixel of the 256²
crop): the context model only moves the means and scales of the positions it refines, so it
changes what the file costs, and the reconstruction only through their rounding offsets.

``alpha`` is drawn per sample *continuously* in [0, 1] (:meth:`GainUnit.at_alphas`), so the
model is trained on the interpolated rates that ``--alpha`` reaches, not only on the six
trained gain vectors. A new channel context gets its channel order from the latents
(:func:`rate_order`) before the first step.

``--hyper-lr`` > 0 also trains the hyper path (``h_a``, ``h_s``, the gains of ``z`` and its
factorized prior) at that peak learning rate, and the loss becomes the rate of ``y`` plus
that of ``z``: the hyperprior was trained for a codec without the context model, and with
the analysis transform and the gains of ``y`` frozen, it is still only the file's size that
moves (``y``'s symbols are the same up to their rounding offsets).

    python -m rdcodec.train --stage context --init weights/rdc-v7b.safetensors --out runs/ctx8
    python -m rdcodec.train --stage context --context space-channel --init weights/rdc-v8.safetensors --out runs/ctx9
    python -m rdcodec.train --config scripts/configs/v10-context.toml  # + --hyper-lr, from rdc-v9
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from ..model.rdc import RDCModel, bits, round_ste
from .data import load_or_build
from .latents import load_or_build_latents

CONTEXT_PREFIXES = ("context.", "channel_context.")
#: What ``--hyper-lr`` adds: the hyper path and the prior of ``z`` (not its unused quantiles).
HYPER_PREFIXES = ("h_a.", "h_s.", "gain_z.", "entropy_z.")


def is_hyper_param(name: str) -> bool:
    return name.startswith(HYPER_PREFIXES) and not name.endswith("quantiles")


@torch.no_grad()
def rate_order(model: RDCModel, latents: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Channels of ``y`` by their hyperprior rate on ``latents``, most bits first: the coding
    order of a new channel context, so that the first (small) groups carry most of the
    information the later ones are predicted from."""
    was = model.training
    model.eval()
    try:
        al = torch.full((len(latents),), alpha)
        yg, means, scales, _ = hyper_params(model, latents, al)
        _, lik = model.gaussian(yg, scales, means)
    finally:
        model.train(was)
    per_channel = -torch.log2(lik).sum(dim=(0, 2, 3))
    return torch.argsort(per_channel, descending=True)


def hyper_params(model: RDCModel, y: torch.Tensor, alpha: torch.Tensor,
                 train_hyper: bool = False) -> tuple[torch.Tensor, ...]:
    """The hyper path in float32 at per-sample rates ``alpha`` (B,): ``(y G_y, mu_h, sigma_h,
    bits_z)``, with ``bits_z`` (B,) the rate of ``z``'s symbols (additive noise in ``train()``
    mode, rounded in ``eval()``). ``z`` is rounded as in the codec, so the anchor symbols are
    the coded ones. Without ``train_hyper`` it runs without gradients (the frozen part);
    with it, ``h_a``, ``h_s``, ``G_z`` and the prior of ``z`` get gradients (rounding
    straight-through). ``G_y`` is always frozen: it sets the quantization of ``y``."""
    with torch.set_grad_enabled(train_hyper and torch.is_grad_enabled()):
        gy, _ = model.gain_y.at_alphas(alpha)
        gz, igz = model.gain_z.at_alphas(alpha)
        yg = (y * gy).detach()
        zg = model.h_a(yg) * gz
        _, z_lik = model.entropy_z(zg)
        z_hat = round_ste(zg) * igz
        return (yg, *model.h_s(z_hat, yg.shape[-2:]), bits(z_lik))


def rate_bpp(model: RDCModel, hyper: tuple[torch.Tensor, ...], bf16: bool = False,
             context: bool = True) -> torch.Tensor:
    """Bits per pixel of ``y``'s symbols (B,), from :func:`hyper_params`' result ``hyper``.

    ``context=False`` gives the hyperprior's rate alone. ``bf16`` runs only the context
    network's convolutions in bfloat16 (its outputs are added to float32 parameters). The
    likelihood is float32: in ``train()`` mode with additive noise, in ``eval()`` mode of the
    rounded symbols (the coded size).
    """
    yg, means, scales, _ = hyper
    if context:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            means, scales = model.y_context(yg, means, scales)
    _, lik = model.gaussian(yg, scales.float(), means.float())
    return bits(lik) / _pixels(yg)


def _pixels(y: torch.Tensor) -> int:
    """Image pixels of a latent (B, M, h, w): ``16 h x 16 w``."""
    return y.shape[-1] * y.shape[-2] * 256


@torch.no_grad()
def eval_rate(model: RDCModel, latents: torch.Tensor, alphas=(0.0, 0.4, 1.0)) -> dict:
    """Mean coded-size estimate (rounded symbols) of ``latents`` at a few alphas: ``y`` with
    and without the context model (the hyperprior alone is the model before this stage),
    and ``z``."""
    was = model.training
    model.eval()
    out = {"alphas": list(alphas), "bpp_y": [], "bpp_y_hyperprior": [], "bpp_z": []}
    try:
        for a in alphas:
            al = torch.full((len(latents),), float(a))
            hyper = hyper_params(model, latents, al)
            for key, ctx in (("bpp_y", True), ("bpp_y_hyperprior", False)):
                out[key].append(round(float(rate_bpp(model, hyper, context=ctx).mean()), 5))
            out["bpp_z"].append(round(float(hyper[3].mean()) / _pixels(latents), 5))
    finally:
        model.train(was)
    return out


def run(args, model: RDCModel, state: dict | None, out: Path) -> None:
    """The stage's loop; ``model`` has its weights loaded, ``state`` is a resumed checkpoint or None."""
    from .loop import MAX_STEP_SECONDS, NonFiniteGuard, lr_at, optimizer_step, save_checkpoint, stop_on_sigterm

    if model.context is None:
        raise SystemExit("stage context needs --context checkerboard or space-channel")
    ckpt_path = out / "last.pt"
    train_hyper = args.hyper_lr > 0
    # one Adam group per (parameters, peak lr): the context models, then the hyper path
    select = [(lambda n: n.startswith(CONTEXT_PREFIXES), args.lr)]
    if train_hyper:
        select.append((is_hyper_param, args.hyper_lr))
    groups = [[p for n, p in model.named_parameters() if picks(n)] for picks, _ in select]
    peaks = [peak for _, peak in select]
    params = [p for group in groups for p in group]
    chosen = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    opt = torch.optim.Adam([{"params": group} for group in groups], lr=args.lr)
    step, elapsed = 0, 0.0
    if state is not None:
        opt.load_state_dict(state["opt"])
        step, elapsed = state["step"], state["elapsed"]
    model.train()

    crops = load_or_build(Path(args.cache), args.data, args.n_crops, 256)
    latents = load_or_build_latents(Path(args.latent_cache), model, crops)
    order = model.channel_context.order if model.channel_context is not None else None
    if order is not None and torch.equal(order, torch.arange(len(order))):  # a new channel context
        order.copy_(rate_order(model, latents[:512].float()))
    n_held = max(1, min(256, len(latents) // 4))  # a fixed slice for the periodic rate check
    held_out, train_lat = latents[-n_held:].float(), latents[:-n_held]
    gen = torch.Generator().manual_seed(args.seed + step)
    budget = args.budget_minutes * 60
    log = open(out / "log.jsonl", "a")
    stop = stop_on_sigterm()

    def evaluate() -> None:
        rec = {"event": "eval", "step": step, "elapsed_min": round(elapsed / 60, 2),
               **eval_rate(model, held_out)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(json.dumps(rec), flush=True)

    if step == 0:
        evaluate()
    t_last, t_ckpt = time.time(), time.time()
    nonfinite = NonFiniteGuard()
    acc, acc_z, n_acc = 0.0, 0.0, 0
    while elapsed < budget and not stop["now"]:
        for g, peak in zip(opt.param_groups, peaks):
            g["lr"] = lr_at(elapsed / budget, peak)
        idx = torch.randint(len(train_lat), (args.batch,), generator=gen)
        y = train_lat[idx].float()
        alpha = torch.rand(args.batch, generator=gen)
        hyper = hyper_params(model, y, alpha, train_hyper=train_hyper)
        bpp = rate_bpp(model, hyper, bf16=not args.no_bf16)
        bpp_z = hyper[3] / _pixels(y)
        loss = (bpp + bpp_z).mean() if train_hyper else bpp.mean()
        if not nonfinite(optimizer_step(opt, loss, params), step):
            continue
        step += 1
        now = time.time()
        elapsed += min(now - t_last, MAX_STEP_SECONDS)
        t_last = now
        acc, acc_z, n_acc = acc + bpp.mean().item(), acc_z + bpp_z.mean().item(), n_acc + 1
        if step % args.log_every == 0:
            log.write(json.dumps({"step": step, "elapsed_min": round(elapsed / 60, 2), "lr": opt.param_groups[0]["lr"],
                                  "bpp_y": acc / n_acc, "bpp_z": acc_z / n_acc, **nonfinite.log_fields()}) + "\n")
            log.flush()
            acc, acc_z, n_acc = 0.0, 0.0, 0
        if args.eval_every > 0 and step % args.eval_every == 0:
            evaluate()
            t_last = time.time()
        if now - t_ckpt > args.checkpoint_minutes * 60:
            save_checkpoint(ckpt_path, model, opt, step, elapsed, args)
            t_ckpt = now
    save_checkpoint(ckpt_path, model, opt, step, elapsed, args)
    evaluate()
    log.write(json.dumps({"step": step, "elapsed_min": round(elapsed / 60, 2), "event": "stopped"}) + "\n")
    log.close()
    print(f"stage context stopped at step {step}", file=sys.stderr)

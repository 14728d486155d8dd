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

    python -m rdcodec.train --stage context --init weights/rdc-v7b.safetensors --out runs/ctx8
    python -m rdcodec.train --stage context --context space-channel --init weights/rdc-v8.safetensors --out runs/ctx9
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from ..model.rdc import RDCModel, bits
from .data import load_or_build
from .latents import load_or_build_latents

CONTEXT_PREFIXES = ("context.", "channel_context.")


@torch.no_grad()
def rate_order(model: RDCModel, latents: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Channels of ``y`` by their hyperprior rate on ``latents``, most bits first: the coding
    order of a new channel context, so that the first (small) groups carry most of the
    information the later ones are predicted from."""
    was = model.training
    model.eval()
    try:
        al = torch.full((len(latents),), alpha)
        yg, means, scales = hyper_params(model, latents, al)
        _, lik = model.gaussian(yg, scales, means)
    finally:
        model.train(was)
    per_channel = -torch.log2(lik).sum(dim=(0, 2, 3))
    return torch.argsort(per_channel, descending=True)


def hyper_params(model: RDCModel, y: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The frozen part, in float32 without gradients: ``(y G_y, mu_h, sigma_h)`` at per-sample
    rates ``alpha`` (B,), so the anchor symbols are the coded ones."""
    with torch.no_grad():
        gy, _ = model.gain_y.at_alphas(alpha)
        gz, igz = model.gain_z.at_alphas(alpha)
        yg = y * gy
        z_hat = torch.round(model.h_a(yg) * gz) * igz
        return (yg, *model.h_s(z_hat))


def rate_bpp(model: RDCModel, y: torch.Tensor, alpha: torch.Tensor, bf16: bool = False,
             hyper: tuple[torch.Tensor, ...] | None = None, context: bool = True) -> torch.Tensor:
    """Bits per pixel of ``y``'s symbols (B,) at per-sample rates ``alpha`` (B,).

    ``hyper`` is :func:`hyper_params`' result when already computed; ``context=False`` gives
    the hyperprior's rate alone. ``bf16`` runs only the context network's convolutions in
    bfloat16 (its outputs are added to float32 parameters). The likelihood is float32: in
    ``train()`` mode with additive noise, in ``eval()`` mode of the rounded symbols (the coded size).
    """
    yg, means, scales = hyper if hyper is not None else hyper_params(model, y, alpha)
    if context:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            means, scales = model.y_context(yg, means, scales)
    _, lik = model.gaussian(yg, scales.float(), means.float())
    return bits(lik) / (y.shape[-1] * y.shape[-2] * 256)


@torch.no_grad()
def eval_rate(model: RDCModel, latents: torch.Tensor, alphas=(0.0, 0.4, 1.0)) -> dict:
    """Mean coded-size estimate (rounded symbols) of ``latents`` at a few alphas, with and
    without the context model (the hyperprior alone is the model before this stage)."""
    was = model.training
    model.eval()
    out = {"alphas": list(alphas), "bpp_y": [], "bpp_y_hyperprior": []}
    try:
        for a in alphas:
            al = torch.full((len(latents),), float(a))
            hyper = hyper_params(model, latents, al)
            for key, ctx in (("bpp_y", True), ("bpp_y_hyperprior", False)):
                out[key].append(round(float(rate_bpp(model, latents, al, hyper=hyper, context=ctx).mean()), 5))
    finally:
        model.train(was)
    return out


def run(args, model: RDCModel, state: dict | None, out: Path) -> None:
    """The stage's loop; ``model`` has its weights loaded, ``state`` is a resumed checkpoint or None."""
    from .loop import MAX_STEP_SECONDS, lr_at, optimizer_step, save_checkpoint, stop_on_sigterm

    if model.context is None:
        raise SystemExit("stage context needs --context checkerboard or space-channel")
    ckpt_path = out / "last.pt"
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith(CONTEXT_PREFIXES))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
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
    acc, n_acc = 0.0, 0
    while elapsed < budget and not stop["now"]:
        lr = lr_at(elapsed / budget, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(len(train_lat), (args.batch,), generator=gen)
        y = train_lat[idx].float()
        alpha = torch.rand(args.batch, generator=gen)
        loss = rate_bpp(model, y, alpha, bf16=not args.no_bf16).mean()
        if not optimizer_step(opt, loss, params):
            continue
        step += 1
        now = time.time()
        elapsed += min(now - t_last, MAX_STEP_SECONDS)
        t_last = now
        acc, n_acc = acc + loss.item(), n_acc + 1
        if step % args.log_every == 0:
            log.write(json.dumps({"step": step, "elapsed_min": round(elapsed / 60, 2), "lr": lr,
                                  "bpp_y": acc / n_acc}) + "\n")
            log.flush()
            acc, n_acc = 0.0, 0
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

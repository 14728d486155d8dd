"""Many files at once: ``rdcodec encode *.png -o outdir/`` and ``rdcodec decode *.rdc -o outdir/``.

Each file is coded exactly as it would be alone (same function, same bytes: the codec's
output does not depend on thread count or process; except with latent refinement, whose
gradient steps do, ``docs/robustness.md``), in a pool of worker processes that split the
cores between them. A file that fails is reported and skipped; the others go on.

    >>> jobs = plan("encode", ["a.png", "b.png"], "out/")        # doctest: +SKIP
    >>> run("encode", jobs, {"alpha": 0.5}, workers=2)           # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

from .errors import RdcError

__all__ = ["Job", "Outcome", "Encoded", "plan", "run", "encode_file", "decode_file"]


@dataclass(frozen=True)
class Job:
    """One file to code and where its result goes."""

    input: str
    output: str


@dataclass(frozen=True)
class Outcome:
    """How one job ended."""

    job: Job
    message: str  # what was written, or why not
    ok: bool


SUFFIX = {"encode": ".rdc", "decode": ".png"}  # default output extension per command


def plan(kind: str, inputs: list[str], outdir: str) -> list[Job]:
    """Map each input to ``outdir/<stem>.rdc|.png``; refuse duplicates before anything runs."""
    suffix = SUFFIX[kind]
    if "-" in inputs:
        raise RdcError("'-' (stdin) cannot be combined with several inputs")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise RdcError(f"{outdir} is a file; with several inputs -o must be a folder")
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    for inp in inputs:
        target = str(out / (Path(inp).stem + suffix))
        if target in seen:
            raise RdcError(f"{inp} and {seen[target]} would both be written to {target}")
        seen[target] = inp
        jobs.append(Job(inp, target))
    return jobs


class Encoded(NamedTuple):
    """What :func:`encode_file` wrote and how it chose alpha."""

    data: bytes
    alpha: float
    max_bytes: int | None = None   # the byte target of --target-size / --target-bpp
    psnr: float | None = None      # PSNR at beta = 0 of the file chosen for --target-psnr


def encode_file(input: str, output: str, alpha: float = 0.5, target_size: int | None = None,
                target_bpp: float | None = None, target_psnr: float | None = None, residual: bool = True,
                weights: str | None = None, device: str = "cpu", force: bool = False,
                check_residual: bool = False, refine: int = 0,
                progress: Callable[[int, int], None] | None = None, output_filter: bool = False,
                machines: str | None = None) -> Encoded:
    """Encode one file; a target size (bytes) or bpp picks alpha by bisection on real sizes, a
    target PSNR (dB at beta = 0) by bisection on real encodes. ``refine`` steps of latent
    refinement (``progress`` follows them; for the vision network at ``machines`` when given,
    :func:`rdcodec.api.encode`) work with a given alpha only; the Wiener output filter
    (``output_filter``) with any target (every probe then fits its filter).
    """
    from .api import compress, compress_to_psnr, compress_to_size
    from .fileio import check_writable, read_input, write_atomic
    from .image import load_rgb8

    if (refine or machines) and (target_psnr is not None or target_size is not None or target_bpp is not None):
        raise RdcError("latent refinement works with a given alpha, not with a size or PSNR target")
    check_writable(output, force)
    source = read_input(input)
    max_bytes, quality = None, None
    if target_psnr is not None:
        result, alpha, quality = compress_to_psnr(source, target_psnr, residual, weights=weights, device=device,
                                                  check_residual=check_residual, output_filter=output_filter)
    elif target_size is not None:
        max_bytes = target_size
        result, alpha = compress_to_size(source, max_bytes, residual, weights=weights, device=device,
                                         check_residual=check_residual, reconstruct=False,
                                         output_filter=output_filter)
    elif target_bpp is not None:
        image = load_rgb8(source)
        max_bytes = int(target_bpp * image.shape[0] * image.shape[1] / 8)
        result, alpha = compress_to_size(image, max_bytes, residual, weights=weights, device=device,
                                         check_residual=check_residual, reconstruct=False,
                                         output_filter=output_filter)
    else:
        result = compress(source, alpha, residual, weights=weights, device=device,
                          check_residual=check_residual, reconstruct=False, refine=refine, progress=progress,
                          output_filter=output_filter, machines=machines)
    write_atomic(output, lambda f: f.write(result.data), force)
    return Encoded(result.data, alpha, max_bytes, quality)


def decode_file(input: str, output: str, beta: float | None = None, max_pixels: int = 200_000_000,
                ignore_residual_errors: bool = False, weights: str | None = None, device: str = "cpu",
                force: bool = False, predict_residual: bool = False) -> tuple[tuple[int, int], dict]:
    """Decode one file to an image whose format follows ``output``'s extension; returns (size, notes)."""
    import io

    from PIL import Image

    from .api import decoder_for
    from .fileio import check_writable, read_input, write_atomic

    Image.init()
    fmt = "PNG" if output == "-" else Image.registered_extensions().get(Path(output).suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise RdcError(f"cannot tell an image format from '{output}' (use .png, .bmp, .tif, ...)")
    check_writable(output, force)
    data = read_input(input)
    recon, notes = decoder_for(data, weights, device).decompress(data, max_pixels, ignore_residual_errors,
                                                                 predict_residual=predict_residual)
    if recon.r is None:
        notes = {**notes, "no_residual": True}  # beta cannot move this file's image
    pixels = recon.render(0.0 if beta is None else beta)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format=fmt)
    write_atomic(output, lambda f: f.write(buf.getvalue()), force)
    return (pixels.shape[1], pixels.shape[0]), notes


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _one(kind: str, job: Job, options: dict) -> Outcome:
    import warnings

    from .image import ConversionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if kind == "encode":
                enc = encode_file(job.input, job.output, **options)
                msg = f"{len(enc.data)} bytes, alpha {enc.alpha:.4f}"
                if enc.psnr is not None:
                    msg += f", PSNR {enc.psnr:.2f} dB"
            else:
                (w, h), notes = decode_file(job.input, job.output, **options)
                msg = f"{w}x{h}" + (f" (residual layer not used: {notes['residual_dropped']})" if notes else "")
        except RdcError as e:
            return Outcome(job, str(e), False)
        except ValueError as e:
            return Outcome(job, str(e), False)
    warned = "; ".join(str(w.message) for w in caught if issubclass(w.category, ConversionWarning))
    return Outcome(job, msg + (f" [warning: {warned}]" if warned else ""), True)


def run(kind: str, jobs: list[Job], options: dict, workers: int = 0,
        progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Code every job; ``workers`` processes (0: one per core, at most one per job), each with
    this process's torch thread count."""
    cores = os.cpu_count() or 1
    workers = workers or min(cores, len(jobs))
    if workers <= 1:
        outcomes = []
        for job in jobs:
            outcomes.append(_one(kind, job, options))
            if progress:
                progress(outcomes[-1])
        return outcomes
    # Same thread count as a single-file run: the entropy coding is thread-independent, but the
    # float32 synthesis can round differently with another count (+-1 in rare pixels), and
    # folder mode must give exactly the pixels of single-file mode.
    import torch

    threads = torch.get_num_threads()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(_one, kind, job, options) for job in jobs]
        outcomes = []
        for fut in as_completed(futures):
            outcomes.append(fut.result())
            if progress:
                progress(outcomes[-1])
    order = {job: i for i, job in enumerate(jobs)}
    return sorted(outcomes, key=lambda o: order[o.job])

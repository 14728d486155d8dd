"""The ``rdcodec`` command line.

Exit codes: 0 success, 1 a user-facing error (bad input, damaged file, existing output,
wrong weights), 2 a usage error (bad option), 3 an unexpected internal error (set
RDCODEC_DEBUG=1 to see its traceback).
"""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from . import __version__
from .errors import RdcError
from .image import ConversionWarning

EXIT_ERROR, EXIT_INTERNAL = 1, 3
F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"rdcodec: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """One-line messages and exit codes instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        quiet = kwargs.get("quiet", False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return fn(*args, **kwargs)
            except click.ClickException:
                raise
            except RdcError as e:
                _fail(str(e))
            except ValueError as e:
                _fail(str(e))
            except KeyboardInterrupt:
                _fail("interrupted", 130)
            except Exception as e:  # noqa: BLE001 - the last line of defence
                if os.environ.get("RDCODEC_DEBUG"):
                    raise
                _fail(f"internal error ({type(e).__name__}: {e}); set RDCODEC_DEBUG=1 for details",
                      EXIT_INTERNAL)
            finally:
                if not quiet:
                    for w in caught:
                        if issubclass(w.category, ConversionWarning):
                            click.echo(f"rdcodec: warning: {w.message}", err=True)

    return wrapper  # type: ignore[return-value]


_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000 ** 2, "KIB": 1024, "MIB": 1024 ** 2, "K": 1000, "M": 1000 ** 2}


def parse_size(text: str) -> int:
    """'20KB' -> 20000, '64KiB' -> 65536, '1500' -> 1500."""
    t = text.strip().upper().replace(" ", "")
    num = t.rstrip("KMIB")
    unit = t[len(num):]
    try:
        value = float(num) * _UNITS[unit]
    except (KeyError, ValueError):
        raise click.BadParameter(f"cannot read size '{text}' (examples: 20000, 20KB, 1.5MB, 64KiB)") from None
    if value < 1:
        raise click.BadParameter(f"size must be at least 1 byte, got '{text}'")
    return int(value)


def _common(fn: F) -> F:
    fn = click.option("--weights", type=click.Path(dir_okay=False), default=None,
                      help="Weights file (.safetensors) or the name of shipped weights (e.g. rdc-v9). "
                           "Default: the shipped default; when decoding, the shipped weights the file "
                           "was made with (for encoder weights such as rdc-v22: their decoder's).")(fn)
    fn = click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu",
                      show_default=True, help="Where the transforms run. Files are the same either way.")(fn)
    fn = click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")(fn)
    fn = click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rdcodec")
def main() -> None:
    """rdcodec - a learned image codec with rate (alpha), layer and beta controls.

    \b
    Examples:
      rdcodec encode photo.png --alpha 0.5 -o photo.rdc
      rdcodec decode photo.rdc --beta 0.25 -o photo_dec.png
      rdcodec info photo.rdc --json
      rdcodec strip photo.rdc -o photo_base.rdc
      rdcodec eval photos/ --json rd.json
    """


def _batch(kind: str, inputs: tuple[str, ...], output: str | None, options: dict[str, Any], jobs: int,
           quiet: bool) -> None:
    from .batch import Outcome, plan, run

    if output is None:
        raise click.UsageError("several inputs need -o FOLDER")
    todo = plan(kind, list(inputs), output)
    Path(output).mkdir(parents=True, exist_ok=True)
    failed = []
    with click.progressbar(length=len(todo), label=f"{kind} {len(todo)} files", file=sys.stderr,
                           hidden=quiet) as bar:
        def report(o: Outcome) -> None:
            bar.update(1)
            if not o.ok:
                failed.append(o)

        outcomes = run(kind, todo, options, jobs, report)
    if not quiet:
        for o in outcomes:
            click.echo(f"{o.job.input} -> {o.job.output}: {o.message}" if o.ok
                       else f"rdcodec: error: {o.job.input}: {o.message}", err=True)
    if failed:
        _fail(f"{len(failed)} of {len(todo)} files failed")


def _route(kind: str, inputs: tuple[str, ...], output: str | None, options: dict[str, Any], jobs: int,
           quiet: bool) -> tuple[str, str] | None:
    """Run folder mode and return None, or return the single (input, output) with the default name."""
    many = len(inputs) > 1 or (output is not None and output != "-"
                               and (output.endswith(("/", os.sep)) or Path(output).is_dir()))
    if many:
        _batch(kind, inputs, output, options, jobs, quiet)
        return None
    from .batch import SUFFIX

    input = inputs[0]
    if output is None:
        output = "-" if input == "-" else str(Path(input).with_suffix(SUFFIX[kind]))
    return input, output


_jobs = click.option("-j", "--jobs", type=click.IntRange(0), default=0, show_default=True,
                     help="Worker processes for several inputs (0: one per core).")
_verbose = click.option("-v", "--verbose", is_flag=True, help="Also print timings and the weights used.")


def _machines_source(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--machines``: a shipped network's name or an existing file (else a usage error, like a
    missing input)."""
    from .weights import is_shipped_backbone, shipped_backbones

    if value is None or Path(value).is_file() or is_shipped_backbone(value):
        return value
    names = ", ".join(shipped_backbones()) or "none"
    raise click.BadParameter(f"'{value}' does not exist as a file, and rdcodec ships no network of that name "
                             f"(shipped: {names})")


@main.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("-o", "--output", default=None,
              help="Output .rdc file ('-' for stdout), or a folder for several inputs. Default: INPUT with .rdc.")
@click.option("-a", "--alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Rate: 0 is the smallest file, 1 the best quality; any value in between.")
@click.option("--target-bpp", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Pick alpha for this many bits per pixel at most (bisection on real sizes).")
@click.option("--target-size", default=None, metavar="SIZE",
              help="Pick alpha for a file of at most SIZE: bytes, or with a unit (20KB, 1.5MB, 64KiB).")
@click.option("--target-psnr", type=click.FloatRange(min=0.0, min_open=True), default=None, metavar="DB",
              help="Pick the smallest alpha whose beta=0 decode reaches DB dB PSNR (within 0.1 dB; bisection "
                   "on real encodes, each probe costs an encode).")
@click.option("--no-residual", is_flag=True, help="Write the base layer only (machine-oriented image).")
@click.option("--check-residual", is_flag=True,
              help="Decode the file inside the encoder and drop the residual layer if it would not improve "
                   "beta=0 (about 2x the encode time; the shipped model's residual layer helped on every Kodak "
                   "image, so this is off by default).")
@click.option("--refine", type=click.IntRange(0), default=0, show_default=True, metavar="STEPS",
              help="Spend STEPS gradient steps searching this image's latent for a smaller file and a better "
                   "image (about 0.4 s per step for a Kodak image on 2 cores; 50 is a good value). Every "
                   "decoder reads the file. Works with --alpha only, on images up to 4 megapixels.")
@click.option("--machines", default=None, metavar="NETWORK", callback=_machines_source,
              help="Refine the base layer for vision networks instead: keep the feature maps of NETWORK at "
                   "about the same size and PSNR. NETWORK is 'mobilenet-v1-embedding' (shipped: the MobileNetV1 "
                   "embedding extractor that stage I trained against) or a TFLite file (which needs ai-edge-litert: "
                   "pip install 'rdcodec[cognition]'). --refine steps, when not given 20 at alpha 0 and 10 from "
                   "alpha 0.2 on (about 0.12 s a step for a 224x224 image on one core). On ImageNet it raised the "
                   "top-1 of a classifier the codec never saw at beta=1 by 2.85 points at equal rate with "
                   "rdc-v22 (docs/cognition.md); the default rdc-v32's plain files (rdc-v29's beta=1 images) "
                   "are 3.4 points above that.")
@click.option("--filter", "output_filter", is_flag=True,
              help="Fit a Wiener filter to this image's beta=0 output and write it into the residual layer "
                   "when it pays for its bytes (on Kodak about 0.25-0.37 dB more at beta=0 for 2-3% more "
                   "bytes, -6% BD-rate; about 3x the encode time). With a size or PSNR target every probe "
                   "fits its filter.")
@_jobs
@_verbose
@_common
@handle_errors
def encode(inputs: tuple[str, ...], output: str | None, alpha: float, target_bpp: float | None,
           target_size: str | None, target_psnr: float | None, no_residual: bool, check_residual: bool,
           refine: int, machines: str | None, output_filter: bool, jobs: int, verbose: bool,
           weights: str | None, device: str, force: bool, quiet: bool) -> None:
    """Compress images (PNG, JPEG, ... or '-' for stdin) to .rdc files.

    \b
    Examples:
      rdcodec encode kodim23.png                     # writes kodim23.rdc, alpha 0.5
      rdcodec encode kodim23.png -a 0.9 -o hi.rdc    # higher rate
      rdcodec encode kodim23.png --no-residual       # base layer only
      rdcodec encode kodim23.png --target-size 20KB  # largest alpha that fits
      rdcodec encode kodim23.png --target-psnr 30    # smallest alpha reaching 30 dB
      rdcodec encode kodim23.png --refine 50         # slower encode, better file
      rdcodec encode kodim23.png --filter            # per-image output filter
      rdcodec encode cat.png --machines mobilenet-v1-embedding  # for vision networks
      rdcodec encode photos/*.png -o out/            # many files, all cores, progress bar
      cat x.png | rdcodec encode - -o - > x.rdc

    On CPUs with native bfloat16 (AVX512-BF16 or AMX) the inner layers of the analysis run in
    bfloat16: a few latents round differently from float32 (rate and PSNR move by less than
    0.01% and 0.004 dB), and the file decodes anywhere. Set RDCODEC_TRANSFORMS=float32 to
    encode in float32.
    """
    import time

    from .batch import encode_file

    ctx = click.get_current_context()
    explicit_alpha = ctx.get_parameter_source("alpha") != click.core.ParameterSource.DEFAULT
    targets = [t for t in (target_bpp, target_size, target_psnr) if t is not None]
    if len(targets) > 1 or (targets and explicit_alpha):
        raise click.UsageError("give at most one of --alpha, --target-bpp, --target-size and --target-psnr")
    if (refine or machines) and targets:
        raise click.UsageError("--refine and --machines work with --alpha, not with --target-bpp, --target-size "
                               "or --target-psnr")
    steps = refine
    if machines:
        from .api import load_backbone, refinement_steps

        load_backbone(machines)  # an unreadable network fails here, before any work
        steps = refinement_steps(alpha, refine, machines)
    size = parse_size(target_size) if target_size is not None else None
    options: dict[str, Any] = {"alpha": alpha, "target_size": size, "target_bpp": target_bpp,
                               "target_psnr": target_psnr, "residual": not no_residual, "weights": weights,
                               "device": device, "force": force, "check_residual": check_residual,
                               "refine": refine, "output_filter": output_filter, "machines": machines}
    single = _route("encode", inputs, output, options, jobs, quiet)
    if single is None:
        return
    input, output = single
    t0 = time.perf_counter()
    label = f"refining the latent{' for machines' if machines else ''} ({steps} steps)"
    with click.progressbar(length=steps, label=label, file=sys.stderr,
                           hidden=quiet or not steps) as bar:
        def progress(step: int, steps: int) -> None:
            bar.update(1)

        data, alpha, max_bytes, quality = encode_file(input, output, progress=progress, **options)
    if not quiet:
        from .api import PSNR_TOLERANCE, info

        i = info(data)
        if max_bytes is not None:
            note = "" if len(data) <= max_bytes else " (the smallest file rdcodec can make)"
            click.echo(f"target {max_bytes} bytes: chose alpha {alpha:.4f} -> {len(data)} bytes{note}", err=True)
        if quality is not None and target_psnr is not None:
            note = ""
            if quality < target_psnr:
                note = " (out of reach: the best rdcodec can do)"
            elif alpha == 0.0 and quality > target_psnr + PSNR_TOLERANCE:
                note = " (already above the target at the smallest file rdcodec can make)"
            click.echo(f"target {target_psnr:g} dB: chose alpha {alpha:.4f} -> {quality:.2f} dB PSNR at beta 0, "
                       f"{i['bpp']:.4f} bpp{note}", err=True)
        if output != "-":
            click.echo(f"{output}: {i['width']}x{i['height']}, alpha {alpha:g}, {i['bytes']} bytes, "
                       f"{i['bpp']:.4f} bpp", err=True)
        if verbose:
            click.echo(f"  weights {i['weights']} ({i['weights_id']}), base {i['layers']['base']} bytes, "
                       f"residual {i['layers']['residual']} bytes, {time.perf_counter() - t0:.2f} s", err=True)


@main.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("-o", "--output", default=None,
              help="Output image, format from the extension ('-' writes PNG to stdout), or a folder for "
                   "several inputs. Default: INPUT with .png.")
@click.option("-b", "--beta", type=click.FloatRange(0.0, 1.0), default=None,
              help="0 = best fidelity (default when a residual layer is present), 1 = machine-oriented base image.")
@click.option("--max-pixels", type=click.IntRange(1), default=200_000_000, show_default=True,
              help="Refuse files that claim more pixels than this.")
@click.option("--ignore-residual-errors", is_flag=True,
              help="Decode the base layer alone when the residual layer is damaged.")
@click.option("--predict-residual", is_flag=True,
              help="For a file without its residual layer (--no-residual, stripped or dropped): render beta < 1 "
                   "with the residual the decoder predicts from the base layer, at no bits (rdc-v22 on Kodak, beta 0: "
                   "+0.26 to +0.49 dB over beta 1, -9.2%% BD-rate; with rdc-v28, whose beta 1 is its machine head's "
                   "image, the prediction is about 0.2 dB above it, level at alpha 0). Without it such a file gives "
                   "the beta = 1 image at every beta.")
@_jobs
@_verbose
@_common
@handle_errors
def decode(inputs: tuple[str, ...], output: str | None, beta: float | None, max_pixels: int,
           ignore_residual_errors: bool, predict_residual: bool, jobs: int, verbose: bool, weights: str | None,
           device: str, force: bool, quiet: bool) -> None:
    """Decompress .rdc files to images.

    \b
    Examples:
      rdcodec decode kodim23.rdc                     # writes kodim23.png at beta 0
      rdcodec decode kodim23.rdc -b 1 -o machine.png # base layer image
      rdcodec decode out/*.rdc -o decoded/           # many files, all cores
      rdcodec decode kodim23.rdc -o - > out.png
      rdcodec decode stripped.rdc --predict-residual # a base-only file toward fidelity

    On CPUs with native bfloat16 (AVX512-BF16 or AMX) the inner layers of the synthesis run in
    bfloat16: decoding is about 19% faster and PSNR moves by at most 0.002 dB. Set
    RDCODEC_TRANSFORMS=float32 to decode in float32 (or bfloat16 to force it).
    """
    import time

    from .batch import decode_file

    options: dict[str, Any] = {"beta": beta, "max_pixels": max_pixels,
                               "ignore_residual_errors": ignore_residual_errors,
                               "predict_residual": predict_residual, "weights": weights,
                               "device": device, "force": force}
    single = _route("decode", inputs, output, options, jobs, quiet)
    if single is None:
        return
    input, output = single
    t0 = time.perf_counter()
    (w, h), notes = decode_file(input, output, **options)
    if not quiet:
        if "residual_dropped" in notes:
            click.echo(f"rdcodec: warning: residual layer not used: {notes['residual_dropped']}", err=True)
        elif notes.get("no_residual") and beta is not None and beta < 1:
            click.echo(f"rdcodec: note: {input} has no residual layer, so --beta {beta:g} gives the beta = 1 "
                       "image; --predict-residual renders it toward fidelity", err=True)
        if output != "-":
            click.echo(f"{output}: {w}x{h}", err=True)
        if verbose:
            click.echo(f"  {time.perf_counter() - t0:.2f} s", err=True)


@main.command()
@click.argument("input", metavar="INPUT")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def info(input: str, as_json: bool) -> None:
    """Show the size, alpha, layers and bits per pixel of an .rdc file.

    \b
    Example:
      rdcodec info kodim23.rdc --json
    """
    from .api import info as _info
    from .fileio import read_input

    i = _info(read_input(input))
    if as_json:
        click.echo(json.dumps(i))
        return
    L, B = i["layers"], i["bpp_layers"]
    enc = f"; made by its own encoder or by {', '.join(i['encoders'])}" if i["encoders"] else ""
    click.echo(f"{input}: rdcodec format {i['format_version']}, {i['width']}x{i['height']}, "
               f"alpha {i['alpha']:.4f}, weights {i['weights'] or 'unknown'} ({i['weights_id']}{enc})")
    hl, wl = i["latent_shape"]
    click.echo(f"  latents   {hl}x{wl} on the {i['latent_grid']}-pixel grid")
    click.echo(f"  total     {i['bytes']:>10} bytes  {i['bpp']:.4f} bpp")
    for k in ("header", "base", "residual"):
        click.echo(f"  {k:<9} {L[k]:>10} bytes  {B[k]:.4f} bpp")
    if i["residual"] != "present":
        click.echo(f"  residual layer {i['residual']}" + (f": {i['residual_error']}" if "residual_error" in i else "")
                   + ("" if i["residual"] == "present" else " (decodes to the beta = 1 image; decode "
                      "--predict-residual renders it toward fidelity)"))
    flt = i.get("output_filter")
    if flt and "error" in flt:
        click.echo(f"  output filter damaged: {flt['error']}")
    elif flt:
        groups = f", {flt['groups']} direction groups" if flt["groups"] > 1 else ""
        shared = ", taps shared by the channels" if flt["shared_taps"] else ""
        click.echo(f"  output filter: diamond of radius {flt['radius']}, {flt['phases']} phase"
                   f"{'s' if flt['phases'] > 1 else ''}{groups}{shared}, {flt['bytes']} bytes of the residual layer")


@main.command()
@click.argument("input", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output .rdc file ('-' for stdout).")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@handle_errors
def strip(input: str, output: str, force: bool) -> None:
    """Drop the residual layer, keeping the base layer bit for bit.

    \b
    Example:
      rdcodec strip kodim23.rdc -o kodim23.base.rdc
    """
    from .api import strip as _strip
    from .fileio import read_input, write_atomic

    data = _strip(read_input(input))
    write_atomic(output, lambda f: f.write(data), force)


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{name} must be comma-separated numbers, got '{text}'") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise click.BadParameter(f"{name} must be values in [0, 1], got '{text}'")
    return values


@main.command("eval")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--alphas", default="0,0.25,0.5,0.75,1", show_default=True, help="Comma-separated alpha values.")
@click.option("--betas", default="0,1", show_default=True, help="Comma-separated beta values.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the rows and CompressAI-style curves (one per beta) to this JSON file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PSNR-vs-bpp plot (PNG, needs matplotlib).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV with columns 'file' and 'class_index' (ImageNet) to measure accuracy too.")
@click.option("--classifier", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TFLite classifier for --labels (needs ai-edge-litert), e.g. mobilenet_v2_1.0_224_quant.tflite.")
@_common
@handle_errors
def evaluate(folder: str, alphas: str, betas: str, json_path: str | None, plot_path: str | None, labels: str | None,
             classifier: str | None, weights: str | None, device: str, force: bool, quiet: bool) -> None:
    """Measure bpp, PSNR and MS-SSIM (and accuracy) on a folder of your images.

    \b
    Examples:
      rdcodec eval photos/
      rdcodec eval photos/ --alphas 0,0.5,1 --betas 0,0.5,1 --json rd.json --plot rd.png
      rdcodec eval imagenet/ --labels imagenet/labels.csv --classifier mobilenet_v2_1.0_224_quant.tflite
    """
    from .eval.evaluate import evaluate_folder, list_images, to_compressai_json
    from .fileio import check_writable, write_atomic

    a_list, b_list = _floats(alphas, "--alphas"), _floats(betas, "--betas")
    if (labels is None) != (classifier is None):
        raise click.UsageError("--labels and --classifier go together")
    for path in (json_path, plot_path):
        if path:
            check_writable(path, force)
    label_map, clf = None, None
    if labels and classifier:
        import csv

        with open(labels, newline="") as f:
            try:
                label_map = {r["file"]: int(r["class_index"]) for r in csv.DictReader(f)}
            except (KeyError, ValueError):
                raise RdcError(f"{labels}: needs columns 'file' and 'class_index' (integers)") from None
        try:
            from .vision.reference import Classifier
        except ImportError:
            raise RdcError("--classifier needs ai-edge-litert: pip install 'rdcodec[cognition]'") from None
        clf = Classifier(classifier).top5
    n = len(list_images(folder))
    with click.progressbar(length=n, label=f"evaluating {n} images", file=sys.stderr,
                           hidden=quiet) as bar:
        rows = evaluate_folder(folder, a_list, b_list, weights=weights, device=device, labels=label_map,
                               classifier=clf, progress=lambda i, total: bar.update(1))
    cols = [c for c in ("bpp", "psnr-rgb", "ms-ssim-rgb", "top1", "top5") if c in rows[0]]
    click.echo(f"{'alpha':>6} {'beta':>5} " + " ".join(f"{c:>11}" for c in cols))
    for r in rows:
        click.echo(f"{r['alpha']:>6.3f} {r['beta']:>5.2f} " + " ".join(f"{r[c]:>11.4f}" for c in cols))
    if json_path:
        doc = {"folder": str(folder), "rows": rows,
               "curves": [to_compressai_json(rows, b, f"rdcodec-beta{b:g}") for b in b_list]}
        write_atomic(json_path, lambda f: f.write(json.dumps(doc, indent=1).encode()), force)
    if plot_path:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise RdcError("--plot needs matplotlib: pip install matplotlib") from None
        fig, ax = plt.subplots(figsize=(6, 4))
        for b in b_list:
            c = to_compressai_json(rows, b, "")["results"]
            ax.plot(c["bpp"], c["psnr-rgb"], "-o", ms=3, label=f"beta {b:g}")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        write_atomic(plot_path, lambda f: f.write(buf.getvalue()), force)


if __name__ == "__main__":
    main()

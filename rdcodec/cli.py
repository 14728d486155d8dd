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
from pathlib import Path

import click
from PIL import Image

from . import __version__
from .errors import RdcError
from .image import ConversionWarning

EXIT_ERROR, EXIT_INTERNAL = 1, 3


def _fail(message: str, code: int = EXIT_ERROR):
    click.echo(f"rdcodec: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn):
    """One-line messages and exit codes instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
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

    return wrapper


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


def _common(fn):
    fn = click.option("--weights", type=click.Path(dir_okay=False), default=None,
                      help="Weights file (.safetensors). Default: the shipped weights.")(fn)
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
    """


@main.command()
@click.argument("input", metavar="INPUT")
@click.option("-o", "--output", default=None, help="Output .rdc file ('-' for stdout). Default: INPUT with .rdc.")
@click.option("-a", "--alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Rate: 0 is the smallest file, 1 the best quality; any value in between.")
@click.option("--target-bpp", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Pick alpha for this many bits per pixel at most (bisection on real sizes).")
@click.option("--target-size", default=None, metavar="SIZE",
              help="Pick alpha for a file of at most SIZE: bytes, or with a unit (20KB, 1.5MB, 64KiB).")
@click.option("--no-residual", is_flag=True, help="Write the base layer only (machine-oriented image).")
@_common
@handle_errors
def encode(input, output, alpha, target_bpp, target_size, no_residual, weights, device, force, quiet):
    """Compress an image (PNG, JPEG, ... or '-' for stdin) to an .rdc file.

    \b
    Examples:
      rdcodec encode kodim23.png                     # writes kodim23.rdc, alpha 0.5
      rdcodec encode kodim23.png -a 0.9 -o hi.rdc    # higher rate
      rdcodec encode kodim23.png --no-residual       # base layer only
      rdcodec encode kodim23.png --target-size 20KB  # largest alpha that fits
      cat x.png | rdcodec encode - -o - > x.rdc
    """
    from .api import compress

    if output is None:
        output = "-" if input == "-" else str(Path(input).with_suffix(".rdc"))
    from .fileio import check_writable, read_input, write_atomic

    ctx = click.get_current_context()
    explicit_alpha = ctx.get_parameter_source("alpha") != click.core.ParameterSource.DEFAULT
    targets = [t for t in (target_bpp, target_size) if t is not None]
    if len(targets) > 1 or (targets and explicit_alpha):
        raise click.UsageError("give at most one of --alpha, --target-bpp and --target-size")
    check_writable(output, force)
    source = read_input(input)
    if targets:
        from .api import get_codec
        from .image import load_rgb8

        image = load_rgb8(source)
        max_bytes = (parse_size(target_size) if target_size is not None
                     else int(target_bpp * image.shape[0] * image.shape[1] / 8))
        result, alpha = get_codec(weights, device).compress_to_size(image, max_bytes, not no_residual)
        if not quiet:
            got = len(result.data)
            note = "" if got <= max_bytes else " (the smallest file rdcodec can make)"
            click.echo(f"target {max_bytes} bytes: chose alpha {alpha:.4f} -> {got} bytes{note}", err=True)
    else:
        result = compress(source, alpha, not no_residual, weights=weights, device=device)
    write_atomic(output, lambda f: f.write(result.data), force)
    if not quiet and output != "-":
        from .api import info

        i = info(result.data)
        click.echo(f"{output}: {i['width']}x{i['height']}, alpha {alpha:g}, {i['bytes']} bytes, "
                   f"{i['bpp']:.4f} bpp", err=True)


@main.command()
@click.argument("input", metavar="INPUT")
@click.option("-o", "--output", default=None,
              help="Output image; format from the extension ('-' writes PNG to stdout). Default: INPUT with .png.")
@click.option("-b", "--beta", type=click.FloatRange(0.0, 1.0), default=None,
              help="0 = best fidelity (default when a residual layer is present), 1 = machine-oriented base image.")
@click.option("--max-pixels", type=click.IntRange(1), default=200_000_000, show_default=True,
              help="Refuse files that claim more pixels than this.")
@click.option("--ignore-residual-errors", is_flag=True,
              help="Decode the base layer alone when the residual layer is damaged.")
@_common
@handle_errors
def decode(input, output, beta, max_pixels, ignore_residual_errors, weights, device, force, quiet):
    """Decompress an .rdc file to an image.

    \b
    Examples:
      rdcodec decode kodim23.rdc                     # writes kodim23.png at beta 0
      rdcodec decode kodim23.rdc -b 1 -o machine.png # base layer image
      rdcodec decode kodim23.rdc -o - > out.png
    """
    from .api import get_codec
    from .fileio import check_writable, read_input, write_atomic

    if output is None:
        output = "-" if input == "-" else str(Path(input).with_suffix(".png"))
    Image.init()
    fmt = "PNG" if output == "-" else Image.registered_extensions().get(Path(output).suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise RdcError(f"cannot tell an image format from '{output}' (use .png, .bmp, .tif, ...)")
    check_writable(output, force)
    data = read_input(input)
    recon, notes = get_codec(weights, device).decompress(data, max_pixels, ignore_residual_errors)
    pixels = recon.render(0.0 if beta is None else beta)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format=fmt)
    write_atomic(output, lambda f: f.write(buf.getvalue()), force)
    if not quiet:
        if "residual_dropped" in notes:
            click.echo(f"rdcodec: warning: residual layer not used: {notes['residual_dropped']}", err=True)
        if output != "-":
            click.echo(f"{output}: {pixels.shape[1]}x{pixels.shape[0]}", err=True)


@main.command()
@click.argument("input", metavar="INPUT")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def info(input, as_json):
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
    click.echo(f"{input}: rdcodec format {i['format_version']}, {i['width']}x{i['height']}, "
               f"alpha {i['alpha']:.4f}, weights {i['weights'] or 'unknown'} ({i['weights_id']})")
    click.echo(f"  total     {i['bytes']:>10} bytes  {i['bpp']:.4f} bpp")
    for k in ("header", "base", "residual"):
        click.echo(f"  {k:<9} {L[k]:>10} bytes  {B[k]:.4f} bpp")
    if i["residual"] != "present":
        click.echo(f"  residual layer {i['residual']}" + (f": {i['residual_error']}" if "residual_error" in i else ""))


@main.command()
@click.argument("input", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output .rdc file ('-' for stdout).")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@handle_errors
def strip(input, output, force):
    """Drop the residual layer, keeping the base layer bit for bit.

    \b
    Example:
      rdcodec strip kodim23.rdc -o kodim23.base.rdc
    """
    from .api import strip as _strip
    from .fileio import read_input, write_atomic

    data = _strip(read_input(input))
    write_atomic(output, lambda f: f.write(data), force)


if __name__ == "__main__":
    main()

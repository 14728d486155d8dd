"""Safe output: write to a temporary file beside the target, then rename.

An interrupted or failing run never leaves a partial file, and an existing file is only
replaced when the caller says so.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import RdcError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process's umask, read once at import (reading it means setting it, which is not thread-safe).
_UMASK = _read_umask()


def _output_mode(target: Path) -> int:
    """What a plain ``open(target, "wb")`` would leave: an existing file's mode, else 0o666 less the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


class OutputExistsError(RdcError):
    """The output file exists and overwriting was not allowed."""


def check_writable(path: str, force: bool) -> None:
    if path != "-" and Path(path).exists() and not force:
        raise OutputExistsError(f"{path} exists; use --force to overwrite it")
    if path != "-" and not Path(path).resolve().parent.is_dir():
        raise RdcError(f"output folder does not exist: {Path(path).parent}")


def write_atomic(path: str, writer: Callable[[BinaryIO], object], force: bool = False) -> None:
    """Call ``writer(fileobj)`` on a temporary file and move it to ``path`` when it succeeds.

    The file gets the permissions a plain write would give it (the temporary file is private
    while it is written): an overwritten file keeps its mode, a new one follows the umask.
    """
    if path == "-":
        writer(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    check_writable(path, force)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.resolve().parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
        with contextlib.suppress(OSError):  # e.g. a FAT or network mount that refuses chmod
            os.chmod(tmp, _output_mode(target))
        if not force and target.exists():
            raise OutputExistsError(f"{path} appeared while writing; use --force to overwrite it")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise RdcError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise RdcError(f"{path} is a folder, not a file") from None
    except OSError as e:
        raise RdcError(f"cannot read {path}: {e.strerror}") from None

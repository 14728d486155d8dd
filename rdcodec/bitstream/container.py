"""The ``.rdc`` container: a fixed 36-byte header, then the base layer, then the residual layer.

Layout (all integers little-endian; see ``docs/format.md``)::

    offset size  field
     0     4     magic            b"\\x8bRDC"
     4     1     version          1; 2 or 3 when flag bit 1 is set; 4 for the 32-pixel latent grid
                                  (FORMAT_VERSION is the newest read)
     5     1     flags            bit 0: a residual layer was written
                                  bit 1: the residual layer starts with an output filter (versions 2-4;
                                  3 and 4 allow the filter's direction classes and shared taps)
     6     4     weights_id       first 4 bytes of the SHA-256 of the weights file
    10     2     width            1..65535
    12     2     height           1..65535
    14     2     alpha_q          alpha = alpha_q / 65535
    16     4     base_len         bytes of the base layer
    20     4     base_crc         CRC-32 of the base layer
    24     4     residual_len     bytes of the residual layer (0 when absent)
    28     4     residual_crc     CRC-32 of the residual layer
    32     4     header_crc       CRC-32 of bytes 0..31
    36     ...   base layer: varint len(z string), z string, y string
    ...    ...   residual layer: s string, or with flag bit 1
                   varint len(filter), filter (``rdcodec.wiener``), s string

The latents lie on a grid the header implies (:func:`latent_size`): versions 1 to 3 pad the
image to a multiple of 64 pixels, version 4 to a multiple of 32 (so the latent's sides stay even,
as the checkerboard's coding form needs). The encoder uses the 32-pixel grid and writes
version 4 only when it differs from the 64-pixel one for the image's size
(:func:`fine_grid_differs`); otherwise the file is what earlier rdcodec wrote.

A file that ends exactly after the base layer is a valid base-only file (the residual
layer was cut off, e.g. by a server that only sends the first layer), so the base layer
is decodable from a prefix of the file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import CorruptError, NotRdcError, VersionError

MAGIC = b"\x8bRDC"
FORMAT_VERSION = 4
FLAG_RESIDUAL = 0x01
FLAG_FILTER = 0x02
# the flag bits each version may set
_FLAGS = {1: FLAG_RESIDUAL, 2: FLAG_RESIDUAL | FLAG_FILTER, 3: FLAG_RESIDUAL | FLAG_FILTER,
          4: FLAG_RESIDUAL | FLAG_FILTER}
#: Pixels per latent position (the analysis transform downsamples by 16).
LATENT_STRIDE = 16
#: The image is padded to a multiple of GRID pixels (version 4) or COARSE_GRID (versions 1-3,
#: four latent positions per hyper-latent position).
GRID, COARSE_GRID = 32, 64
GRID_VERSION = 4
_HEADER = struct.Struct("<4sBBIHHHIIIII")
HEADER_SIZE = _HEADER.size  # 36
ALPHA_STEPS = 65535


@dataclass(frozen=True)
class Header:
    """The fields of the 36-byte header (see the layout above)."""

    weights_id: int
    width: int
    height: int
    alpha_q: int
    base_len: int
    base_crc: int
    residual_len: int = 0
    residual_crc: int = 0
    flags: int = 0
    version: int = FORMAT_VERSION

    @property
    def alpha(self) -> float:
        """The rate control in [0, 1], as stored (16 bits)."""
        return self.alpha_q / ALPHA_STEPS

    @property
    def has_residual(self) -> bool:
        """Whether the encoder wrote a residual layer (it may since have been cut off)."""
        return bool(self.flags & FLAG_RESIDUAL)

    @property
    def has_filter(self) -> bool:
        """Whether the residual layer starts with a Wiener output filter (``rdcodec.wiener``)."""
        return bool(self.flags & FLAG_FILTER)

    @property
    def grid(self) -> int:
        """The padding grid of the latents: :data:`GRID` from version 4, else :data:`COARSE_GRID`."""
        return GRID if self.version >= GRID_VERSION else COARSE_GRID

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(h, w) of the latent ``y`` (:func:`latent_size` of the height and width)."""
        return latent_size(self.height, self.grid), latent_size(self.width, self.grid)

    @property
    def hyper_shape(self) -> tuple[int, int]:
        """(h, w) of the hyper-latent ``z``: a quarter of :attr:`latent_shape`, rounded up."""
        return tuple(-(-n // 4) for n in self.latent_shape)


@dataclass(frozen=True)
class RdcFile:
    """A verified file split into its layers."""

    header: Header
    base: bytes
    residual: bytes | None        # None when absent, cut off or dropped
    residual_error: str | None = None   # why a declared residual layer is not returned


def quantize_alpha(alpha: float) -> int:
    """Alpha in [0, 1] -> the 16-bit ``alpha_q`` stored in the header."""
    return int(round(alpha * ALPHA_STEPS))


def latent_size(n: int, grid: int = GRID) -> int:
    """Latent positions along a side of ``n`` pixels padded to a multiple of ``grid``.

    >>> latent_size(224), latent_size(224, COARSE_GRID), latent_size(500), latent_size(500, COARSE_GRID)
    (14, 16, 32, 32)
    >>> latent_size(136), latent_size(136, COARSE_GRID)
    (10, 12)
    """
    return -(-n // grid) * grid // LATENT_STRIDE


def fine_grid_differs(width: int, height: int) -> bool:
    """Whether the 32-pixel grid gives other latent sizes than the 64-pixel one for this image
    (then its file must be version 4; otherwise both grids are the same and it need not be)."""
    return any(latent_size(n) != latent_size(n, COARSE_GRID) for n in (width, height))


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def pack(weights_id: int, width: int, height: int, alpha_q: int, base: bytes,
         residual: bytes | None, output_filter: bytes | None = None, filter_version: int = 2,
         grid: int = GRID) -> bytes:
    """Assemble a file from its layers, coded on the latent ``grid`` (:data:`GRID` or
    :data:`COARSE_GRID`); ``output_filter`` (serialized, ``rdcodec.wiener``) goes at the start of
    the residual layer and makes the file ``filter_version`` (2, or 3 for a filter with classes
    or shared taps: ``OutputFilter.format_version``). Without it the file is version 1, byte for
    byte what rdcodec wrote before version 2 existed; either way it is version 4 when ``grid`` is
    :data:`GRID` and that differs from the coarse grid for this size (:func:`fine_grid_differs`)."""
    if not (1 <= width <= 0xFFFF and 1 <= height <= 0xFFFF):
        raise ValueError(f"image size {width}x{height} is outside 1..65535")
    if output_filter is not None and residual is None:
        raise ValueError("an output filter belongs to the residual layer; there is none")
    if filter_version not in (2, 3):
        raise ValueError(f"an output filter is written in format version 2 or 3, not {filter_version}")
    if grid not in (GRID, COARSE_GRID):
        raise ValueError(f"the latent grid is {GRID} or {COARSE_GRID} pixels, not {grid}")
    flags = FLAG_RESIDUAL if residual is not None else 0
    version = 1
    if output_filter is not None:
        residual, flags, version = join_strings(output_filter, residual), flags | FLAG_FILTER, filter_version
    if grid == GRID and fine_grid_differs(width, height):
        version = GRID_VERSION
    res = residual or b""
    head = _HEADER.pack(MAGIC, version, flags, weights_id, width, height, alpha_q,
                        len(base), _crc(base), len(res), _crc(res) if residual is not None else 0, 0)
    head = head[:-4] + struct.pack("<I", _crc(head[:-4]))
    return head + base + res


def parse_header(data: bytes) -> Header:
    """Parse and verify the header only (cheap; used by ``rdcodec info``)."""
    if len(data) < len(MAGIC) or data[:4] != MAGIC:
        raise NotRdcError("not an rdcodec file (wrong magic bytes)")
    if len(data) < HEADER_SIZE:
        raise CorruptError(f"file truncated inside the header ({len(data)} of {HEADER_SIZE} bytes)")
    (_, version, flags, wid, width, height, alpha_q,
     base_len, base_crc, res_len, res_crc, head_crc) = _HEADER.unpack_from(data)
    if version not in _FLAGS:
        raise VersionError(f"format version {version} is not supported "
                           f"(this rdcodec reads versions 1 to {FORMAT_VERSION})")
    if _crc(data[:HEADER_SIZE - 4]) != head_crc:
        raise CorruptError("header checksum mismatch (the file is damaged)")
    if width == 0 or height == 0 or flags & ~_FLAGS[version]:
        raise CorruptError("header fields are invalid")
    if not flags & FLAG_RESIDUAL and (res_len or res_crc or flags & FLAG_FILTER):
        raise CorruptError("header declares a residual layer length without the residual flag")
    return Header(wid, width, height, alpha_q, base_len, base_crc, res_len, res_crc, flags, version)


def unpack(data: bytes, ignore_residual_errors: bool = False) -> RdcFile:
    """Split a file into verified layers.

    A file cut exactly after the base layer is base-only. With ``ignore_residual_errors``
    a damaged residual layer is dropped (reason in ``residual_error``) instead of raising.
    """
    h = parse_header(data)
    end_base = HEADER_SIZE + h.base_len
    if len(data) < end_base:
        raise CorruptError(f"file truncated inside the base layer ({len(data)} of {end_base} bytes)")
    base = data[HEADER_SIZE:end_base]
    if _crc(base) != h.base_crc:
        raise CorruptError("base layer checksum mismatch (the file is damaged)")
    rest = data[end_base:]
    if not h.has_residual:
        if rest:
            raise CorruptError(f"{len(rest)} unexpected bytes after the base layer")
        return RdcFile(h, base, None)
    if not rest:
        return RdcFile(h, base, None, "the file ends after the base layer")
    problem = None
    if len(rest) != h.residual_len:
        problem = f"residual layer is {len(rest)} bytes, header says {h.residual_len}"
    elif _crc(rest) != h.residual_crc:
        problem = "residual layer checksum mismatch (the file is damaged)"
    if problem is None:
        return RdcFile(h, base, rest)
    if not ignore_residual_errors:
        raise CorruptError(problem + "; --ignore-residual-errors decodes the base layer alone")
    return RdcFile(h, base, None, problem)


def base_only_size(data: bytes) -> int:
    """Bytes of ``data`` without its residual layer (header + base): what a stripped file costs."""
    return HEADER_SIZE + parse_header(data).base_len


def strip_residual(data: bytes) -> bytes:
    """The same file without its residual layer (losslessly: the base layer is untouched). It keeps
    the file's latent grid, so a version-4 file stays version 4; the others become version 1."""
    f = unpack(data)
    h = f.header
    return pack(h.weights_id, h.width, h.height, h.alpha_q, f.base, None, grid=h.grid)


# -- base layer: two range-coded strings, z first ---------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def join_strings(z: bytes, y: bytes) -> bytes:
    """The base layer: varint length of the z string, the z string, then the y string."""
    return _varint(len(z)) + z + y


def split_strings(base: bytes, layer: str = "base layer", first: str = "z") -> tuple[bytes, bytes]:
    """Inverse of :func:`join_strings`: (z string, y string); raises ``CorruptError`` if malformed.

    The residual layer of a file with an output filter (versions 2 to 4) has the same form, (output filter, s string):
    ``layer`` and ``first`` name the parts in the error messages."""
    n, shift, i = 0, 0, 0
    while True:
        if i >= len(base) or shift > 28:
            raise CorruptError(f"{layer} is malformed (bad {first} length)")
        b = base[i]
        n |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            break
    if i + n > len(base):
        raise CorruptError(f"{layer} is malformed ({first} longer than the layer)")
    return base[i:i + n], base[i + n:]

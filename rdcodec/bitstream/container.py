"""The ``.rdc`` container: a header, then the base layer, then the residual layer.

Version 5 (what rdcodec writes) has a compact header of 19 to 36 bytes (22 for a 224 x 224 file
without a residual layer, 28 for a Kodak file with one); versions 1 to 4 have a fixed 36-byte
one. Both start with the magic bytes and the version, so a reader that knows neither layout
still refuses a file by its version number.

Version 5 (integers little-endian, varints LEB128 as in :func:`join_strings`)::

    offset size  field
     0     4     magic            b"\x8bRDC"
     4     1     version          5
     5     1     flags            as below (bit 0 residual layer, bit 1 output filter)
     6     4     weights_id       first 4 bytes of the SHA-256 of the weights file
    10     2     alpha_q          alpha = alpha_q / 65535
    12     ...   varint width, varint height (1..65535), varint base_len
                 with flag bit 0: varint residual_len, then 4 bytes residual_crc (CRC-32)
    ...    4     crc              CRC-32 of the header bytes before it *and* the base layer
    ...    ...   base layer, residual layer: as in versions 1 to 4

The latents always lie on the 32-pixel grid. One checksum covers the header and the base layer
(22 bytes for a 224 x 224 file without a residual layer, 14 less than versions 1-4: 1.2% of such
a file at alpha 0); the residual layer keeps its own, so a damaged residual layer can still be
dropped and the base decoded.

Versions 1 to 4 (read, and written for stripping such a file; all integers little-endian)::

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
as the checkerboard's coding form needs). rdcodec before version 5 used the 32-pixel grid and
wrote version 4 only when it differs from the 64-pixel one for the image's size
(:func:`fine_grid_differs`), so those files read with still earlier rdcodec. Version 5 is
always on the 32-pixel grid.

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
FORMAT_VERSION = 5
#: The version with the compact header (what :func:`pack` writes by default).
COMPACT_VERSION = 5
FLAG_RESIDUAL = 0x01
FLAG_FILTER = 0x02
# the flag bits each version may set
_FLAGS = {1: FLAG_RESIDUAL, 2: FLAG_RESIDUAL | FLAG_FILTER, 3: FLAG_RESIDUAL | FLAG_FILTER,
          4: FLAG_RESIDUAL | FLAG_FILTER, 5: FLAG_RESIDUAL | FLAG_FILTER}
#: Pixels per latent position (the analysis transform downsamples by 16).
LATENT_STRIDE = 16
#: The image is padded to a multiple of GRID pixels (version 4) or COARSE_GRID (versions 1-3,
#: four latent positions per hyper-latent position).
GRID, COARSE_GRID = 32, 64
GRID_VERSION = 4
_HEADER = struct.Struct("<4sBBIHHHIIIII")
#: Bytes of the fixed header of versions 1 to 4 (version 5's: :attr:`Header.size`).
HEADER_SIZE = _HEADER.size  # 36
_COMPACT = struct.Struct("<4sBBIH")  # magic, version, flags, weights_id, alpha_q; then varints
ALPHA_STEPS = 65535


@dataclass(frozen=True)
class Header:
    """The fields of the header (see the layouts above); ``size`` is its length in bytes."""

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
    size: int = HEADER_SIZE

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
         grid: int = GRID, compact: bool = True) -> bytes:
    """Assemble a file from its layers; ``output_filter`` (serialized, ``rdcodec.wiener``) goes at
    the start of the residual layer.

    ``compact`` (the default): a version-5 file, whose latents lie on the 32-pixel ``grid``.
    Otherwise the fixed header of versions 1 to 4, as earlier rdcodec wrote it (to strip such a
    file without changing its version): coded on ``grid`` (:data:`GRID` or :data:`COARSE_GRID`),
    version ``filter_version`` with a filter (2, or 3 for a filter with classes or shared taps:
    ``OutputFilter.format_version``), else version 1, and version 4 when ``grid`` is :data:`GRID`
    and that differs from the coarse grid for this size (:func:`fine_grid_differs`)."""
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
    if compact:
        if grid != GRID:
            raise ValueError(f"format version {COMPACT_VERSION} codes on the {GRID}-pixel grid only")
        return _compact_header(weights_id, width, height, alpha_q, base, residual, flags) + base + (residual or b"")
    if grid == GRID and fine_grid_differs(width, height):
        version = GRID_VERSION
    res = residual or b""
    head = _HEADER.pack(MAGIC, version, flags, weights_id, width, height, alpha_q,
                        len(base), _crc(base), len(res), _crc(res) if residual is not None else 0, 0)
    head = head[:-4] + struct.pack("<I", _crc(head[:-4]))
    return head + base + res


def _compact_header(weights_id: int, width: int, height: int, alpha_q: int, base: bytes,
                    residual: bytes | None, flags: int) -> bytes:
    head = _COMPACT.pack(MAGIC, COMPACT_VERSION, flags, weights_id, alpha_q)
    head += _varint(width) + _varint(height) + _varint(len(base))
    if residual is not None:
        head += _varint(len(residual)) + struct.pack("<I", _crc(residual))
    return head + struct.pack("<I", zlib.crc32(base, zlib.crc32(head)) & 0xFFFFFFFF)


def compact_header_size(width: int, height: int, base_len: int, residual_len: int | None) -> int:
    """Bytes of a version-5 header (``residual_len`` None: no residual layer).

    >>> compact_header_size(224, 224, 1200, None), compact_header_size(768, 512, 7000, 300)
    (22, 28)
    """
    varints = (width, height, base_len) + (() if residual_len is None else (residual_len,))
    return _COMPACT.size + sum(len(_varint(n)) for n in varints) + (4 if residual_len is not None else 0) + 4


def _read_varint(data: bytes, i: int, truncated: str, invalid: str) -> tuple[int, int]:
    """(value, next offset) of the varint (:func:`_varint`) at ``data[i]``; ``CorruptError`` with the
    message ``truncated`` when ``data`` ends inside it, ``invalid`` when it runs past 35 bits."""
    n, shift = 0, 0
    while True:
        if i >= len(data):
            raise CorruptError(truncated)
        if shift > 28:
            raise CorruptError(invalid)
        b = data[i]
        n |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return n, i


def _parse_compact(data: bytes) -> Header:
    """Version 5: parse the header and verify it together with the base layer."""
    if len(data) < _COMPACT.size:
        raise CorruptError(f"file truncated inside the header ({len(data)} bytes)")
    _, version, flags, wid, alpha_q = _COMPACT.unpack_from(data)
    i = _COMPACT.size
    truncated = f"file truncated inside the header ({len(data)} bytes)"
    width, i = _read_varint(data, i, truncated, "header fields are invalid (bad width)")
    height, i = _read_varint(data, i, truncated, "header fields are invalid (bad height)")
    base_len, i = _read_varint(data, i, truncated, "header fields are invalid (bad base layer length)")
    res_len = res_crc = 0
    if flags & FLAG_RESIDUAL:
        res_len, i = _read_varint(data, i, truncated, "header fields are invalid (bad residual layer length)")
        if len(data) < i + 4:
            raise CorruptError(truncated)
        res_crc, i = struct.unpack_from("<I", data, i)[0], i + 4
    size = i + 4
    if len(data) < size + base_len:
        raise CorruptError(f"file truncated inside the header or the base layer ({len(data)} of "
                           f"{size + base_len} bytes), or its header is damaged")
    crc = struct.unpack_from("<I", data, i)[0]
    if zlib.crc32(data[size:size + base_len], zlib.crc32(data[:i])) & 0xFFFFFFFF != crc:
        raise CorruptError("header or base layer checksum mismatch (the file is damaged)")
    if not (1 <= width <= 0xFFFF and 1 <= height <= 0xFFFF) or flags & ~_FLAGS[version]:
        raise CorruptError("header fields are invalid")
    if flags & FLAG_FILTER and not flags & FLAG_RESIDUAL:
        raise CorruptError("header declares an output filter without the residual flag")
    return Header(wid, width, height, alpha_q, base_len, crc, res_len, res_crc, flags, version, size)


def parse_header(data: bytes) -> Header:
    """Parse and verify the header (cheap; used by ``rdcodec info``). Version 5's checksum also
    covers the base layer, so for it ``data`` must hold the base layer too."""
    if len(data) < len(MAGIC) or data[:4] != MAGIC:
        raise NotRdcError("not an rdcodec file (wrong magic bytes)")
    if len(data) > 4 and data[4] == COMPACT_VERSION:
        return _parse_compact(data)
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
    end_base = h.size + h.base_len
    if len(data) < end_base:
        raise CorruptError(f"file truncated inside the base layer ({len(data)} of {end_base} bytes)")
    base = data[h.size:end_base]
    if h.version != COMPACT_VERSION and _crc(base) != h.base_crc:  # version 5: checked with the header
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
    """Bytes of ``data`` without its residual layer: what :func:`strip_residual` gives."""
    h = parse_header(data)
    if h.version == COMPACT_VERSION:
        return compact_header_size(h.width, h.height, h.base_len, None) + h.base_len
    return HEADER_SIZE + h.base_len


def strip_residual(data: bytes) -> bytes:
    """The same file without its residual layer (losslessly: the base layer is untouched). It keeps
    the file's header layout and latent grid: a version-5 file stays version 5, a version-4 file
    version 4, and the others become version 1."""
    f = unpack(data)
    h = f.header
    return pack(h.weights_id, h.width, h.height, h.alpha_q, f.base, None, grid=h.grid,
                compact=h.version == COMPACT_VERSION)


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

    The residual layer of a file with an output filter (versions 2 to 5) has the same form, (output filter, s string):
    ``layer`` and ``first`` name the parts in the error messages."""
    bad = f"{layer} is malformed (bad {first} length)"
    n, i = _read_varint(base, 0, bad, bad)
    if i + n > len(base):
        raise CorruptError(f"{layer} is malformed ({first} longer than the layer)")
    return base[i:i + n], base[i + n:]

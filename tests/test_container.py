import struct

import pytest

from rdcodec.bitstream import container as c
from rdcodec.errors import CorruptError, NotRdcError, VersionError

BASE, RES = b"B" * 100, b"R" * 40


def make(residual=RES):
    """A file with the fixed 36-byte header of versions 1 to 4."""
    return c.pack(0x1234ABCD, 640, 512, 32768, BASE, residual, compact=False)


def test_round_trip_and_layout():
    data = make()
    assert len(data) == c.HEADER_SIZE + len(BASE) + len(RES)
    assert data[:4] == c.MAGIC and c.HEADER_SIZE == 36
    f = c.unpack(data)
    assert f.base == BASE and f.residual == RES and f.residual_error is None
    h = f.header
    assert (h.weights_id, h.width, h.height, h.alpha_q, h.has_residual) == (0x1234ABCD, 640, 512, 32768, True)


def test_version_2_carries_the_filter_at_the_start_of_the_residual_layer():
    flt = b"F" * 7
    data = c.pack(0x1234ABCD, 640, 512, 32768, BASE, RES, flt, compact=False)
    assert make()[4] == 1 and data[4] == 2  # a file without a filter is still version 1
    f = c.unpack(data)
    assert f.header.has_filter and f.header.has_residual and f.base == BASE
    assert c.split_strings(f.residual, "residual layer", "output filter") == (flt, RES)
    stripped = c.strip_residual(data)
    assert stripped == make(None) and not c.unpack(stripped).header.has_filter


def test_version_3_is_written_when_the_filter_asks_for_it():
    data = c.pack(0x1234ABCD, 640, 512, 32768, BASE, RES, b"F" * 7, filter_version=3, compact=False)
    f = c.unpack(data)
    assert data[4] == 3 and f.header.version == 3 and f.header.has_filter
    assert c.split_strings(f.residual, "residual layer", "output filter") == (b"F" * 7, RES)
    assert c.strip_residual(data) == make(None)  # a stripped file is version 1 again


def test_fixed_layout_version_4_only_when_the_32_pixel_grid_differs_from_the_64_pixel_one():
    def pack(w, h, **kw):
        return c.pack(1, w, h, 0, BASE, RES, compact=False, **kw)

    # 640x512 and 500x375 pad to the same latents on both grids: earlier rdcodec reads them
    for w, h in ((640, 512), (500, 375), (64, 64)):
        assert pack(w, h)[4] == 1 and c.parse_header(pack(w, h)).grid == c.COARSE_GRID
    # 224x224: 14x14 latents on the 32-pixel grid, 16x16 on the 64-pixel one
    for w, h in ((224, 224), (640, 480), (96, 64), (33, 1)):
        head = c.parse_header(pack(w, h))
        assert head.version == 4 and head.grid == c.GRID == 32
        assert head.latent_shape == (-(-h // 32) * 2, -(-w // 32) * 2)
    v4 = pack(224, 224, output_filter=b"F" * 7, filter_version=3)
    assert v4[4] == 4 and c.unpack(v4).header.has_filter
    # the coarse grid can still be written (stripping an older file keeps its grid)
    assert pack(224, 224, grid=c.COARSE_GRID)[4] == 1
    assert c.parse_header(pack(224, 224, grid=c.COARSE_GRID)).latent_shape == (16, 16)
    with pytest.raises(ValueError, match="grid"):
        pack(224, 224, grid=16)


def test_stripping_keeps_the_latent_grid_of_a_fixed_layout_file():
    v4 = c.pack(1, 224, 200, 0, BASE, RES, b"F", filter_version=2, compact=False)
    stripped = c.strip_residual(v4)
    assert stripped[4] == 4 and c.unpack(stripped).residual is None
    assert c.parse_header(stripped).latent_shape == c.parse_header(v4).latent_shape == (14, 14)
    old = c.pack(1, 224, 200, 0, BASE, RES, b"F", filter_version=3, grid=c.COARSE_GRID, compact=False)
    assert old[4] == 3 and c.strip_residual(old)[4] == 1
    assert c.parse_header(c.strip_residual(old)).latent_shape == (16, 16)


def test_filter_without_residual_layer_cannot_be_written():
    with pytest.raises(ValueError):
        c.pack(1, 8, 8, 0, BASE, None, b"F")
    with pytest.raises(ValueError):
        c.pack(1, 8, 8, 0, BASE, RES, b"F", filter_version=1)


def _with_flags(data: bytes, version: int, flags: int) -> bytes:
    head = bytearray(data[:c.HEADER_SIZE])
    head[4], head[5] = version, flags
    head[-4:] = struct.pack("<I", c._crc(bytes(head[:-4])))
    return bytes(head) + data[c.HEADER_SIZE:]


@pytest.mark.parametrize("version, flags", [(1, 0x03), (2, 0x02), (2, 0x04), (3, 0x02), (3, 0x05),
                                            (4, 0x02), (4, 0x04)])
def test_flags_a_version_does_not_have_are_refused(version, flags):
    """Version 1 has no filter bit; the filter bit needs the residual bit; unknown bits are errors."""
    with pytest.raises(CorruptError):
        c.unpack(_with_flags(make(), version, flags))


def test_base_only_file():
    f = c.unpack(make(None))
    assert f.residual is None and not f.header.has_residual and f.residual_error is None


def test_cut_after_base_is_valid_base_only():
    data = make()
    f = c.unpack(data[: c.HEADER_SIZE + len(BASE)])
    assert f.base == BASE and f.residual is None and "ends after the base" in f.residual_error


@pytest.mark.parametrize("cut", [0, 3, 10, 35, 36, 80, 135])
def test_truncation_inside_header_or_base(cut):
    with pytest.raises((CorruptError, NotRdcError)):
        c.unpack(make()[:cut])


def test_truncation_inside_residual():
    data = make()[:-5]
    with pytest.raises(CorruptError, match="residual"):
        c.unpack(data)
    f = c.unpack(data, ignore_residual_errors=True)
    assert f.residual is None and f.base == BASE and "header says" in f.residual_error


def test_wrong_magic():
    with pytest.raises(NotRdcError):
        c.unpack(b"\x89PNG" + make()[4:])


def test_wrong_version():
    data = bytearray(make())
    data[4] = 99
    with pytest.raises(VersionError):
        c.unpack(bytes(data))


@pytest.mark.parametrize("offset", range(5, 32))
def test_header_bit_flip_is_detected(offset):
    data = bytearray(make())
    data[offset] ^= 0x10
    with pytest.raises(CorruptError):
        c.unpack(bytes(data))


@pytest.mark.parametrize("where", ["base", "residual"])
def test_layer_bit_flip_is_detected(where):
    data = bytearray(make())
    data[c.HEADER_SIZE + (10 if where == "base" else len(BASE) + 5)] ^= 1
    with pytest.raises(CorruptError, match=where):
        c.unpack(bytes(data))


def test_trailing_garbage_is_detected():
    with pytest.raises(CorruptError):
        c.unpack(make(None) + b"x")


def test_strip_keeps_base_bit_for_bit():
    stripped = c.strip_residual(make())
    assert stripped[c.HEADER_SIZE:] == BASE
    assert c.unpack(stripped).header.alpha_q == 32768


def test_sizes_out_of_range():
    for w, h in [(0, 5), (5, 0), (70000, 5)]:
        for compact in (True, False):
            with pytest.raises(ValueError):
                c.pack(1, w, h, 0, BASE, None, compact=compact)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**20])
def test_base_strings_round_trip(n):
    z, y = b"z" * n, b"y" * 7
    assert c.split_strings(c.join_strings(z, y)) == (z, y)


def test_base_string_length_that_lies():
    bad = bytes([0x85, 0x01]) + b"z" * 10  # claims 133 bytes of z
    with pytest.raises(CorruptError):
        c.split_strings(bad)


def test_header_crc_covers_every_field():
    data = make()
    head_crc = struct.unpack_from("<I", data, 32)[0]
    assert head_crc == c._crc(data[:32])


# -- version 5: the compact header ---------------------------------------------------------

def make5(residual=RES, w=224, h=224, **kw):
    return c.pack(0x1234ABCD, w, h, 32768, BASE, residual, **kw)


def test_version_5_is_what_pack_writes_and_its_header_is_small():
    data = make5(None)
    assert data[:5] == c.MAGIC + bytes([5]) and c.FORMAT_VERSION == c.COMPACT_VERSION == 5
    # 4 magic + version + flags + 4 weights id + 2 alpha + varints 224, 224 (2 bytes each) and
    # base_len 100 (1 byte) + 4 checksum; a real 224 x 224 file's base is over 127 bytes: 22
    assert len(data) - len(BASE) == 21 == c.compact_header_size(224, 224, len(BASE), None)
    assert c.compact_header_size(224, 224, 1200, None) == 22
    f = c.unpack(data)
    h = f.header
    assert (h.weights_id, h.width, h.height, h.alpha_q, h.version, h.size) == (0x1234ABCD, 224, 224, 32768, 5, 21)
    assert f.base == BASE and f.residual is None and not h.has_residual
    with_res = make5()
    assert len(with_res) == c.compact_header_size(224, 224, len(BASE), len(RES)) + len(BASE) + len(RES)
    f = c.unpack(with_res)
    assert f.base == BASE and f.residual == RES and f.header.has_residual and f.header.size == 26


@pytest.mark.parametrize("w, h", [(1, 1), (127, 128), (224, 224), (640, 512), (65535, 3)])
@pytest.mark.parametrize("base_len", [0, 127, 128, 16384])
def test_version_5_fields_round_trip_across_varint_sizes(w, h, base_len):
    base = bytes(range(256)) * (base_len // 256) + bytes(base_len % 256)
    for residual in (None, RES):  # (an empty residual layer reads as cut off, as in versions 1-4)
        data = c.pack(7, w, h, 65535, base, residual)
        f = c.unpack(data)
        assert (f.header.width, f.header.height, f.header.alpha_q, f.base) == (w, h, 65535, base)
        assert f.residual == residual
        assert f.header.size == c.compact_header_size(w, h, base_len, None if residual is None else len(residual))
        assert c.base_only_size(data) == len(c.strip_residual(data))


def test_version_5_lies_on_the_32_pixel_grid_even_where_the_grids_agree():
    for w, h in ((640, 512), (224, 224), (500, 375)):
        head = c.parse_header(make5(w=w, h=h))
        assert head.grid == 32 and head.latent_shape == (-(-h // 32) * 2, -(-w // 32) * 2)
    with pytest.raises(ValueError, match="32-pixel grid"):
        make5(grid=c.COARSE_GRID)


def test_version_5_carries_the_filter_and_strips_to_version_5():
    data = make5(output_filter=b"F" * 7, filter_version=3)
    f = c.unpack(data)
    assert data[4] == 5 and f.header.has_filter
    assert c.split_strings(f.residual, "residual layer", "output filter") == (b"F" * 7, RES)
    stripped = c.strip_residual(data)
    assert stripped == make5(None) and stripped[-len(BASE):] == BASE
    assert c.base_only_size(data) == len(stripped)


def test_version_5_cut_after_the_base_is_a_valid_base_only_file():
    data = make5()
    cut = data[:c.parse_header(data).size + len(BASE)]
    f = c.unpack(cut)
    assert f.base == BASE and f.residual is None and "ends after the base" in f.residual_error


def test_version_5_truncation_anywhere_before_the_residual_is_refused():
    data = make5()
    end_base = c.parse_header(data).size + len(BASE)
    for cut in range(end_base):
        with pytest.raises((CorruptError, NotRdcError)):
            c.unpack(data[:cut])


def test_version_5_every_bit_flip_in_the_header_or_base_is_detected():
    data = make5()
    end_base = c.parse_header(data).size + len(BASE)
    for i in range(5, end_base):  # after the version byte (a flipped version is refused as such)
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            with pytest.raises(CorruptError):
                c.unpack(bytes(bad))
    bad = bytearray(data)
    bad[4] ^= 0x01  # version 4: read with the fixed layout, whose checksum fails
    with pytest.raises(CorruptError):
        c.unpack(bytes(bad))


def test_version_5_damaged_residual_layer_can_be_dropped():
    data = bytearray(make5())
    data[-3] ^= 1
    with pytest.raises(CorruptError, match="residual"):
        c.unpack(bytes(data))
    f = c.unpack(bytes(data), ignore_residual_errors=True)
    assert f.base == BASE and f.residual is None and "checksum" in f.residual_error


def _compact_with_flags(flags: int) -> bytes:
    head = bytearray(c._compact_header(1, 224, 224, 0, BASE, None, 0)[:-4])
    head[5] = flags
    crc = c.zlib.crc32(BASE, c.zlib.crc32(bytes(head))) & 0xFFFFFFFF
    return bytes(head) + struct.pack("<I", crc) + BASE


@pytest.mark.parametrize("flags", [0x02, 0x04, 0x80])
def test_version_5_flags_it_does_not_have_are_refused(flags):
    """A filter without a residual layer, or an unknown bit, is damage even under a valid checksum."""
    assert c.unpack(_compact_with_flags(0)).base == BASE
    with pytest.raises(CorruptError, match="flag|invalid"):
        c.unpack(_compact_with_flags(flags))


def test_version_5_trailing_garbage_is_detected():
    with pytest.raises(CorruptError):
        c.unpack(make5(None) + b"x")

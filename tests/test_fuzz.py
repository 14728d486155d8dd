"""Bounded fuzzing of the container and the decoder: every input either decodes or raises an
``RdcError`` subclass, never anything else. Seeded byte mutations first, then hypothesis-built
structured inputs (header fields, lying lengths, layers re-packed with valid checksums, so the
range decoder itself sees arbitrary bytes). The long coverage-guided run is benchmarks/fuzz.py."""

import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rdcodec
from rdcodec.bitstream import container
from rdcodec.errors import CorruptError, NotRdcError, RdcError, VersionError


@pytest.fixture(scope="module")
def valid(codec, crop):
    """A version-5 file (the compact header), what rdcodec writes."""
    return codec.compress(crop[:64, :96], 0.5).data


@pytest.fixture(scope="module")
def valid_fixed(valid):
    """The same layers behind the fixed 36-byte header of versions 1 to 4 (here version 4)."""
    f = container.unpack(valid)
    h = f.header
    return container.pack(h.weights_id, h.width, h.height, h.alpha_q, f.base, f.residual, compact=False)


def _mutations(data: bytes, rng: random.Random):
    for _ in range(60):
        b = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0:  # bit flips anywhere
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncation
            b = b[: rng.randrange(len(b))]
        elif kind == 2:  # random insertion
            i = rng.randrange(len(b))
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        else:  # random tail
            b = b[: rng.randrange(len(b))] + rng.randbytes(rng.randint(0, 64))
        yield bytes(b)


def _repacked(data: bytes, rng: random.Random):
    """Valid header and checksums around arbitrary layer bytes (lengths that agree, content that lies)."""
    f = container.unpack(data)
    h = f.header
    for _ in range(30):
        base = bytearray(f.base)
        for _ in range(rng.randint(1, 8)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        if rng.random() < 0.3:
            base = bytearray(rng.randbytes(rng.randint(0, 2 * len(f.base))))
        res = rng.randbytes(rng.randint(0, 64)) if rng.random() < 0.5 else f.residual
        yield container.pack(h.weights_id, h.width, h.height, rng.randrange(65536), bytes(base), res,
                             compact=h.version == container.COMPACT_VERSION)


@pytest.mark.parametrize("layout", ["compact", "fixed"])
@pytest.mark.parametrize("source", [_mutations, _repacked])
def test_decoder_never_fails_uncleanly(codec, valid, valid_fixed, source, layout):
    rng = random.Random(1234)
    outcomes = {"decoded": 0, "refused": 0}
    for data in source(valid if layout == "compact" else valid_fixed, rng):
        try:
            recon, _ = codec.decompress(data, max_pixels=10_000_000)
            assert recon.render(0.0).shape == (64, 96, 3)
            outcomes["decoded"] += 1
        except RdcError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0  # the fuzzer does reach the error paths


def test_random_bytes_are_refused(codec):
    rng = random.Random(7)
    for n in (0, 1, 4, 35, 36, 37, 100, 1000):
        with pytest.raises(RdcError):
            codec.decompress(rng.randbytes(n))


# ---------------------------------------------------------------- property-based (hypothesis)
# Structured inputs instead of blind bytes: a valid header with one field replaced (header
# checksum recomputed or not), lengths that lie, layers of arbitrary bytes with valid
# checksums. Derandomized, so CI runs the same examples every time; the long run with
# coverage guidance is benchmarks/fuzz.py (docs/robustness.md).

BOUNDED = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# (offset, size) of every header field but the magic and the header checksum
FIELDS = {"version": (4, 1), "flags": (5, 1), "weights_id": (6, 4), "width": (10, 2), "height": (12, 2),
          "alpha_q": (14, 2), "base_len": (16, 4), "base_crc": (20, 4), "residual_len": (24, 4),
          "residual_crc": (28, 4)}


def _fix_header_crc(b: bytearray) -> None:
    b[32:36] = struct.pack("<I", zlib.crc32(bytes(b[:32])))


# version 5: the fields in order, and how many bytes a fixed-size one takes
COMPACT_FIELDS = {"version": 1, "flags": 1, "weights_id": 4, "alpha_q": 2, "width": 0, "height": 0,
                  "base_len": 0, "residual_len": 0, "residual_crc": 4}


@st.composite
def compact_header_mutants(draw, data: bytes):
    """A version-5 ``data`` re-written with one header field replaced; the checksum (over the header
    and what the header says the base layer is) mostly recomputed, so the checks behind it run."""
    f = container.unpack(data)
    h = f.header
    v = {"version": h.version, "flags": h.flags, "weights_id": h.weights_id, "alpha_q": h.alpha_q,
         "width": h.width, "height": h.height, "base_len": h.base_len, "residual_len": h.residual_len,
         "residual_crc": h.residual_crc}
    name = draw(st.sampled_from(sorted(COMPACT_FIELDS)))
    size = COMPACT_FIELDS[name]
    top = (1 << (8 * size)) - 1 if size else 2 ** 35 - 1
    old = v[name]
    v[name] = draw(st.one_of(st.sampled_from([n for n in (0, 1, 127, 128, 65535, 65536, top) if n <= top]),
                             st.integers(max(0, old - 4), min(top, old + 4)), st.integers(0, top)))
    head = struct.pack("<4sBBIH", container.MAGIC, v["version"], v["flags"], v["weights_id"], v["alpha_q"])
    head += container._varint(v["width"]) + container._varint(v["height"]) + container._varint(v["base_len"])
    if v["flags"] & 1:
        head += container._varint(v["residual_len"]) + struct.pack("<I", v["residual_crc"])
    layers = f.base + (f.residual or b"")
    crc = zlib.crc32(layers[:v["base_len"]], zlib.crc32(head))
    if not draw(st.integers(0, 9)):
        crc ^= 1 << draw(st.integers(0, 31))
    return head + struct.pack("<I", crc) + layers


@st.composite
def header_mutants(draw, data: bytes):
    """``data`` with one header field replaced (by an edge value, a near miss or anything)."""
    if data[4] == container.COMPACT_VERSION:
        return draw(compact_header_mutants(data))
    b = bytearray(data)
    off, size = FIELDS[draw(st.sampled_from(sorted(FIELDS)))]
    old = int.from_bytes(b[off:off + size], "little")
    top = (1 << (8 * size)) - 1
    new = draw(st.one_of(st.sampled_from([0, 1, top, top >> 1]),
                         st.integers(max(0, old - 4), min(top, old + 4)),
                         st.integers(0, top)))
    b[off:off + size] = new.to_bytes(size, "little")
    if draw(st.integers(0, 9)):  # mostly keep the header checksum valid, so the check behind it runs
        _fix_header_crc(b)
    return bytes(b)


@st.composite
def byte_mutants(draw, data: bytes):
    """Truncated, extended, or with bytes overwritten anywhere."""
    b = bytearray(data)
    kind = draw(st.sampled_from(["cut", "extend", "overwrite"]))
    if kind == "cut":
        return bytes(b[:draw(st.integers(0, len(b) - 1))])
    if kind == "extend":
        return bytes(b) + draw(st.binary(min_size=1, max_size=64))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(b) - 1))
        b[i] = draw(st.integers(0, 255))
    return bytes(b)


@st.composite
def repacked(draw, data: bytes, max_side: int = 160):
    """Valid header and checksums around layers that lie: a small random size and alpha, and a
    base layer (varint z length, z string, y string) and residual layer of arbitrary bytes or
    edited copies of the real ones."""
    f = container.unpack(data)
    z, y = container.split_strings(f.base)

    def edited(s: bytes) -> bytes:
        choice = draw(st.sampled_from(["keep", "edit", "random", "cut"]))
        if choice == "random":
            return draw(st.binary(max_size=2 * len(s) + 8))
        if choice == "cut":
            return s[:draw(st.integers(0, len(s)))]
        if choice == "edit" and s:
            b = bytearray(s)
            for _ in range(draw(st.integers(1, 3))):
                b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
            return bytes(b)
        return s

    base = container.join_strings(edited(z), edited(y))
    if draw(st.booleans()):  # or a base layer that is not even a valid split
        base = draw(st.binary(max_size=64))
    residual = draw(st.one_of(st.none(), st.just(f.residual), st.binary(max_size=64).map(bytes)))
    if residual is not None and draw(st.booleans()):
        residual = edited(residual)
    w = draw(st.one_of(st.just(f.header.width), st.integers(1, max_side)))
    h = draw(st.one_of(st.just(f.header.height), st.integers(1, max_side)))
    return container.pack(f.header.weights_id, w, h, draw(st.integers(0, 65535)), base, residual,
                          compact=f.header.version == container.COMPACT_VERSION)


def _check_parse(data: bytes) -> None:
    """The container's contract on any bytes: a verified split, or a specific error."""
    for lenient in (False, True):
        try:
            f = container.unpack(data, ignore_residual_errors=lenient)
        except (NotRdcError, VersionError, CorruptError) as e:
            event(f"refused: {type(e).__name__}")
            continue
        event("split" + (" (residual dropped)" if f.residual_error else ""))
        h = f.header
        compact = h.version == container.COMPACT_VERSION
        # version 5's one checksum covers the header and the base layer
        covered = zlib.crc32(f.base, zlib.crc32(data[:h.size - 4])) if compact else zlib.crc32(f.base)
        assert len(f.base) == h.base_len and covered == h.base_crc
        assert f.residual is None or (len(f.residual) == h.residual_len and zlib.crc32(f.residual) == h.residual_crc)
        if f.residual_error is None:
            if not h.has_filter:  # a clean file is exactly what pack writes
                packed = container.pack(h.weights_id, h.width, h.height, h.alpha_q, f.base, f.residual,
                                        grid=h.grid, compact=compact)
                # (a fixed-layout version-4 file whose size is the same on both grids is valid, but pack
                # writes such layers as version 1)
                assert packed == data or (not compact and packed[4] != data[4])
        else:
            assert f.residual is None and h.has_residual
    try:
        i = rdcodec.info(data)
        assert i["bytes"] == len(data) and i["width"] >= 1 and i["height"] >= 1
    except (NotRdcError, VersionError, CorruptError):
        pass


def _check_decode(codec, data: bytes, max_pixels: int = 160 * 160, predict_residual: bool = False) -> None:
    """The decoder's contract on any bytes: an image of the declared size, or an RdcError."""
    try:
        recon, notes = codec.decompress(data, max_pixels=max_pixels, ignore_residual_errors=True,
                                        predict_residual=predict_residual)
    except RdcError as e:
        event(f"refused: {type(e).__name__}")  # pytest --hypothesis-show-statistics
        return
    event("decoded" + (" (residual dropped)" if notes else ""))
    h = container.parse_header(data)
    for beta in (0.0, 1.0):
        out = recon.render(beta)
        assert out.shape == (h.height, h.width, 3) and out.dtype.name == "uint8"
    assert set(notes) <= {"residual_dropped", "residual_predicted"}
    used = h.has_residual and "residual_dropped" not in notes   # the file's own residual layer decoded
    assert notes.get("residual_predicted", False) == (predict_residual and not used)
    assert (recon.r is not None) == (used or predict_residual)


@BOUNDED
@given(st.data())
def test_parser_contract_on_structured_inputs(valid, valid_fixed, data):
    source = data.draw(st.sampled_from(["header", "bytes", "repacked", "random"]))
    if source == "random":
        blob = data.draw(st.one_of(st.binary(max_size=200),
                                   st.binary(max_size=200).map(lambda b: container.MAGIC + b)))
    else:
        file = data.draw(st.sampled_from([valid, valid_fixed]))
        blob = data.draw({"header": header_mutants, "bytes": byte_mutants, "repacked": repacked}[source](file))
    _check_parse(blob)


@settings(BOUNDED, max_examples=60)
@given(st.data())
def test_decoder_contract_on_structured_inputs(codec, valid, valid_fixed, data):
    source = data.draw(st.sampled_from(["header", "bytes", "repacked", "repacked"]))
    file = data.draw(st.sampled_from([valid, valid_fixed]))
    blob = data.draw({"header": header_mutants, "bytes": byte_mutants, "repacked": repacked}[source](file))
    _check_decode(codec, blob, predict_residual=data.draw(st.booleans()))


def test_the_long_fuzzer_reads_and_rebuilds_both_header_layouts(valid, valid_fixed):
    """benchmarks/fuzz.py keeps its own copy of the layouts (its parent process has no torch): its
    split and build give back the file exactly, and its field mutants stay within the contract."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import fuzz

    rng = random.Random(5)
    for data in (valid, valid_fixed, container.strip_residual(valid), container.strip_residual(valid_fixed)):
        f, base, res = fuzz.split(data)
        assert fuzz.build(f, base, res) == data
        assert (f[4], f[5]) == (96, 64) and base == container.unpack(data).base
        for name in ("header_field", "lying_length", "weights", "resize", "z_length", "truncate") * 5:
            mutant = fuzz.MUTATORS[name](rng, data, [valid, valid_fixed])
            try:
                container.unpack(mutant)
            except RdcError:
                pass

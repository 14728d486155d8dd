"""Bounded mutation fuzzing of the container and the decoder: every input either decodes or
raises an ``RdcError`` subclass, never anything else. Layers are also re-packed with valid
checksums, so the range decoder itself sees arbitrary bytes."""

import random

import pytest

from rdcodec.bitstream import container
from rdcodec.errors import RdcError


@pytest.fixture(scope="module")
def valid(codec, crop):
    return codec.compress(crop[:64, :96], 0.5).data


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
        yield container.pack(h.weights_id, h.width, h.height, rng.randrange(65536), bytes(base), res)


@pytest.mark.parametrize("source", [_mutations, _repacked])
def test_decoder_never_fails_uncleanly(codec, valid, source):
    rng = random.Random(1234)
    outcomes = {"decoded": 0, "refused": 0}
    for data in source(valid, rng):
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

"""Range coding with constriction: int32 symbols in, little-endian uint32 words out.

Two model families are used, both fully determined by fixed tables
(``rdcodec.entropy.tables``) so that encoder and decoder build bit-identical models:

* :func:`encode_gaussian` — per-symbol zero-mean quantized Gaussians whose standard
  deviations are :data:`~rdcodec.entropy.tables.SCALE_TABLE` entries (latents y and s,
  after the predicted mean has been subtracted);
* :func:`encode_factorized` — one categorical distribution per channel (the hyper-latent z).

Example (tested in ``tests/test_entropy.py``)::

    >>> import numpy as np
    >>> sym = np.array([0, -2, 5], dtype=np.int32)
    >>> idx = np.array([10, 40, 200], dtype=np.int32)
    >>> data = encode_gaussian(sym, idx)
    >>> decode_gaussian(data, idx).tolist()
    [0, -2, 5]
    >>> dec = GaussianDecoder(data)  # the same string in two parts
    >>> dec.decode(idx[:1]).tolist(), dec.decode(idx[1:]).tolist()
    ([0], [-2, 5])
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import CorruptError
from .tables import SCALE_TABLE, Y_RANGE

# constriction is one extension module: its submodules are attributes, not importable.
Categorical = constriction.stream.model.Categorical
QuantizedGaussian = constriction.stream.model.QuantizedGaussian
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder

_WORD = np.dtype("<u4")
_GAUSSIAN = QuantizedGaussian(-Y_RANGE, Y_RANGE)


def _to_bytes(encoder) -> bytes:
    return encoder.get_compressed().astype(_WORD, copy=False).tobytes()


def _decoder(data: bytes):
    if len(data) % 4:
        raise CorruptError("range-coded string length is not a whole number of 32-bit words")
    return RangeDecoder(np.frombuffer(data, dtype=_WORD).astype(np.uint32))


def encode_gaussian(symbols: np.ndarray, scale_idx: np.ndarray) -> bytes:
    """Encode int32 ``symbols`` in [-Y_RANGE, Y_RANGE] with std ``SCALE_TABLE[scale_idx]``."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
    stds = SCALE_TABLE[np.asarray(scale_idx).ravel()]
    enc = RangeEncoder()
    if symbols.size:
        enc.encode(symbols, _GAUSSIAN, np.zeros_like(stds), stds)
    return _to_bytes(enc)


class GaussianDecoder:
    """Decodes a :func:`encode_gaussian` string in consecutive parts.

    For models whose later parameters depend on earlier symbols (the checkerboard context:
    anchors first, then the rest): the encoder codes the concatenation in one call, the
    decoder asks for the parts in the same order, each with its own scale indices.
    """

    def __init__(self, data: bytes) -> None:
        self._dec = _decoder(data)

    def decode(self, scale_idx: np.ndarray) -> np.ndarray:
        """The next ``scale_idx.size`` symbols, int32 shaped like ``scale_idx``."""
        scale_idx = np.asarray(scale_idx)
        stds = SCALE_TABLE[scale_idx.ravel()]
        if not stds.size:
            return np.zeros(scale_idx.shape, dtype=np.int32)
        try:
            out = self._dec.decode(_GAUSSIAN, np.zeros_like(stds), stds)
        except (ValueError, RuntimeError, AssertionError) as e:  # constriction rejects bad data
            raise CorruptError(f"latent stream cannot be decoded: {e}") from None
        return np.asarray(out, dtype=np.int32).reshape(scale_idx.shape)


def decode_gaussian(data: bytes, scale_idx: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_gaussian`; returns int32 symbols shaped like ``scale_idx``."""
    return GaussianDecoder(data).decode(scale_idx)


def _channel_models(pmfs: np.ndarray) :
    return [Categorical(np.asarray(p, dtype=np.float64), perfect=False) for p in pmfs]


def encode_factorized(symbols: np.ndarray, pmfs: np.ndarray, offset: int) -> bytes:
    """Encode ``symbols`` (C, n) int32, channel ``c`` with the categorical ``pmfs[c]``.

    ``pmfs`` (C, K) holds the probabilities of the values ``-offset .. K-1-offset``.
    """
    enc = RangeEncoder()
    for sym, model in zip(symbols, _channel_models(pmfs)):
        enc.encode(np.ascontiguousarray(sym + offset, dtype=np.int32), model)
    return _to_bytes(enc)


def decode_factorized(data: bytes, pmfs: np.ndarray, offset: int, count: int) -> np.ndarray:
    """Inverse of :func:`encode_factorized`: returns (C, count) int32."""
    dec = _decoder(data)
    try:
        rows = [dec.decode(model, count) for model in _channel_models(pmfs)]
    except (ValueError, RuntimeError, AssertionError) as e:
        raise CorruptError(f"hyper-latent stream cannot be decoded: {e}") from None
    return np.stack(rows).astype(np.int32) - offset if rows else np.zeros((0, count), np.int32)

"""rdcodec: a rate-distortion-cognition controllable learned image codec.

One bitstream, three controls: ``alpha`` (rate, at encode time), an optional residual
layer, and ``beta`` (machine vs human fidelity, at decode time). See ``rdcodec.api``.
"""

__version__ = "0.1.0"

from .api import (  # noqa: E402
    ImageSource,
    compress,
    compress_to_psnr,
    compress_to_size,
    decode,
    encode,
    info,
    strip,
)
from .errors import (  # noqa: E402
    BitstreamError,
    CorruptError,
    ImageError,
    LimitError,
    NotRdcError,
    RdcError,
    VersionError,
    WeightsError,
)

__all__ = ["encode", "decode", "info", "strip", "compress", "compress_to_size", "compress_to_psnr",
           "ImageSource", "RdcError", "BitstreamError",
           "CorruptError", "ImageError", "LimitError", "NotRdcError", "VersionError", "WeightsError",
           "__version__"]

from . import pillow_plugin as _pillow_plugin  # noqa: E402

_pillow_plugin.register()

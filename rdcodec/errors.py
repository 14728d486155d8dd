"""Exception classes. Every failure a user can cause is one of these, never a bare traceback."""


class RdcError(Exception):
    """Base class of all rdcodec errors."""


class ImageError(RdcError):
    """The input image cannot be read or is not supported."""


class BitstreamError(RdcError):
    """The .rdc data is not a valid rdcodec file."""


class NotRdcError(BitstreamError):
    """The data does not start with the rdcodec magic bytes."""


class VersionError(BitstreamError):
    """The file uses a format version this rdcodec does not know."""


class CorruptError(BitstreamError):
    """The file is truncated, or a checksum or length does not match."""


class LimitError(BitstreamError):
    """The file describes an image larger than the allowed pixel budget."""


class WeightsError(RdcError):
    """Weights are missing, altered, or differ from the ones that made a file."""

"""Pillow file plugin: ``Image.open("x.rdc")`` and ``img.save("x.rdc", alpha=0.5)``.

Registered on ``import rdcodec``, like Pillow's own format plugins (magic-byte ``_accept``,
``.rdc`` extension, MIME type ``image/x-rdc``)::

    >>> import rdcodec
    >>> from PIL import Image
    >>> im = Image.open("photo.rdc")   # header only: size and mode are known, nothing decoded
    >>> im.beta = 1.0                   # optional, before load(); default 0 like the CLI
    >>> im.load()
    >>> im.save("copy.rdc", alpha=0.3, residual=True)              # refine=50: slower, better file
    >>> im.save("cat.rdc", alpha=0.3, machines="mobilenet-v1-embedding")

``machines`` (a shipped vision network by name, or a TFLite file) refines the base layer for it, as
``rdcodec encode --machines`` does. Decoding honours ``im.beta``, ``im.predict_residual`` (a file
without its residual layer rendered with the residual the decoder predicts,
:func:`rdcodec.decode`) and ``im.weights`` (a weights path, default the shipped ones).
"""

from __future__ import annotations

from typing import IO

import numpy as np
from PIL import Image, ImageFile

from .bitstream import container
from .errors import RdcError

FORMAT = "RDC"
MIME = "image/x-rdc"


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


class RdcImageFile(ImageFile.ImageFile):
    """An opened ``.rdc`` file: the header is read at open, the image decoded on ``load()``."""

    format = FORMAT
    format_description = "rdcodec learned image codec"

    beta: float = 0.0
    predict_residual: bool = False
    weights: str | None = None

    def _open(self) -> None:
        assert self.fp is not None
        head = self.fp.read()  # version 5's header checksum covers the base layer too
        try:
            h = container.parse_header(head)
        except RdcError as e:
            raise SyntaxError(str(e)) from None
        self._size = (h.width, h.height)
        self._mode = "RGB"
        self.info["alpha"] = h.alpha
        self.info["residual"] = h.has_residual
        self.tile = [ImageFile._Tile("rdc", (0, 0) + self.size, 0, ())]

    def load(self) -> Image.core.PixelAccess | None:
        """Decode at ``self.beta`` with ``self.weights`` and ``self.predict_residual`` (set them before
        the first load)."""
        if self.tile:  # pass the current options to the decoder
            self.tile = [t._replace(args=(self.beta, self.weights, self.predict_residual)) for t in self.tile]
        return super().load()


class RdcDecoder(ImageFile.PyDecoder):
    """Pillow decoder that reads the whole file and decodes it with :func:`rdcodec.decode`."""

    _pulls_fd = True

    def decode(self, buffer: bytes | bytearray | memoryview | Image.SupportsArrayInterface) -> tuple[int, int]:
        """Decode the file behind ``self.fd`` (``buffer`` is unused: the decoder pulls the file)."""
        from .api import decode

        beta, weights, predict_residual = self.args
        assert self.fd is not None
        img = decode(self.fd.read(), beta=beta, weights=weights, predict_residual=predict_residual)
        self.set_as_raw(np.asarray(img).tobytes())
        return -1, 0


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from .api import encode

    opts = im.encoderinfo
    data = encode(im, alpha=float(opts.get("alpha", 0.5)), residual=bool(opts.get("residual", True)),
                  weights=opts.get("weights"), refine=int(opts.get("refine", 0)), machines=opts.get("machines"))
    fp.write(data)


def register() -> None:
    """Register the RDC format with Pillow (opener, decoder, saver, ``.rdc`` extension, MIME type)."""
    Image.register_open(FORMAT, RdcImageFile, _accept)
    Image.register_decoder("rdc", RdcDecoder)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".rdc")
    Image.register_mime(FORMAT, MIME)

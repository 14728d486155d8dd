"""Bitstream: the .rdc container (``container``)."""

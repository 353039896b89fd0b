"""Pillow work on one image's bytes: read the header, and transcode what must be.

    inspect(bytes) ──▶ ImageHeader ── fits()? ──yes──▶ send the original bytes
                                          └──no───▶ transcode() ──▶ Transcoded

- ``_formats.py``: the allow-list of formats (``READABLE``; ``NEVER`` what is
  refused: EPS starts Ghostscript), how a file's format is found, ``input_formats``.
- ``_inspect.py``: the header read (format, size, orientation, mode) and the checks
  a header allows: decompression bomb, truncation, the service's size limits; the
  boundary where Pillow's errors become precise codes (``pillow_errors``).
- ``_jpeghead.py``: the fast pure-Python JPEG marker walk ``inspect`` tries first.
- ``_transcode.py``: JPEG or PNG under the byte cap, as the user sees the image.

Pure and synchronous; the run reaches them through ``batchrek.prepare.ImagePool``,
which reads ``inspect`` and ``transcode`` from this package at call time (tests patch
them here). The modules are private (underscored) so the functions ``inspect`` and
``transcode`` never shadow a module of the same name.
"""

from __future__ import annotations

from batchrek.prepare.imaging._formats import (
    HEADER_IN_PROCESS,
    NEVER,
    OPENABLE,
    READABLE,
    accepted_formats,
    extensions_for,
    fast_format,
)
from batchrek.prepare.imaging._inspect import MAX_PIXELS, ImageHeader, fits, inspect
from batchrek.prepare.imaging._transcode import QUALITIES, TO_DISPLAY, Transcoded, transcode

__all__ = [
    "HEADER_IN_PROCESS",
    "MAX_PIXELS",
    "NEVER",
    "OPENABLE",
    "QUALITIES",
    "READABLE",
    "TO_DISPLAY",
    "ImageHeader",
    "Transcoded",
    "accepted_formats",
    "extensions_for",
    "fast_format",
    "fits",
    "inspect",
    "transcode",
]

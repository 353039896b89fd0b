"""Prepare: each Item becomes the ``Image`` parameter of its calls (an ImageInput).

    Item ──▶ route ──▶ S3Object reference (same region, JPEG/PNG, small enough)
               └─────▶ fetch bytes ──▶ imaging: inspect ── fits? ──▶ Bytes, unchanged
                                                      └─ no ──▶ transcode | stage | fail

- ``route``: the per-image decision (``Preparer`` per run, ``ItemPrep`` per item),
  the in-run dedupe key (``content_key``) and the staging uploader (``Stager``).
- ``fetch``: local files, S3 objects and https URLs, size-capped (``Fetcher``);
  ``localread`` (regular files only, daemon reader threads), ``httpget`` (redirects,
  status codes), ``addresses`` (which addresses a URL may reach: ``AddressPolicy``,
  ``make_http_session``), ``budget`` (bytes held at once: ``ByteBudget``).
- ``regions``: each bucket's region, looked up once (``BucketRegions``).
- ``imaging``: Pillow work, pure and synchronous (header read, transcode); the
  allow-list of input formats (``READABLE``, ``accepted_formats``, ``extensions_for``).
- ``pool``: imaging off the event loop, a bounded number of decodes (``ImagePool``).

Other packages import from here, never from the modules.
"""

from __future__ import annotations

from batchrek.prepare.addresses import AddressPolicy, make_http_session
from batchrek.prepare.budget import ByteBudget
from batchrek.prepare.fetch import Fetcher
from batchrek.prepare.imaging import NEVER, READABLE, TO_DISPLAY, accepted_formats, extensions_for
from batchrek.prepare.pool import ImagePool, usable_cores
from batchrek.prepare.regions import BucketRegions
from batchrek.prepare.route import ItemPrep, Preparer, Stager, content_key

__all__ = [
    "NEVER",
    "READABLE",
    "TO_DISPLAY",
    "AddressPolicy",
    "BucketRegions",
    "ByteBudget",
    "Fetcher",
    "ImagePool",
    "ItemPrep",
    "Preparer",
    "Stager",
    "accepted_formats",
    "content_key",
    "extensions_for",
    "make_http_session",
    "usable_cores",
]

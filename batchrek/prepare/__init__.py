"""Prepare: each Item becomes the ``Image`` parameter of its calls (an ImageInput).

    Item ──▶ route ──▶ S3Object reference (same region, JPEG/PNG, small enough)
               └─────▶ fetch bytes ──▶ imaging: inspect ── fits? ──▶ Bytes, unchanged
                                                      └─ no ──▶ transcode | stage | fail

- ``route``: the per-image decision (``Preparer`` per run, ``ItemPrep`` per item),
  the in-run dedupe key (``content_key``) and the staging uploader (``Stager``).
- ``fetch``: local files, S3 objects and https URLs, size-capped (``Fetcher``).
- ``regions``: each bucket's region, looked up once (``BucketRegions``).
- ``imaging``: Pillow work, pure and synchronous (header read, transcode).
- ``pool``: imaging off the event loop, a bounded number of decodes (``ImagePool``).

Other packages import from here, never from the modules.
"""

from __future__ import annotations

from batchrek.prepare.fetch import Fetcher
from batchrek.prepare.imaging import TO_DISPLAY
from batchrek.prepare.pool import ImagePool, usable_cores
from batchrek.prepare.regions import BucketRegions
from batchrek.prepare.route import ItemPrep, Preparer, Stager, content_key

__all__ = [
    "TO_DISPLAY",
    "BucketRegions",
    "Fetcher",
    "ImagePool",
    "ItemPrep",
    "Preparer",
    "Stager",
    "content_key",
    "usable_cores",
]

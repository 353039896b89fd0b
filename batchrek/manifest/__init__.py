"""Manifest readers: every input a user already has, as one stream of Items.

    read_manifest(spec) ──▶ Item | ManifestProblem, in manifest order

Formats: JSON Lines (incl. SageMaker Ground Truth ``source-ref``), CSV (with an
``image`` header, or headerless ``bucket,key[,version_id]``), plain lists, S3
Inventory (CSV), an S3 prefix listing and a local directory; any file may be gzip.
Nothing is loaded whole: memory stays flat for a 10-million-line manifest, but for
the set of ids already used (``SeenIds``, ~15 bytes an id), which ``Selection`` keeps
so that a repeated id becomes a problem instead of a second billed call. A file
that turns out not to be a manifest (its first lines all malformed) stops the run
(``ManifestUnreadable``); a manifest read from S3 may not name local files; a
listing counts what it skips (``ReadOptions``).
"""

from __future__ import annotations

from batchrek.manifest._detect import FORMATS, detect_format
from batchrek.manifest._images import IMAGE_EXTENSIONS
from batchrek.manifest._options import ReadOptions, SkipCounter
from batchrek.manifest._read import BAD_SHARE_AFTER, read_manifest
from batchrek.manifest._seen import SeenIds
from batchrek.manifest._select import Selection, shard_of
from batchrek.manifest._sources import SourceSyntaxError, parse_source
from batchrek.manifest._streams import S3ClientLike

__all__ = [
    "BAD_SHARE_AFTER",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "ReadOptions",
    "S3ClientLike",
    "SeenIds",
    "Selection",
    "SkipCounter",
    "SourceSyntaxError",
    "detect_format",
    "parse_source",
    "read_manifest",
    "shard_of",
]

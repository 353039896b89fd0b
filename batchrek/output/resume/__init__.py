"""Resume: which (id, operation) pairs an earlier run already finished.

A rerun with the same ``-o`` must end with exactly one record per pair. Before any new
record is written, ``load_resume`` reads the existing output, cuts off a torn last line
(a kill in the middle of a write), indexes the pairs that are done (an ``ok`` record,
or an error that is not retryable) and compacts away every superseded record, so the
run can simply append and skip what ``(id, op) in state`` says is done.

- ``scan``: the pure part, shared by both outputs: the line scanner, the pair index
  (``ResumeIndex``, ``ResumeState``) and the compaction plan. No I/O.
- ``file``: a local JSON Lines file, compacted in place (temp file + ``os.replace``).
- ``s3``: ``s3://bucket/prefix/`` part files, compacted into new part files;
  ``list_parts`` lists them (the ledger's catch-up uses it too).
"""

from __future__ import annotations

import os

from batchrek.output.resume.file import load_file_resume
from batchrek.output.resume.redo import normalize_redo, redo_codes
from batchrek.output.resume.s3 import (
    abort_stale_uploads,
    list_parts,
    load_s3_resume,
    read_object,
)
from batchrek.output.resume.scan import RedoFailed, ResumeIndex, ResumeState, pair_key
from batchrek.output.s3parts import S3Client
from batchrek.s3uri import is_s3_uri

__all__ = [
    "RedoFailed",
    "ResumeIndex",
    "ResumeState",
    "abort_stale_uploads",
    "list_parts",
    "load_file_resume",
    "load_resume",
    "load_s3_resume",
    "normalize_redo",
    "pair_key",
    "read_object",
    "redo_codes",
]


async def load_resume(
    output: str | os.PathLike[str],
    *,
    s3: S3Client | None = None,
    shard: int | str | None = None,
    redo_failed: RedoFailed = False,
    compact: bool = True,
) -> ResumeState:
    """Index an existing output (a file, or ``s3://bucket/prefix/`` part files) and
    compact it so the rerun can append.

    ``redo_failed`` also redoes pairs whose error was permanent (after fixing a
    permission, say): True for every code, or a collection of error codes.
    ``compact=False`` only reports; the output is left as it is.
    For S3, ``shard`` limits reading, compaction and the clean-up of stale uploads to
    that shard's part files (required when shards share a prefix and run at once).
    """
    text = os.fspath(output)
    if is_s3_uri(text):
        if s3 is None:
            raise ValueError("resuming an s3:// output needs an S3 client")
        return await load_s3_resume(s3, text, shard=shard, redo_failed=redo_failed, compact=compact)
    return await load_file_resume(text, redo_failed=redo_failed, compact=compact)

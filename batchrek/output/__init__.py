"""Output: turn each ``Result`` into one durable JSON line, and resume from them.

Exactly one writer owns a run's output: the pipeline serialises each result to one
line and hands it to a ``Sink``, which batches the lines and makes them durable.

- ``JsonlFileSink`` (``file``): a local JSON Lines file, appended in whole-line batches
  and fsynced at the pipeline's durability points;
- ``S3PartSink`` (``s3parts``): ``s3://bucket/prefix/`` as rolling part files, each one
  an object that appears whole or not at all (``list_parts`` lists them);
- ``Spool`` (``spool``): an S3 output's open part files kept on local disk too, so a
  kill loses only the calls in flight; ``recover_spool`` (``recover``) uploads what
  a stopped run left there before the next run reads the prefix;
- ``check_paths`` / ``check_s3_output`` (``guard``): before a run reads or writes its
  output, refuse one that is the manifest, not batchrek's records, or not writable;
- ``load_resume`` (``resume``): before a rerun writes, index the pairs the existing
  output already holds, repair a torn tail and compact superseded records, so the
  output ends with exactly one record per (id, operation).

Other packages import from here, never from the modules.
"""

from __future__ import annotations

from batchrek.output.file import JsonlFileSink, Sink
from batchrek.output.guard import check_paths, check_s3_output, not_records_reason
from batchrek.output.recover import recover_spool
from batchrek.output.resume import (
    RedoFailed,
    ResumeIndex,
    ResumeState,
    abort_stale_uploads,
    list_parts,
    load_resume,
    normalize_redo,
    pair_key,
    read_object,
    redo_codes,
)
from batchrek.output.s3parts import S3Client, S3PartSink
from batchrek.output.spool import Spool
from batchrek.retrying import Retrier

__all__ = [
    "JsonlFileSink",
    "RedoFailed",
    "ResumeIndex",
    "ResumeState",
    "Retrier",
    "S3Client",
    "S3PartSink",
    "Sink",
    "Spool",
    "abort_stale_uploads",
    "check_paths",
    "check_s3_output",
    "list_parts",
    "load_resume",
    "normalize_redo",
    "not_records_reason",
    "pair_key",
    "read_object",
    "recover_spool",
    "redo_codes",
]

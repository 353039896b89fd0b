"""Resume of an ``s3://bucket/prefix/`` output: index its part files, repair, compact.

Before the run writes anything, ``load_s3_resume``

1. aborts the multipart uploads a killed run left open under the prefix (of its
   shard): with one writer per shard, every upload found is stale;
2. lists the part files and streams each object through the ``Scanner``: the part
   objects are the segments of one logical output, in name order (run stamp first);
3. when a part holds superseded records or a torn tail, compacts it: objects cannot
   be edited, so the kept records of every affected part are copied into new part
   files (a fresh run stamp), completed, and only then the old objects are deleted.
   A kill between the two leaves duplicates, never a gap; the next resume drops them
   the same way.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio

from batchrek.output.resume.scan import (
    CHUNK_BYTES,
    RedoFailed,
    ResumeState,
    Scanner,
    keep_lines,
    plan_compaction,
)
from batchrek.output.s3parts import S3Client, S3PartSink, new_run_stamp, part_shard, shard_label
from batchrek.s3uri import parse_s3_prefix

__all__ = ["abort_stale_uploads", "list_parts", "load_s3_resume", "read_object"]


async def load_s3_resume(
    client: S3Client,
    uri: str,
    *,
    shard: int | str | None = None,
    redo_failed: RedoFailed = False,
    compact: bool = True,
) -> ResumeState:
    """``load_resume`` for part files: list, stream each object through the scanner,
    then abort stale uploads and compact (see the module doc). ``shard=None`` reads
    every part file under the prefix and assumes one writer."""
    bucket, prefix = parse_s3_prefix(uri)
    aborted = await abort_stale_uploads(client, uri, shard=shard) if compact else 0
    keys = sorted([key async for key, _ in list_parts(client, bucket, prefix, shard)])
    scan = Scanner(redo_failed=redo_failed)
    torn: list[int] = []
    for key in keys:
        async for chunk in read_object(client, bucket, key):
            await anyio.to_thread.run_sync(scan.feed, chunk)
        torn.append(scan.end_segment())
    ends = scan.segment_ends
    plan = await anyio.to_thread.run_sync(plan_compaction, scan)
    del scan
    state = replace(plan.state, stale_uploads_aborted=aborted)
    dropped = plan.dropped
    starts = [0, *ends[:-1]]
    affected = [
        i
        for i in range(len(keys))
        if torn[i] or bisect_left(dropped, starts[i]) != bisect_left(dropped, ends[i])
    ]
    if not compact or not affected:
        return state
    stamp = new_run_stamp()
    sinks: dict[str, S3PartSink] = {}
    for i in affected:
        label_i = part_shard(keys[i][len(prefix) :])
        assert label_i is not None  # list_parts only yields part names
        sink = sinks.get(label_i)
        if sink is None:
            sink = sinks[label_i] = S3PartSink(
                client, uri, shard=label_i, run_stamp=stamp, part_seconds=math.inf
            )
        first, tail = starts[i], b""
        async for chunk in read_object(client, bucket, keys[i]):
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n") + 1
            tail, whole = data[cut:], data[:cut]  # a torn tail is left behind
            for line in keep_lines(whole, first, dropped).splitlines(keepends=True):
                await sink.write(line)
            first += whole.count(b"\n")
    for sink in sinks.values():
        await sink.aclose()
    await _delete(client, bucket, [keys[i] for i in affected])
    return replace(state, compacted=True, objects_rewritten=len(affected))


async def list_parts(
    client: S3Client, bucket: str, prefix: str, shard: int | str | None = None
) -> AsyncIterator[tuple[str, int]]:
    """(key, size) of each part file directly under ``prefix`` (of one shard, unless
    ``shard`` is None), in the listing's order (name order)."""
    label = None if shard is None else shard_label(shard)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = await client.list_objects_v2(**kwargs)
        for entry in page.get("Contents", ()):
            if _is_part(entry["Key"][len(prefix) :], label):
                yield entry["Key"], int(entry.get("Size", 0))
        if not page.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _is_part(name: str, label: str | None) -> bool:
    found = part_shard(name)
    return found is not None and (label is None or found == label)


async def read_object(
    client: S3Client, bucket: str, key: str, *, start: int = 0, stop: int | None = None
) -> AsyncIterator[bytes]:
    """Stream an object (its bytes ``[start, stop)``: one ranged GET) in chunks of about
    ``CHUNK_BYTES``: one thread hop each."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if start or stop is not None:
        kwargs["Range"] = f"bytes={start}-{'' if stop is None else stop - 1}"
    response = await client.get_object(**kwargs)
    body = response["Body"]
    try:
        buf = bytearray()
        while chunk := await body.read(1024 * 1024):
            buf += chunk
            if len(buf) >= CHUNK_BYTES:
                yield bytes(buf)
                buf = bytearray()
        if buf:
            yield bytes(buf)
    finally:
        body.close()


async def abort_stale_uploads(client: S3Client, uri: str, *, shard: int | str | None) -> int:
    """The part-file uploads a killed run of this shard left open, aborted (they are
    billed as storage until then); ``shard=None``: every part upload under the prefix
    (one writer). The resume calls it, and a ledger run, which never loads the resume.
    Only safe before this run uploads anything (with one writer per shard every upload
    found is then stale), after the spool was recovered."""
    bucket, prefix = parse_s3_prefix(uri)
    label = None if shard is None else shard_label(shard)
    aborted = 0
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = await client.list_multipart_uploads(**kwargs)
        for upload in page.get("Uploads", ()):
            if _is_part(upload["Key"][len(prefix) :], label):
                await client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
        if not page.get("IsTruncated"):
            return aborted
        kwargs["KeyMarker"] = page.get("NextKeyMarker")
        kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker")


async def _delete(client: S3Client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        result = await client.delete_objects(
            Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
        )
        if result.get("Errors"):
            first = result["Errors"][0]
            raise OSError(f"deleting superseded part {first.get('Key')}: {first.get('Message')}")

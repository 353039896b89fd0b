"""Before a run touches its output: is it ours to write, and can it be written?

Resume rewrites the output (compaction drops every line that is not a record), and the
metrics exports replace their files, so a wrong path destroys a file. Everything here
runs before the output is read for resume and before anything is billed, and raises
``OutputRefused`` (exit 2) with what to do; the refused file is not touched.

- The output must not be the manifest (compared by device and inode, so a symlink, a
  hard link or a relative spelling of it is caught), nor a metrics file of the run.
- An existing output file must be batchrek's own records. The check is cheap and does
  not depend on the file's size: its first and last whole non-blank lines must be
  JSON objects with a string ``id`` and ``operation`` and a ``status`` of ``ok`` or
  ``error``, as every record is. An empty (or blank) file is fine; a file that is
  only a torn first record (a kill inside the first write) is fine too.
- Each local path must be writable: its folder exists or can be made, a file can be
  created and filled beside it, an existing file can be opened for appending. The
  output's probe writes one write batch (64 KiB) and removes it, so a disk that is
  already full is found here, not after the first calls are billed.
- An ``s3://`` output is probed with CreateMultipartUpload + AbortMultipartUpload on a
  part-file name: the permission to upload is proved, and no object is created (a
  kill in between leaves an upload the next resume aborts).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import orjson

from batchrek.errors import OutputRefused, RunStopped
from batchrek.output.s3parts import S3Client, new_run_stamp, part_shard, shard_label
from batchrek.retrying import Retrier, once
from batchrek.s3uri import is_s3_uri, parse_s3_prefix, split_s3_uri
from batchrek.safefile import probe_writable, same_file

__all__ = ["check_paths", "check_s3_output", "not_records_reason"]

PROBE_BYTES = 64 * 1024  # one write batch of the file sink
MAX_LINE_BYTES = 16 * 1024 * 1024  # a record line longer than this is not one of ours
_BLOCK = 64 * 1024
_STATUSES = frozenset({"ok", "error"})


def check_paths(output: str, *, manifest: str, exports: Iterable[tuple[str, str]] = ()) -> None:
    """Refuse an output (a local file or ``s3://`` prefix) and export files (pairs of
    flag and path, e.g. ``("--metrics-out", "m.json")``) that cannot be used."""
    exports = [(flag, path) for flag, path in exports if path]
    named = [("-o", output), *exports]
    for i, (flag, path) in enumerate(named):
        if is_s3_uri(path):
            continue
        if not is_s3_uri(manifest) and same_file(path, manifest):
            raise OutputRefused(
                f"{flag} {path} is the manifest {manifest}: writing there would destroy "
                "it; check the order of the arguments (batchrek run MANIFEST -o OUTPUT)"
            )
        for other_flag, other in named[:i]:
            if not is_s3_uri(other) and _same_path(path, other):
                raise OutputRefused(
                    f"{flag} {path} is also {other_flag}: each output needs its own file"
                )
    if is_s3_uri(output):
        _check_manifest_not_a_part(output, manifest)
    else:
        _check_output_file(output)
    for flag, path in exports:
        _check_writable(flag, path, probe_bytes=0)


def _same_path(a: str, b: str) -> bool:
    return same_file(a, b) or os.path.realpath(a) == os.path.realpath(b)


def _check_output_file(path: str) -> None:
    target = os.path.realpath(path)
    if os.path.isfile(target):
        reason = not_records_reason(target)
        if reason is not None:
            raise OutputRefused(
                f"-o {path} exists and is not a batchrek output ({reason}); resume would "
                "rewrite it without those lines. Name a new file, or move this one away "
                "if it really is yours to replace"
            )
    _check_writable("-o", path, probe_bytes=PROBE_BYTES)


def _check_writable(flag: str, path: str, *, probe_bytes: int) -> None:
    try:
        probe_writable(path, probe_bytes=probe_bytes)
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else path
        if ".probe-" in os.path.basename(where):  # our probe file: the folder said no
            where = os.path.dirname(where) or "."
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOTDIR, errno.EEXIST):  # makedirs met a file on the way
            reason = "a part of the path is a file, not a folder"
        raise OutputRefused(
            f"{flag} {path} cannot be written: {reason} ({where}); fix the path or its "
            "permissions, or free space, then rerun"
        ) from None


def not_records_reason(path: str) -> str | None:
    """Why the file at ``path`` is not batchrek records, or None if it may be (see the
    module doc). Reads a block or two at each end (more only for a very long line)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        first = next((line for line in _lines_forward(f) if line.strip()), None)
        if first is None:
            return _no_whole_line_reason(f, size)
        last = _last_line(f, size)
    for name, line in (("first", first), ("last", last)):
        if line is None:
            return f"its {name} line is longer than any record"
        if not _is_record(line):
            return f"its {name} line is not a record: {line[:60]!r}"
    return None


def _no_whole_line_reason(f: BinaryIO, size: int) -> str | None:
    """The file has no non-blank whole line: fine when blank, or when all it holds is
    the torn start of a first record (a kill inside the first write)."""
    if size > MAX_LINE_BYTES:
        return "no record line in its first 16 MiB"
    f.seek(0)
    data = f.read()
    cut = data.rfind(b"\n") + 1
    torn = data[cut:].lstrip()
    if not data[:cut].strip() and (not torn or torn.startswith(b'{"id":')):
        return None
    return "it holds no whole record line"


def _is_record(line: bytes) -> bool:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(record, dict)
        and isinstance(record.get("id"), str)
        and isinstance(record.get("operation"), str)
        and record.get("status") in _STATUSES
    )


def _lines_forward(f: BinaryIO) -> Iterator[bytes]:
    """Whole lines from the start, reading at most about ``MAX_LINE_BYTES``; a line
    that long is cut there (it is not a record anyway)."""
    f.seek(0)
    buf = b""
    read = 0
    while read <= MAX_LINE_BYTES:
        chunk = f.read(_BLOCK)
        if not chunk:
            return
        read += len(chunk)
        buf += chunk
        *lines, buf = buf.split(b"\n")
        yield from lines
    yield buf[:_BLOCK]


def _last_line(f: BinaryIO, size: int) -> bytes | None:
    """The last whole non-blank line; a torn tail after the last newline is skipped.
    None when no such line ends within ``MAX_LINE_BYTES`` of the end."""
    window = _BLOCK
    while True:
        start = max(0, size - window)
        f.seek(start)
        data = f.read(size - start)
        cut = data.rfind(b"\n")
        lines = data[:cut].split(b"\n") if cut >= 0 else []
        for line in reversed(lines if start == 0 else lines[1:]):
            if line.strip():
                return line
        if start == 0 or window > MAX_LINE_BYTES:
            return None
        window *= 4


def _check_manifest_not_a_part(output: str, manifest: str) -> None:
    """An S3 resume rewrites and deletes the part files under the prefix: the manifest
    must not be one of them."""
    if not is_s3_uri(manifest) or manifest.endswith("/"):
        return
    try:
        bucket, key = split_s3_uri(manifest)
        out_bucket, prefix = parse_s3_prefix(output)
    except ValueError:
        return
    if bucket == out_bucket and key.startswith(prefix) and part_shard(key[len(prefix) :]):
        raise OutputRefused(
            f"the manifest {manifest} is a part file of the output {output}: resume would "
            "rewrite it; write the output under another prefix"
        )


async def check_s3_output(
    client: S3Client,
    uri: str,
    *,
    shard: int | str = 0,
    retry: Retrier = once,
    endpoint: str | None = None,
) -> None:
    """Prove the run may upload part files under ``uri`` (see the module doc).

    ``retry`` is the run's retry of S3's transient answers (SlowDown, 5xx): a probe
    that meets one is asked again, as every part upload would be, so only a refusal
    that would stop every upload (no bucket, no permission) refuses the output. An S3
    endpoint down for longer than ``outage_timeout_s`` is ``ServiceOutage`` (exit 3),
    not a refusal. ``endpoint`` names the S3 endpoint's circuit breaker."""
    bucket, prefix = parse_s3_prefix(uri)
    key = f"{prefix}part-{new_run_stamp()}-{shard_label(shard)}-999999.jsonl"
    url = endpoint or "s3"

    async def probe() -> None:
        created = await client.create_multipart_upload(Bucket=bucket, Key=key)
        await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=created["UploadId"])

    try:
        await retry(probe, endpoint=f"s3 {url}", name=f"the S3 endpoint {url}")
    except RunStopped:
        raise
    except Exception as exc:
        error = getattr(exc, "response", {}).get("Error", {})
        code = error.get("Code") or type(exc).__name__
        message = error.get("Message") or str(exc)
        raise OutputRefused(
            f"-o {uri} cannot be written ({code}: {message}); check the bucket name and "
            "that your credentials may s3:PutObject and s3:AbortMultipartUpload there"
        ) from None

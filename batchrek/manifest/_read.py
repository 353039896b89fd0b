"""``read_manifest``: pick the reader for a spec and run it as one async stream."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Final

from batchrek.blocking import run_abandonable
from batchrek.errors import ManifestUnreadable, NotAManifest
from batchrek.manifest._csvrows import CsvParser
from batchrek.manifest._detect import FORMATS, detect_file_format, no_bucket
from batchrek.manifest._inventory import parse_inventory, read_inventory
from batchrek.manifest._jsonl import JsonlParser
from batchrek.manifest._lines import LineParser, RecordBatches, split_lines
from batchrek.manifest._localdir import walk_dir
from batchrek.manifest._options import ReadOptions
from batchrek.manifest._s3prefix import list_prefix
from batchrek.manifest._streams import (
    GZIP_MAGIC,
    Peekable,
    S3ClientLike,
    StreamBroken,
    gunzip,
    local_chunks,
    read_all,
    s3_chunks,
)
from batchrek.manifest._txt import TxtParser
from batchrek.models import Item, ManifestProblem
from batchrek.s3uri import S3UriError, is_s3_uri, split_s3_uri

__all__ = ["read_manifest"]

HEAD_BYTES: Final = 64 * 1024
INVENTORY_MANIFEST_LIMIT: Final = 64 * 1024 * 1024
BAD_SHARE_AFTER: Final = 1000
"""The share of malformed lines is judged once this many entries are read."""


async def read_manifest(
    spec: str,
    *,
    fmt: str | None = None,
    s3: S3ClientLike | None = None,
    options: ReadOptions | None = None,
) -> AsyncIterator[Item | ManifestProblem]:
    """Stream the Items a manifest names, and a ManifestProblem for each bad line.

    ``spec`` is a local file or directory, ``s3://bucket/key`` (a manifest object),
    ``s3://bucket/prefix/`` (a listing) or an S3 Inventory ``manifest.json``; ``fmt``
    overrides detection. Raises ``ManifestUnreadable`` (on first iteration) when
    nothing can be read, and when the file turns out not to be a manifest (see
    ``ReadOptions``: the first lines all malformed, or most of them); one bad line
    never raises.
    """
    options = options or ReadOptions()
    guard = _Guard(spec, options)
    # Readers hand over batches; this is the only per-record await, which is most of
    # what a 10-million-line manifest costs beyond building the Items themselves.
    # aclosing: a consumer that stops early (SIGTERM, a limit) releases the open file
    # or S3 response now, not whenever the garbage collector gets to it.
    async with aclosing(await _open_reader(spec.strip(), fmt, s3, options)) as batches:
        async for records in batches:
            for record in records:
                if type(record) is ManifestProblem:
                    if guard.hold(record):
                        continue
                elif guard.held is not None:
                    for held in guard.release():
                        yield held
                yield record
    guard.finish()
    for held in guard.release():
        yield held


class _Guard:
    """Decides that a file is not a manifest: its first ``max_leading_bad_lines``
    entries all malformed, or more than ``max_bad_line_share`` of them once
    ``BAD_SHARE_AFTER`` are read, or nothing but malformed lines at all. Problems at
    the start are held back (at most ``max_leading_bad_lines``) until a good entry
    shows the file is a manifest, so a garbage file ends as exit 2 with no records."""

    def __init__(self, spec: str, options: ReadOptions) -> None:
        self.spec = spec
        self.options = options
        self.held: list[ManifestProblem] | None = []  # None once a good entry came
        self.bad = 0

    def hold(self, problem: ManifestProblem) -> bool:
        """Count ``problem``; True if it is held back (not to be yielded now)."""
        self.bad += 1
        options = self.options
        # ``problem.line`` counts entries read so far (lines, or listing entries).
        if (
            problem.line >= BAD_SHARE_AFTER
            and self.bad > options.max_bad_line_share * problem.line
            and options.max_bad_line_share < 1
        ):
            raise NotAManifest(
                f"{self.spec} is not a manifest: {self.bad:,} of its first {problem.line:,} "
                f"entries are malformed (line {problem.line}: {problem.reason}); check the "
                "file and --format, or raise max_bad_line_share"
            )
        if self.held is None:
            return False
        self.held.append(problem)
        limit = options.max_leading_bad_lines
        if limit and len(self.held) >= limit:
            first = self.held[0]
            raise NotAManifest(
                f"{self.spec} is not a manifest: its first {len(self.held)} entries are all "
                f"malformed (line {first.line}: {first.reason}); check the file and "
                "--format, or raise max_leading_bad_lines"
            )
        return True

    def release(self) -> list[ManifestProblem]:
        held, self.held = self.held or [], None
        return held

    def finish(self) -> None:
        """At the end: a file with malformed lines and no usable one is no manifest."""
        if self.held and self.options.max_leading_bad_lines:
            first = self.held[0]
            raise NotAManifest(
                f"{self.spec} is not a manifest: none of its entries is usable "
                f"({len(self.held)} malformed; line {first.line}: {first.reason}); "
                "check the file and --format"
            )


async def _open_reader(
    spec: str, fmt: str | None, s3: S3ClientLike | None, options: ReadOptions
) -> RecordBatches:
    if fmt is not None and fmt not in FORMATS:
        raise ManifestUnreadable(
            f"unknown manifest format {fmt!r}; use one of {', '.join(sorted(FORMATS))}"
        )
    if is_s3_uri(spec):
        try:
            bucket, key = split_s3_uri(spec)
        except S3UriError as exc:
            raise ManifestUnreadable(no_bucket(spec)) from exc
        client = _need_s3(s3, spec)
        if fmt == "s3prefix" or (fmt is None and (not key or key.endswith("/"))):
            return list_prefix(client, bucket, key, options)
        if fmt == "dir":
            raise ManifestUnreadable(f"{spec} is on S3; format 'dir' is for local folders")
        stream = Peekable(s3_chunks(client, bucket, key))
        base_dir = None
        local = False  # someone else's data: it must not read this machine's files
    elif spec.lower().startswith(("http://", "https://")):
        raise ManifestUnreadable(
            f"{spec}: manifests over http(s) are not supported; download it or put it on S3"
        )
    else:
        path, is_dir = await run_abandonable(_resolve_local, spec)
        if fmt == "dir" or (fmt is None and is_dir):
            if not is_dir:
                raise ManifestUnreadable(f"{spec} is not a directory")
            return walk_dir(path, options)
        if fmt == "s3prefix":
            raise ManifestUnreadable(f"{spec} is not on S3; format 's3prefix' needs s3://")
        stream = Peekable(local_chunks(path))
        base_dir = os.path.dirname(path)
        local = True

    stream, head = await _open(stream, spec)
    fmt = fmt or detect_file_format(spec, head)
    if fmt == "inventory":
        try:
            data = await read_all(stream.chunks(), limit=INVENTORY_MANIFEST_LIMIT, name=spec)
        except StreamBroken as exc:
            raise ManifestUnreadable(str(exc)) from exc
        return read_inventory(parse_inventory(data, where=spec), _need_s3(s3, spec), options)
    parser: LineParser
    if fmt == "jsonl":
        parser = JsonlParser(base_dir=base_dir, allow_local=local)
    elif fmt == "csv":
        parser = CsvParser(base_dir=base_dir, allow_local=local)
    else:
        parser = TxtParser(base_dir=base_dir, allow_local=local)
    return _parse(stream, parser, spec)


async def _open(stream: Peekable, spec: str) -> tuple[Peekable, bytes]:
    """Undo gzip if the bytes say so, and return the head to detect the format from."""
    try:
        if (await stream.peek(len(GZIP_MAGIC))).startswith(GZIP_MAGIC):
            stream = Peekable(gunzip(stream.chunks(), name=spec))
        return stream, await stream.peek(HEAD_BYTES)
    except StreamBroken as exc:
        hint = "; to list a prefix, end the URI with '/'" if is_s3_uri(spec) else ""
        raise ManifestUnreadable(f"{exc}; check the manifest path or URI{hint}") from exc


async def _parse(stream: Peekable, parser: LineParser, spec: str) -> RecordBatches:
    last = 0
    try:
        async for batch in split_lines(stream.chunks()):
            last = batch.first + len(batch.lines) - 1
            yield parser.feed(batch)
    except StreamBroken as exc:
        if last == 0:
            raise ManifestUnreadable(f"{exc}; check the manifest path or URI") from exc
        yield [ManifestProblem(last + 1, f"{exc}; reading {spec} stopped here")]


def _resolve_local(spec: str) -> tuple[str, bool]:
    """The absolute path (relative manifest entries resolve against its folder), is-dir."""
    path = os.path.abspath(os.path.expanduser(spec.removeprefix("file://")))
    return path, os.path.isdir(path)


def _need_s3(s3: S3ClientLike | None, spec: str) -> S3ClientLike:
    if s3 is None:
        raise ManifestUnreadable(f"{spec} needs an S3 client, and none was given")
    return s3

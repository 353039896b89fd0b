"""The records of earlier runs' outputs, oldest first.

An output is a local JSON Lines file, an ``s3://bucket/key`` object, or an
``s3://bucket/prefix/`` of part files. Outputs are read in the order given; an S3
prefix's part files in name order, which is run order (their names start with the
run's UTC stamp). Lines that are not records (a torn last line) are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import orjson

from batchrek.errors import ConfigError

__all__ = ["read_outputs"]

_CHUNK = 4 * 1024 * 1024


def _records(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record and "operation" in record:
            yield record


def _local(path: str) -> Iterator[dict[str, Any]]:
    tail = b""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ConfigError(f"cannot read output {path}: {exc.strerror}") from None
    with fh:
        while chunk := fh.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            yield from _records(data[:cut])
    yield from _records(tail)


async def _object(s3: Any, bucket: str, key: str) -> AsyncIterator[dict[str, Any]]:
    response = await s3.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    tail = b""
    try:
        while chunk := await body.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            for record in _records(data[:cut]):
                yield record
    finally:
        body.close()
    for record in _records(tail):
        yield record


async def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = await s3.list_objects_v2(**kwargs)
        keys.extend(
            e["Key"] for e in page.get("Contents", ()) if e["Key"].endswith((".jsonl", ".json"))
        )
        if not page.get("IsTruncated"):
            return sorted(keys)
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


async def read_outputs(
    outputs: Sequence[str], *, s3: Any | None
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for every record, oldest output first."""
    for output in outputs:
        if not output.startswith("s3://"):
            for record in _local(output):
                yield output, record
            continue
        if s3 is None:
            raise ValueError(f"reading {output} needs an S3 client")
        bucket, _, key = output[5:].partition("/")
        keys = await _keys(s3, bucket, key) if not key or key.endswith("/") else [key]
        for one in keys:
            where = f"s3://{bucket}/{one}"
            async for record in _object(s3, bucket, one):
                yield where, record

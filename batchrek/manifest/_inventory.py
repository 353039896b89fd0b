"""S3 Inventory: a ``manifest.json`` naming gzip CSV data files in a destination bucket.

Decisions (an inventory lists a whole bucket; a user wants its current images):
- delete markers are skipped, and when the schema has ``IsLatest`` so are noncurrent
  versions; the current version is pinned through ``S3Ref.version``;
- keys without an image extension are skipped, as in a prefix listing;
- ``line`` numbers run on across the data files, so every record has its own number.
Only CSV inventories are read; ORC and Parquet need a columnar reader batchrek lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from batchrek.errors import ManifestUnreadable
from batchrek.manifest._build import decode_key, make_item, make_s3ref
from batchrek.manifest._csvrows import split_csv_line
from batchrek.manifest._images import (
    SKIP_DELETE_MARKER,
    SKIP_EXTENSION,
    SKIP_NONCURRENT,
    has_image_extension,
)
from batchrek.manifest._lines import LineParser, LineRejected, RecordBatches, split_lines
from batchrek.manifest._options import ReadOptions
from batchrek.manifest._streams import S3ClientLike, StreamBroken, gunzip, s3_chunks
from batchrek.models import Item, ManifestProblem

__all__ = ["Inventory", "InventoryFile", "InventoryRows", "parse_inventory", "read_inventory"]

_ARN_PREFIX: Final = "arn:aws:s3:::"


@dataclass(frozen=True, slots=True)
class InventoryFile:
    key: str
    size: int | None = None
    md5: str | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    source_bucket: str
    destination_bucket: str
    schema: tuple[str, ...]
    files: tuple[InventoryFile, ...]


def parse_inventory(data: bytes, *, where: str) -> Inventory:
    """Validate ``manifest.json``; every defect is ``ManifestUnreadable`` saying which."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ManifestUnreadable(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestUnreadable(f"{where} is not an S3 Inventory manifest (not a JSON object)")
    file_format = str(doc.get("fileFormat", "")).upper()
    if file_format != "CSV":
        raise ManifestUnreadable(
            f"{where}: S3 Inventory fileFormat {doc.get('fileFormat')!r} is not supported; "
            "batchrek reads CSV inventories only - add a CSV inventory configuration"
        )
    source = _text(doc, "sourceBucket", where)
    destination = _text(doc, "destinationBucket", where).removeprefix(_ARN_PREFIX)
    schema = tuple(column.strip() for column in _text(doc, "fileSchema", where).split(","))
    lowered = [column.lower() for column in schema]
    if "bucket" not in lowered or "key" not in lowered:
        raise ManifestUnreadable(f"{where}: fileSchema {schema!r} has no Bucket and Key columns")
    files = doc.get("files")
    if not isinstance(files, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("key"), str) for entry in files
    ):
        raise ManifestUnreadable(f"{where}: 'files' must be a list of {{key, size, MD5checksum}}")
    return Inventory(
        source_bucket=source,
        destination_bucket=destination,
        schema=schema,
        files=tuple(
            InventoryFile(entry["key"], entry.get("size"), entry.get("MD5checksum"))
            for entry in files
        ),
    )


def _text(doc: Mapping[str, Any], name: str, where: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ManifestUnreadable(f"{where}: S3 Inventory manifest has no {name!r}")
    return value.strip()


async def read_inventory(
    inventory: Inventory, s3: S3ClientLike, options: ReadOptions | None = None
) -> RecordBatches:
    """Stream every data file in order, decompressing as it arrives.

    A data file that breaks before anything was read makes the inventory unreadable;
    one that breaks later ends that file with a problem record, and reading goes on.
    """
    bucket = inventory.destination_bucket
    last = 0  # the number of the last line read, over all data files
    for data_file in inventory.files:
        where = f"s3://{bucket}/{data_file.key}"
        rows = InventoryRows(
            inventory.schema, default_bucket=inventory.source_bucket, options=options
        )
        chunks = gunzip(s3_chunks(s3, bucket, data_file.key), name=where)
        try:
            async for batch in split_lines(chunks, first=last + 1):
                last = batch.first + len(batch.lines) - 1
                yield rows.feed(batch)
        except StreamBroken as exc:
            if last == 0:
                raise ManifestUnreadable(f"S3 Inventory data file unreadable: {exc}") from exc
            last += 1
            yield [ManifestProblem(last, f"{exc}; the rest of {where} was skipped")]


class InventoryRows(LineParser):
    """Rows of one data file, columns placed by the manifest's ``fileSchema``."""

    def __init__(
        self, schema: tuple[str, ...], *, default_bucket: str, options: ReadOptions | None = None
    ) -> None:
        self._options = options or ReadOptions()
        self._extensions = self._options.extensions
        index = {name.lower(): position for position, name in enumerate(schema)}
        self._width = len(schema)
        self._bucket = index["bucket"]
        self._key = index["key"]
        self._version = index.get("versionid")
        self._latest = index.get("islatest")
        self._delete_marker = index.get("isdeletemarker")
        self._size = index.get("size")
        self._etag = index.get("etag")
        self._default_bucket = default_bucket

    def parse_line(self, line: str, number: int) -> Item | None:
        if not line:
            return None
        width = self._width
        # Inventory quotes every field and URL-encodes keys, so '","' only separates.
        if line[0] == '"' and line[-1] == '"' and line.count('"') == 2 * width:
            fields = line[1:-1].split('","')
        else:
            fields = split_csv_line(line)
        if len(fields) != width:
            raise LineRejected(f"{len(fields)} fields, fileSchema has {width}")
        if self._delete_marker is not None and fields[self._delete_marker].lower() == "true":
            self._options.skipped(SKIP_DELETE_MARKER)
            return None
        if self._latest is not None and fields[self._latest].lower() == "false":
            self._options.skipped(SKIP_NONCURRENT)
            return None
        key = decode_key(fields[self._key])
        if not has_image_extension(key, self._extensions):
            self._options.skipped(SKIP_EXTENSION)
            return None
        bucket = fields[self._bucket] or self._default_bucket
        version = fields[self._version] or None if self._version is not None else None
        size_text = fields[self._size] if self._size is not None else ""
        etag = fields[self._etag] if self._etag is not None else ""
        source = make_s3ref(bucket, key, version)
        return make_item(
            str(source),
            source,
            int(size_text) if size_text.isdigit() else None,
            etag.strip('"') or None,
            None,
            number,
        )

    def __repr__(self) -> str:
        return f"InventoryRows(width={self._width})"

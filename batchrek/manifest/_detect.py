"""Which reader a manifest needs, from its name first and its first bytes second.

The name wins because it is what the user chose; content sniffing only settles
names that say nothing (``list``, ``images.dat``, an S3 key without extension).
"""

from __future__ import annotations

import os
import re
from typing import Final

from batchrek.errors import ManifestUnreadable
from batchrek.s3uri import S3UriError, is_s3_uri, split_s3_uri

__all__ = ["FORMATS", "detect_file_format", "detect_format", "no_bucket"]

FORMATS: Final = frozenset({"jsonl", "csv", "txt", "inventory", "s3prefix", "dir"})

_BY_EXTENSION: Final = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".manifest": "jsonl",
    ".csv": "csv",
    ".txt": "txt",
    ".lst": "txt",
    ".list": "txt",
}
# Not text: ORC, Parquet, the image formats a user might pass by mistake, zip.
_BINARY_MAGIC: Final = (b"ORC", b"PAR1", b"\xff\xd8\xff", b"\x89PNG", b"PK\x03\x04", b"GIF8")
_BUCKET_NAME: Final = re.compile(r'"?[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"?')
_SCHEMES: Final = ("s3://", "http://", "https://", "file://")
_SNIFF_BYTES: Final = 64 * 1024


def detect_format(spec: str, head: bytes) -> str:
    """``jsonl``, ``csv``, ``txt``, ``inventory``, ``s3prefix`` or ``dir`` for ``spec``.

    ``head`` is the start of the manifest's (decompressed) content, or ``b""`` when
    there is no file to peek into. Raises ``ManifestUnreadable`` for binary content
    and for an ``s3://`` spec without a bucket. A local ``spec`` is checked for being
    a directory (one ``stat``).
    """
    if not is_s3_uri(spec) and os.path.isdir(spec):
        return "dir"
    return detect_file_format(spec, head)


def detect_file_format(spec: str, head: bytes) -> str:
    """``detect_format`` without touching the file system (a local spec is a file)."""
    if is_s3_uri(spec):
        try:
            _, key = split_s3_uri(spec)
        except S3UriError as exc:
            raise ManifestUnreadable(no_bucket(spec)) from exc
        if not key or key.endswith("/"):
            return "s3prefix"
        name = key
    else:
        name = spec
    head = head[:_SNIFF_BYTES]
    name = os.path.basename(name.split("?", 1)[0]).lower().removesuffix(".gz")
    if name == "manifest.json" or _looks_like_inventory(head):
        return "inventory"
    by_name = _BY_EXTENSION.get(os.path.splitext(name)[1])
    if by_name is not None:
        return by_name
    return _sniff(spec, head)


def no_bucket(spec: str) -> str:
    """What ``ManifestUnreadable`` says for an ``s3://`` spec without a bucket."""
    return f"{spec!r} names no bucket; use s3://bucket/key"


def _looks_like_inventory(head: bytes) -> bool:
    start = head.lstrip()[:1]
    return start == b"{" and b'"sourceBucket"' in head and b'"fileSchema"' in head


def _sniff(spec: str, head: bytes) -> str:
    if head.startswith(_BINARY_MAGIC) or b"\x00" in head:
        raise ManifestUnreadable(
            f"{spec} is binary, not a manifest; batchrek reads JSON Lines, CSV, text lists "
            "and S3 Inventory (CSV) manifests - pass --format if the name misleads"
        )
    first = _first_line(head)
    if first.startswith("{"):
        return "jsonl"
    if first.startswith("["):
        raise ManifestUnreadable(
            f"{spec} looks like a JSON array; write one JSON object per line (JSON Lines)"
        )
    if first.startswith(_SCHEMES) or "," not in first:
        return "txt"
    cells = [cell.strip().lower() for cell in first.split(",")]
    if "image" in cells or _BUCKET_NAME.fullmatch(cells[0]):
        return "csv"
    return "txt"


def _first_line(head: bytes) -> str:
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped
    return ""

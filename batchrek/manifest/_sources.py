"""Parse the string a manifest gives for an image into a typed Source."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, unquote, urlsplit

from batchrek.models import HttpUrl, LocalPath, S3Ref, Source

__all__ = ["SourceSyntaxError", "parse_s3_uri", "parse_source"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")


class SourceSyntaxError(ValueError):
    """The string names no image we know how to fetch."""


def parse_s3_uri(text: str) -> S3Ref:
    """``s3://bucket/key[?versionId=V]``. The key is taken as written (not URL-decoded)."""
    if not text.startswith("s3://"):
        raise SourceSyntaxError(f"not an s3:// URI: {text!r}")
    rest = text[5:]
    bucket, sep, key = rest.partition("/")
    version: str | None = None
    if "?versionId=" in key:
        key, _, query = key.partition("?")
        version = parse_qs(query).get("versionId", [None])[0]
    if not bucket or not sep or not key:
        raise SourceSyntaxError(f"s3 URI needs a bucket and a key: {text!r}")
    return S3Ref(bucket=bucket, key=key, version=version)


def parse_source(text: str, *, base_dir: str | None = None) -> Source:
    """Turn ``s3://...``, ``http(s)://...``, ``file://...`` or a path into a Source.

    Relative paths are resolved against ``base_dir`` (the manifest's folder), so a
    manifest can travel with its images.
    """
    text = text.strip()
    if not text:
        raise SourceSyntaxError("empty image reference")
    if text.startswith("s3://"):
        return parse_s3_uri(text)
    lowered = text[:8].lower()
    if lowered.startswith(("https://", "http://")):
        parts = urlsplit(text)
        if not parts.netloc:
            raise SourceSyntaxError(f"URL has no host: {text!r}")
        return HttpUrl(text)
    if lowered.startswith("file://"):
        return LocalPath(unquote(urlsplit(text).path))
    scheme = _SCHEME.match(text)
    if scheme:
        raise SourceSyntaxError(f"unsupported scheme {scheme.group(1)!r} in {text!r}")
    if base_dir is not None and not os.path.isabs(text):
        text = os.path.join(base_dir, text)
    return LocalPath(text)

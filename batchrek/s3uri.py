"""The one parser of ``s3://`` URIs, for every place that takes one.

Three shapes, one set of rules:

- ``split_s3_uri("s3://b/k")`` -> ``("b", "k")``: a bucket and whatever follows (may be
  empty: a whole bucket). Manifests and listings use it.
- ``parse_s3_object("s3://b/k?versionId=V")`` -> ``S3Ref``: one object; the key is
  required and taken as written (not URL-decoded).
- ``parse_s3_prefix("s3://b/p")`` -> ``("b", "p/")``: a folder; outputs, staging and
  ledgers use it.

Every malformed URI raises ``S3UriError`` (a ``ValueError``) that says what is
missing; callers translate it into their own error (a manifest record, a ConfigError).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from batchrek.models import S3Ref

__all__ = ["S3UriError", "is_s3_uri", "parse_s3_object", "parse_s3_prefix", "split_s3_uri"]

_SCHEME = "s3://"


class S3UriError(ValueError):
    """Not an ``s3://`` URI, or one without the part the caller needs."""


def is_s3_uri(text: str) -> bool:
    return text.startswith(_SCHEME)


def split_s3_uri(text: str) -> tuple[str, str]:
    """``s3://bucket/rest`` -> ``(bucket, rest)``; ``rest`` may be empty."""
    if not text.startswith(_SCHEME):
        raise S3UriError(f"not an s3:// URI: {text!r}")
    bucket, _, rest = text[len(_SCHEME) :].partition("/")
    if not bucket:
        raise S3UriError(f"s3 URI needs a bucket: {text!r}")
    return bucket, rest


def parse_s3_object(text: str) -> S3Ref:
    """``s3://bucket/key[?versionId=V]`` -> ``S3Ref``; the key is required."""
    if not text.startswith(_SCHEME):
        raise S3UriError(f"not an s3:// URI: {text!r}")
    bucket, sep, key = text[len(_SCHEME) :].partition("/")
    version: str | None = None
    if "?versionId=" in key:
        key, _, query = key.partition("?")
        version = parse_qs(query).get("versionId", [None])[0]
    if not bucket or not sep or not key:
        raise S3UriError(f"s3 URI needs a bucket and a key: {text!r}")
    return S3Ref(bucket=bucket, key=key, version=version)


def parse_s3_prefix(text: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, "prefix/")``: the prefix is a folder
    (empty for the bucket's root)."""
    bucket, prefix = split_s3_uri(text)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix

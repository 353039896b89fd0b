"""Building Items at manifest speed.

A frozen dataclass pays ``object.__setattr__`` per field in ``__init__``: for Item and
S3Ref together that is ~2 µs, over half the cost of a plain-list line and the
difference between ~250k and ~350k lines/s. These constructors fill the same slots
directly. They are only valid while the classes stay plain value holders (no
``__post_init__``); tests/test_manifest_build.py checks both that and equality.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote_plus

from batchrek.manifest._sources import parse_source
from batchrek.models import Item, S3Ref, Source

__all__ = ["decode_key", "make_item", "make_s3ref", "to_source"]

_new: Final = object.__new__
_item_id, _item_source, _item_size, _item_etag, _item_meta, _item_line = (
    Item.__dict__[name].__set__ for name in ("id", "source", "size", "etag", "meta", "line")
)
_ref_bucket, _ref_key, _ref_version = (
    S3Ref.__dict__[name].__set__ for name in ("bucket", "key", "version")
)


def make_item(
    item_id: str,
    source: Source,
    size: int | None,
    etag: str | None,
    meta: Mapping[str, Any] | None,
    line: int | None,
) -> Item:
    """``Item(item_id, source, size, etag, meta, line)``, without the frozen-init toll."""
    item: Item = _new(Item)
    _item_id(item, item_id)
    _item_source(item, source)
    _item_size(item, size)
    _item_etag(item, etag)
    _item_meta(item, meta)
    _item_line(item, line)
    return item


def make_s3ref(bucket: str, key: str, version: str | None) -> S3Ref:
    """``S3Ref(bucket, key, version)``, without the frozen-init toll."""
    ref: S3Ref = _new(S3Ref)
    _ref_bucket(ref, bucket)
    _ref_key(ref, key)
    _ref_version(ref, version)
    return ref


def to_source(text: str, base_dir: str | None, allow_local: bool = True) -> Source:
    """``parse_source(text, base_dir=base_dir, allow_local=allow_local)``, the plain
    ``s3://bucket/key`` case first.

    The fast path only skips ``parse_qs`` and the frozen ``S3Ref`` init. It takes the
    one shape whose reading cannot be in doubt (no query, no surrounding blanks, a
    bucket and a key) and hands everything else to ``parse_source``, so accepting,
    rejecting and the error messages stay with ``batchrek.s3uri``;
    tests/manifest/test_manifest_build.py checks that both paths agree.
    Raises ``SourceSyntaxError``.
    """
    if text.startswith("s3://") and "?" not in text and not text[-1].isspace():
        bucket, _, key = text[5:].partition("/")
        if bucket and key:
            # make_s3ref(bucket, key, None), inlined: one call less on every line.
            ref: S3Ref = _new(S3Ref)
            _ref_bucket(ref, bucket)
            _ref_key(ref, key)
            _ref_version(ref, None)
            return ref
    return parse_source(text, base_dir=base_dir, allow_local=allow_local)


def decode_key(key: str) -> str:
    """An S3 Inventory / Batch Operations key, URL-decoded (``+`` is a space)."""
    return unquote_plus(key) if "%" in key or "+" in key else key

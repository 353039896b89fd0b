"""JSON Lines: one object per line, the image under ``image`` or ``source-ref``.

``source-ref`` is what SageMaker Ground Truth and Rekognition Custom Labels
manifests use; every key besides the image and ``id`` (labels, job metadata) is
carried into ``Item.meta`` untouched, so results can be joined back to them. For an
S3 image, ``size`` and ``etag`` (both, as S3 gives them) are taken as the object's.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from batchrek.manifest._build import make_item, to_source
from batchrek.manifest._lines import LineParser, LineRejected
from batchrek.models import Item, S3Ref

__all__ = ["JsonlParser"]

# orjson writes at most 254 levels of nesting, and a record puts ``meta`` one level
# down: a line that cannot hold that many brackets needs no check.
_DEEP_BRACKETS: Final = 250


class JsonlParser(LineParser):
    def __init__(self, *, base_dir: str | None, allow_local: bool = True) -> None:
        self._base_dir = base_dir
        self._local = allow_local

    def parse_line(self, line: str, number: int) -> Item | None:
        if not line or line.isspace():
            return None
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise LineRejected(f"invalid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise LineRejected(f"expected a JSON object, got {_kind(record)}")
        # The record is ours (fresh from orjson): popping what is used leaves the meta.
        if "image" in record:
            image_key = "image"
        elif "source-ref" in record:
            image_key = "source-ref"
        else:
            raise LineRejected("no 'image' or 'source-ref' field")
        image = record.pop(image_key)
        if not isinstance(image, str):
            raise LineRejected(f"'{image_key}' must be a string, got {_kind(image)}")
        source = to_source(image, self._base_dir, self._local)
        item_id = record.pop("id", None)
        if item_id is None:
            item_id = image.strip()
        elif type(item_id) is int:
            item_id = str(item_id)
        elif type(item_id) is not str:
            raise LineRejected(f"'id' must be a string or an integer, got {_kind(item_id)}")
        if record and len(line) > _DEEP_BRACKETS and _deep(line):
            try:
                orjson.dumps({"meta": record})  # as the output record will carry it
            except orjson.JSONEncodeError as exc:
                raise LineRejected(f"its fields cannot be written to the output: {exc}") from None
        size = etag = None
        # What S3 says about the object, when the manifest kept it: the ledger's
        # content identity without a HEAD, and routing without one.
        if (
            isinstance(source, S3Ref)
            and type(record.get("size")) is int
            and type(record.get("etag")) is str
        ):
            size, etag = record.pop("size"), record.pop("etag").strip('"')
        return make_item(item_id, source, size, etag, record or None, number)

    def __repr__(self) -> str:
        return f"JsonlParser(base_dir={self._base_dir!r})"


def _deep(line: str) -> bool:
    """Whether the line might nest too deep to be written (a cheap upper bound)."""
    return line.count("{") + line.count("[") > _DEEP_BRACKETS


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )

"""JSON Lines: one object per line, the image under ``image`` or ``source-ref``.

``source-ref`` is what SageMaker Ground Truth and Rekognition Custom Labels
manifests use; every key besides the image and ``id`` (labels, job metadata) is
carried into ``Item.meta`` untouched, so results can be joined back to them. For an
S3 image, ``size`` and ``etag`` (both, as S3 gives them) are taken as the object's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from batchrek.manifest._build import make_item, to_source
from batchrek.manifest._lines import LineBatch, problem
from batchrek.manifest._sources import SourceSyntaxError
from batchrek.models import Item, ManifestProblem, S3Ref

__all__ = ["JsonlParser"]


class JsonlParser:
    def __init__(self, *, base_dir: str | None) -> None:
        self._base_dir = base_dir

    def feed(self, batch: LineBatch) -> Iterator[Item | ManifestProblem]:
        bad = batch.bad
        for index, line in enumerate(batch.lines):
            number = batch.first + index
            if bad and index in bad:
                yield problem(number, bad[index], line)
            elif line and not line.isspace():
                yield self._parse(number, line)

    def _parse(self, number: int, line: str) -> Item | ManifestProblem:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return problem(number, f"invalid JSON: {exc}", line)
        if not isinstance(record, dict):
            return problem(number, f"expected a JSON object, got {_kind(record)}", line)
        # The record is ours (fresh from orjson): popping what is used leaves the meta.
        if "image" in record:
            image_key = "image"
        elif "source-ref" in record:
            image_key = "source-ref"
        else:
            return problem(number, "no 'image' or 'source-ref' field", line)
        image = record.pop(image_key)
        if not isinstance(image, str):
            return problem(number, f"'{image_key}' must be a string, got {_kind(image)}", line)
        try:
            source = to_source(image, self._base_dir)
        except SourceSyntaxError as exc:
            return problem(number, str(exc), line)
        item_id = record.pop("id", None)
        if item_id is None:
            item_id = image.strip()
        elif type(item_id) is int:
            item_id = str(item_id)
        elif type(item_id) is not str:
            return problem(
                number, f"'id' must be a string or an integer, got {_kind(item_id)}", line
            )
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


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )

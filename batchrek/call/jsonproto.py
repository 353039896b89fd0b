"""AWS JSON 1.1 bodies, both ways, with orjson and walkers compiled from the model.

Request: the parameters as JSON, blobs (``Image.Bytes``) as base64 and timestamps as
epoch seconds, as botocore's ``JSONSerializer`` writes them; orjson does it in one pass
(its ``default`` hook sees only the bytes and datetimes). The body differs from
botocore's in whitespace only.

Response: botocore's parser decodes with the standard ``json`` module, then walks the
output shape with a method lookup per value: it keeps only modelled members, in the
model's order, drops nulls, decodes blobs and timestamps. ``ResponseShape`` does the
same walk with closures built once per shape, on orjson's output. Error responses
are rare and go through botocore's own parser, so error codes, messages and modelled
error fields are exactly the SDK's. ``tests/call/test_jsonproto.py`` checks both
against botocore on every operation's answer from the emulator.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import orjson

__all__ = ["ResponseShape", "UnsupportedShape", "encode_request"]

Walker = Callable[[Any], Any]


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime):  # botocore: unixtimestamp, whole seconds
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(calendar.timegm(value.utctimetuple()))
    raise TypeError(f"cannot send a {type(value).__name__} in a JSON request")


def encode_request(params: Mapping[str, Any]) -> bytes:
    """The JSON body for ``params`` (the boto3 keyword arguments)."""
    return orjson.dumps(params, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


class UnsupportedShape(Exception):
    """The output shape has something the compiled walker does not mirror (a tagged
    union, an event stream): use botocore's parser for that operation."""


class ResponseShape:
    """A successful response's body parsed as botocore's JSON parser would.

    ``blob`` and ``timestamp`` are the client's own parsers (botocore lets a session
    replace the timestamp parser), so values come out of the same functions.
    """

    def __init__(
        self,
        shape: Any,
        *,
        blob: Callable[[Any], Any] = base64.b64decode,
        timestamp: Callable[[Any], Any] | None = None,
    ) -> None:
        if timestamp is None:
            from botocore.utils import parse_timestamp

            timestamp = parse_timestamp
        self._blob = blob
        self._timestamp = timestamp
        self._compiled: dict[str, Walker | None] = {}
        self._walk = self._compile(shape) if shape is not None else None

    def parse(self, body: bytes) -> dict[str, Any]:
        """The modelled members of ``body`` (botocore: an empty body is ``{}``)."""
        if self._walk is None:
            return {}
        raw = orjson.loads(body) if body else {}
        if not isinstance(raw, dict):
            raise ValueError("response body is not a JSON object")
        parsed: dict[str, Any] = self._walk(raw)
        return parsed

    # -- compiling ---------------------------------------------------------------

    def _compile(self, shape: Any) -> Walker | None:
        """A function that turns the JSON value of ``shape`` into botocore's value;
        None when the value passes through unchanged (strings, numbers, booleans,
        and lists or maps of them)."""
        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape)
        if kind == "list":
            item = self._compile(shape.member)
            if item is None:
                return None
            return lambda value: [item(v) for v in value]
        if kind == "map":
            key = self._compile(shape.key)
            val = self._compile(shape.value)
            if key is None and val is None:
                return None
            k = key or _same
            v = val or _same
            return lambda value: {k(a): v(b) for a, b in value.items()}
        if kind == "blob":
            return self._blob
        if kind == "timestamp":
            return self._timestamp
        return None

    def _structure(self, shape: Any) -> Walker | None:
        if shape.is_document_type:
            return None
        if getattr(shape, "is_tagged_union", False) or shape.serialization.get("eventstream"):
            raise UnsupportedShape(shape.name)
        name = shape.name
        if name in self._compiled:  # a recursive shape: late-bound
            return lambda value: self._compiled[name](value)  # type: ignore[misc]
        self._compiled[name] = None
        members = [
            (member, m.serialization.get("name", member), self._compile(m))
            for member, m in shape.members.items()
        ]

        def walker(value: Any) -> Any:
            if value is None:  # botocore keeps a null structure as None
                return None
            get = value.get
            out = {}
            for member, key, sub in members:  # the model's order, as botocore's
                item = get(key)
                if item is not None:
                    out[member] = item if sub is None else sub(item)
            return out

        self._compiled[name] = walker
        return walker


def _same(value: Any) -> Any:
    return value

"""A record always reaches the output as one JSON line: the writer never crashes on
what a manifest or a file system hands it."""

from __future__ import annotations

import orjson

from batchrek.models import Result
from batchrek.run.records import record_line


def _result(**changes: object) -> Result:
    base: dict[str, object] = {
        "id": "i",
        "source": "s",
        "operation": "detect_labels",
        "status": "ok",
        "input": "bytes",
        "attempts": 1,
        "latency_ms": 1.0,
        "response": {"Labels": []},
    }
    return Result(**{**base, **changes})  # type: ignore[arg-type]


def test_an_ordinary_record_is_one_line() -> None:
    line = record_line(_result(meta={"album": "x"}))
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert orjson.loads(line)["meta"] == {"album": "x"}


def test_a_file_name_that_is_not_utf8_is_written_escaped() -> None:
    name = b"/imgs/caf\xe9.jpg".decode("utf-8", "surrogateescape")
    record = orjson.loads(record_line(_result(id="x", source=name)))
    assert record["source"] == "/imgs/caf\\xe9.jpg"


def test_meta_too_deep_to_write_is_dropped_with_a_warning_and_the_response_kept() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(300):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    record = orjson.loads(record_line(_result(meta={"m": deep})))
    assert "meta" not in record
    assert record["response"] == {"Labels": []}  # a billed result is never lost
    assert [w["code"] for w in record["warnings"]] == ["MetaNotWritten"]

"""``output.guard``: what is refused before a run reads or writes its output, and why.

The read-only mount, permission and full-disk cases are injected here (the suite runs
as root, where they cannot be staged on disk); the CLI tests in
``tests/e2e/test_output_safety.py`` and ``test_unwritable_output.py`` show the rest
through the real command."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek.errors import OutputRefused
from batchrek.output import check_paths, check_s3_output, not_records_reason

pytestmark = pytest.mark.anyio


def rec(i: str, status: str = "ok") -> bytes:
    return orjson.dumps({"id": i, "source": "s", "operation": "op", "status": status}) + b"\n"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n\n  \n",
        rec("a"),
        rec("a") + rec("b", "error"),
        rec("a") + rec("b")[:12],  # torn tail: a kill inside a write
        rec("a")[:15],  # only a torn first record
        b"\n" + rec("a") + b"\n",  # blank lines around records
    ],
    ids=["empty", "blank", "one", "two", "torn-tail", "torn-first", "blank-lines"],
)
def test_batchrek_output_is_accepted(tmp_path: Path, body: bytes) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(body)
    assert not_records_reason(str(out)) is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"meeting notes\nmore\n", "first line is not a record"),
        (b'{"id": "a", "image": "a.jpg"}\n', "first line is not a record"),
        (rec("a") + b"appended by hand\n", "last line is not a record"),
        (b"no newline and not a record", "no whole record line"),
        (b'["id", "operation", "status"]\n', "first line is not a record"),
        (b"x" * (17 * 1024 * 1024), "first line is not a record"),
    ],
    ids=["notes", "manifest", "appended", "one-line", "json-array", "huge-line"],
)
def test_other_content_is_refused_with_the_reason(tmp_path: Path, body: bytes, says: str) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(body)
    reason = not_records_reason(str(out))
    assert says in (reason or "")


def test_a_long_last_record_is_read_whole(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    big = orjson.dumps({"id": "b", "operation": "op", "status": "ok", "r": "x" * 300_000})
    out.write_bytes(rec("a") + big + b"\n")
    assert not_records_reason(str(out)) is None


def test_the_manifest_through_a_hard_link_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b'{"id":"a","image":"a.jpg"}\n')
    os.link(manifest, tmp_path / "out.jsonl")
    with pytest.raises(OutputRefused, match="is the manifest"):
        check_paths(str(tmp_path / "out.jsonl"), manifest=str(manifest))


def test_a_metrics_file_is_not_the_manifest_either(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"x\n")
    with pytest.raises(OutputRefused, match=r"--metrics-out .* is the manifest"):
        check_paths(
            str(tmp_path / "out.jsonl"),
            manifest=str(manifest),
            exports=[("--metrics-out", str(manifest))],
        )


def test_two_metrics_files_must_differ(tmp_path: Path) -> None:
    with pytest.raises(OutputRefused, match=r"--metrics-textfile .* is also --metrics-out"):
        check_paths(
            str(tmp_path / "out.jsonl"),
            manifest=str(tmp_path / "m.jsonl"),
            exports=[("--metrics-out", "m.json"), ("--metrics-textfile", "./m.json")],
        )


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.EROFS, "Read-only file system"),
        (errno.EACCES, "Permission denied"),
        (errno.ENOSPC, "No space left on device"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_and_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, says: str
) -> None:
    def refuse(path: str, flags: int, mode: int = 0o777) -> int:
        raise OSError(code, os.strerror(code), path)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OutputRefused, match=rf"-o .*out.jsonl cannot be written: {says}"):
        check_paths(str(tmp_path / "out.jsonl"), manifest=str(tmp_path / "m.jsonl"))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_read_only_output_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec("a"))
    real_open = os.open

    def read_only(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR) and str(path) == str(out):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OutputRefused, match="Permission denied"):
        check_paths(str(out), manifest=str(tmp_path / "m.jsonl"))
    assert out.read_bytes() == rec("a")


def test_a_manifest_that_is_a_part_of_the_s3_output_is_refused() -> None:
    with pytest.raises(OutputRefused, match="is a part file of the output"):
        check_paths(
            "s3://b/out/",
            manifest="s3://b/out/part-20260101T000000Zabcdef-0000-000001.jsonl",
        )


class _S3:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def create_multipart_upload(self, **kwargs: Any) -> Any:
        self.calls.append(("create", kwargs))
        if self.error is not None:
            raise self.error
        return {"UploadId": "u1"}

    async def abort_multipart_upload(self, **kwargs: Any) -> Any:
        self.calls.append(("abort", kwargs))
        return {}


class _ClientError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.response = {"Error": {"Code": code, "Message": message}}


async def test_an_s3_output_probe_creates_no_object() -> None:
    client = _S3()
    await check_s3_output(client, "s3://b/out/", shard=3)  # type: ignore[arg-type]
    (create, args), (abort, abort_args) = client.calls
    assert (create, abort, abort_args["UploadId"]) == ("create", "abort", "u1")
    assert re.fullmatch(r"out/part-\w+-0003-999999\.jsonl", args["Key"])


async def test_an_s3_output_that_refuses_uploads_is_refused() -> None:
    client = _S3(_ClientError("AccessDenied", "Access Denied"))
    with pytest.raises(OutputRefused, match="AccessDenied: Access Denied"):
        await check_s3_output(client, "s3://b/out/")  # type: ignore[arg-type]

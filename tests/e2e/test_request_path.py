"""request_path: the lean path writes the records the SDK path writes, for the same run."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, run_args

pytestmark = pytest.mark.slow


def _manifest(tmp_path: Path, s3: S3Bed) -> Path:
    prefix = f"paths/{uuid.uuid4()}"
    s3.put(
        s3.bucket_use1, f"{prefix}/in-region.jpg", corpus.photo(320, 240, box=(0.1, 0.2, 0.5, 0.6))
    )
    s3.put(s3.bucket_euw1, f"{prefix}/other-region.jpg", corpus.photo(300, 200))
    # Named .jpg but a WebP: the service refuses the reference, batchrek re-sends Bytes.
    s3.put(s3.bucket_use1, f"{prefix}/really-a-webp.jpg", corpus.photo(200, 200, fmt="WEBP"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    lines = [
        f"s3://{s3.bucket_use1}/{prefix}/in-region.jpg",
        f"s3://{s3.bucket_euw1}/{prefix}/other-region.jpg",
        f"s3://{s3.bucket_use1}/{prefix}/really-a-webp.jpg",
        f"s3://{s3.bucket_use1}/{prefix}/missing.jpg",
    ]
    files = {
        "a.jpg": corpus.photo(400, 300, box=(0.3, 0.3, 0.7, 0.8)),
        "b.png": corpus.photo(250, 250, fmt="PNG"),
        "tiny.jpg": corpus.photo(40, 40),
        "text.jpg": corpus.text_named_jpg(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
        lines.append(str(folder / name))
    manifest = tmp_path / "m.txt"
    manifest.write_text("".join(f"{line}\n" for line in lines))
    return manifest


def _comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every field but the measured latency, in a stable order."""
    out = [{k: v for k, v in r.items() if k != "latency_ms"} for r in records]
    return sorted(out, key=lambda r: (r["id"], r["operation"]))


def test_lean_and_sdk_paths_write_identical_records(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = _manifest(tmp_path, s3)
    runs: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for path in ("sdk", "lean"):
        emu.reset()
        out = tmp_path / f"{path}.jsonl"
        res = batchrek(
            *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
            "--operation",
            "detect_labels",
            "--operation",
            "detect_faces",
            env={"BATCHREK_REQUEST_PATH": path},
            output=out,
        )
        assert res.code == 1, res.stderr  # the missing key and the bad files fail
        runs[path] = (_comparable(res.records), emu.stats()["requests"])
    sdk_records, sdk_requests = runs["sdk"]
    lean_records, lean_requests = runs["lean"]
    assert lean_records == sdk_records
    assert lean_requests == sdk_requests
    # The run did reach the service with both inputs and got answers and refusals.
    assert {r["input"] for r in lean_records} == {"bytes", "s3object", "none"}
    assert any(r["status"] == "ok" and r["response"] for r in lean_records)
    codes = {(r["error"] or {}).get("code") for r in lean_records}
    assert {"InvalidS3ObjectException", "ImageTooSmall", "UnsupportedFormat"} <= codes
    assert sdk_requests["DetectLabels"].get("InvalidImageFormatException") == 1

"""Odd images through the real CLI against the emulator: every raster format Pillow
decodes in the process is transcoded, EPS is refused without Ghostscript ever
starting, a malformed EXIF block is a warning, and every failure has a precise code.

One run over all the files (a module fixture); each test asserts one thing about it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek.testing import corpus, oddfiles
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, run_args

pytestmark = pytest.mark.slow

TOLERANCE = 0.03


def _files() -> dict[str, bytes]:
    files = {f"scene.{fmt.lower()}": oddfiles.in_format(fmt) for fmt in oddfiles.PILLOW_WRITES}
    files.update(
        {
            "layers.psd": oddfiles.psd(),
            "exif-not-tiff.jpg": oddfiles.malformed_exif_jpeg("not-tiff"),
            "exif-truncated.jpg": oddfiles.malformed_exif_jpeg("truncated"),
            "fax.tif": oddfiles.bilevel_scan(),
            "chart.tif": oddfiles.few_colour_tiff(),
            "broken.tif": oddfiles.undecodable_tiff(),
            "stereo.mpo": oddfiles.mpo(),
            "drawing.eps": oddfiles.EPS,
            "page.jpg": b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
            "noise.jpg": bytes(range(256)) * 4,
        }
    )
    return files


@dataclass(frozen=True)
class Run:
    code: int
    stderr: str
    records: dict[str, dict[str, Any]]
    ghostscript_ran: bool


def _fake_ghostscript(folder: Path) -> Path:
    """A ``gs`` first on PATH that leaves a mark if anything ever starts it."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    mark = folder / "gs-was-started"
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IEXEC)
    return bin_dir


@pytest.fixture(scope="module")
def run(emulator: Any, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("odd-images")
    rows = []
    for name, data in _files().items():
        (folder / name).write_bytes(data)
        rows.append({"id": name, "image": str(folder / name)})
    manifest = folder / "m.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = folder / "out.jsonl"
    bin_dir = _fake_ghostscript(folder)
    emulator.reset(settings=True)
    res = batchrek(
        *run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url),
        output=out,
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    return Run(
        code=res.code,
        stderr=res.stderr,
        records={r["id"]: r for r in res.records},
        ghostscript_ran=(folder / "gs-was-started").exists(),
    )


def _red_box(record: dict[str, Any]) -> tuple[float, float, float, float]:
    for label in record["response"]["Labels"]:
        if label["Name"] == "Red Region":
            b = label["Instances"][0]["BoundingBox"]
            return (b["Left"], b["Top"], b["Left"] + b["Width"], b["Top"] + b["Height"])
    raise AssertionError(f"no red region in {record['id']}")


def _box_is_right(record: dict[str, Any]) -> bool:
    got = _red_box(record)
    return all(abs(g - e) <= TOLERANCE for g, e in zip(got, corpus.DEFAULT_BOX, strict=True))


def test_one_record_per_file(run: Run) -> None:
    assert set(run.records) == set(_files()), run.stderr


@pytest.mark.parametrize("name", ["scene.tga", "scene.jpeg2000", "scene.ppm", "scene.sgi",
                                  "scene.dds", "scene.qoi", "scene.pcx", "layers.psd"])  # fmt: skip
def test_formats_pillow_decodes_are_transcoded_and_seen_as_the_user_sees_them(
    run: Run, name: str
) -> None:
    record = run.records[name]
    assert (record["status"], record["transcode"]["to"]["format"] in ("JPEG", "PNG")) == (
        "ok",
        True,
    )
    assert _box_is_right(record)


def test_an_icon_is_transcoded(run: Run) -> None:
    assert run.records["scene.ico"]["transcode"]["from"]["format"] == "ICO"


@pytest.mark.parametrize("name", ["exif-not-tiff.jpg", "exif-truncated.jpg"])
def test_a_malformed_exif_block_is_a_warning_and_the_image_goes_as_it_is(
    run: Run, name: str
) -> None:
    record = run.records[name]
    assert (record["status"], record["input"], "transcode" in record) == ("ok", "bytes", False)
    assert [w["code"] for w in record["warnings"]] == ["ExifUnreadable"]


def test_a_bilevel_scan_goes_as_a_small_png(run: Run) -> None:
    transcode = run.records["fax.tif"]["transcode"]
    assert (transcode["from"]["format"], transcode["to"]["format"]) == ("TIFF", "PNG")
    assert transcode["to"]["bytes"] < 2 * transcode["from"]["bytes"]


def test_a_few_colour_tiff_goes_as_png(run: Run) -> None:
    record = run.records["chart.tif"]
    assert record["transcode"]["to"]["format"] == "PNG"
    assert _box_is_right(record)


def test_an_undecodable_tiff_is_a_corrupt_image(run: Run) -> None:
    assert run.records["broken.tif"]["error"] == {
        "code": "CorruptImage",
        "message": run.records["broken.tif"]["error"]["message"],
        "retryable": False,
    }


def test_a_multi_picture_jpeg_that_fits_goes_as_it_is(run: Run) -> None:
    record = run.records["stereo.mpo"]
    assert (record["status"], record["input"], "transcode" in record) == ("ok", "bytes", False)
    assert _box_is_right(record)  # the first picture is what the service sees


def test_eps_is_refused_and_ghostscript_never_starts(run: Run) -> None:
    error = run.records["drawing.eps"]["error"]
    assert (error["code"], "Ghostscript" in error["message"], run.ghostscript_ran) == (
        "UnsupportedFormat",
        True,
        False,
    )


def test_an_error_page_saved_as_jpg_is_named_html(run: Run) -> None:
    error = run.records["page.jpg"]["error"]
    assert (error["code"], error["message"].startswith("HTML")) == ("UnsupportedFormat", True)


def test_unknown_bytes_are_described_not_mislabelled(run: Run) -> None:
    message = run.records["noise.jpg"]["error"]["message"]
    assert "starts with 00 01 02 03" in message


def test_no_message_carries_a_memory_address(run: Run) -> None:
    messages = [r["error"]["message"] for r in run.records.values() if r["error"]]
    assert [m for m in messages if " at 0x" in m] == []


def test_the_run_finishes_with_failed_pairs(run: Run) -> None:
    assert run.code == 1


def test_input_formats_narrows_what_is_read(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    (tmp_path / "a.psd").write_bytes(oddfiles.psd())
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{tmp_path / 'a.psd'}\n")
    out = tmp_path / "out.jsonl"
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        "--input-formats",
        "jpeg,png,webp",
        output=out,
    )
    [record] = res.records
    assert record["error"]["code"] == "UnsupportedFormat"
    assert "PSD is not in input_formats" in record["error"]["message"]

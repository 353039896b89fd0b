"""Images that don't fit, through the real CLI: transcoded, staged or refused, and the
boxes the service returns still sit where the user sees them."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image

from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, run_args

pytestmark = pytest.mark.slow

TOLERANCE = 0.02  # box ratios; the service (and the emulator) see a resampled image


def _canvas(record: dict[str, Any]) -> tuple[int, int]:
    for label in record["response"]["Labels"]:
        if label["Name"] == "Canvas":
            w, h = label["Aliases"][0]["Name"].split("x")
            return int(w), int(h)
    raise AssertionError(f"no Canvas label in {record['id']}")


def _red_box(record: dict[str, Any]) -> tuple[float, float, float, float]:
    for label in record["response"]["Labels"]:
        if label["Name"] == "Red Region":
            b = label["Instances"][0]["BoundingBox"]
            return (b["Left"], b["Top"], b["Left"] + b["Width"], b["Top"] + b["Height"])
    raise AssertionError(f"no red region in {record['id']}")


def _assert_box(record: dict[str, Any], box: corpus.Box = corpus.DEFAULT_BOX) -> None:
    got = _red_box(record)
    assert all(abs(g - e) <= TOLERANCE for g, e in zip(got, box, strict=True)), (
        record["id"],
        got,
    )


def _run_folder(
    tmp_path: Path, files: dict[str, bytes], emu: Any, s3: S3Bed, *extra: str
) -> tuple[int, dict[str, dict[str, Any]], str]:
    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    rows = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        rows.append({"id": name, "image": str(folder / name)})
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), *extra, output=out)
    assert len(res.records) == len(files), res.stderr
    return res.code, {r["id"]: r for r in res.records}, res.stderr


@pytest.fixture(scope="module")
def wide_images() -> dict[str, bytes]:
    """Over 10,000 px wide as displayed, in all eight EXIF orientations."""
    return {f"wide-o{o}.jpg": corpus.photo(10_400, 600, orientation=o) for o in range(1, 9)}


def test_every_orientation_keeps_its_box_without_transcoding(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    files = {f"o{o}.jpg": corpus.photo(640, 480, orientation=o) for o in range(1, 9)}
    code, records, stderr = _run_folder(tmp_path, files, emu, s3)
    assert code == 0, stderr
    for record in records.values():
        assert "transcode" not in record
        assert _canvas(record) == (640, 480)
        _assert_box(record)


def test_every_orientation_keeps_its_box_after_a_downscale(
    tmp_path: Path, emu: Any, s3: S3Bed, wide_images: dict[str, bytes]
) -> None:
    code, records, stderr = _run_folder(tmp_path, wide_images, emu, s3)
    assert code == 0, stderr
    for record in records.values():
        assert record["transcode"]["to"]["width"] <= 10_000
        width, height = _canvas(record)
        assert width > height  # still landscape, as displayed
        assert abs(width / height - 10_400 / 600) < 0.05
        _assert_box(record)


def test_formats_the_service_refuses_are_converted(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    files = {
        "sticker.webp": corpus.photo(400, 300, fmt="WEBP"),
        "anim.gif": corpus.animated_gif(320, 240),
        "scan.tiff": corpus.photo(400, 300, fmt="TIFF"),
        "old.bmp": corpus.photo(400, 300, fmt="BMP"),
        "print.jpg": corpus.cmyk_jpeg(400, 300),
        "deep.png": corpus.png16(400, 300),
    }
    code, records, stderr = _run_folder(tmp_path, files, emu, s3)
    assert code == 0, stderr
    for name, record in records.items():
        assert record["status"] == "ok", record["error"]
        assert _canvas(record)[0] in (400, 320), name
        if name != "deep.png":  # 16-bit grey has no red region
            _assert_box(record)


def test_oversize_camera_jpeg_fits_the_cap_at_full_resolution(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    big = corpus.noisy_photo(4000, 3000, orientation=6, quality=97)
    assert len(big) > 5 * 1024 * 1024
    code, records, stderr = _run_folder(tmp_path, {"camera.jpg": big}, emu, s3)
    assert code == 0, stderr
    record = records["camera.jpg"]
    assert record["transcode"]["to"]["bytes"] <= 5 * 1024 * 1024
    assert _canvas(record) == (4000, 3000)
    _assert_box(record)


def test_oversize_fail_records_image_too_large(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    files = {
        "wide.jpg": corpus.photo(10_400, 600),
        "sticker.webp": corpus.photo(300, 200, fmt="WEBP"),
    }
    code, records, _ = _run_folder(tmp_path, files, emu, s3, "--oversize", "fail")
    assert code == 1
    assert records["wide.jpg"]["error"]["code"] == "ImageTooLarge"
    assert records["sticker.webp"]["error"]["code"] == "UnsupportedFormat"


def test_s3_png_over_15mb_is_downloaded_and_transcoded(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    big_png = corpus.noisy_photo(3000, 2600, fmt="PNG", noise=200)
    assert len(big_png) > 15 * 1024 * 1024
    key = f"imaging/{uuid.uuid4()}/screenshot.png"
    s3.put(s3.bucket_use1, key, big_png)
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"s3://{s3.bucket_use1}/{key}\n")
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 0, res.stderr
    (record,) = res.records
    assert (record["input"], record["transcode"]["from"]["bytes"]) == ("bytes", len(big_png))
    _assert_box(record)


def test_stage_sends_an_s3object_and_deletes_it_afterwards(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    prefix = f"staging/{uuid.uuid4()}/"
    files = {"sticker.webp": corpus.photo(400, 300, fmt="WEBP")}
    code, records, stderr = _run_folder(
        tmp_path,
        files,
        emu,
        s3,
        "--oversize",
        "stage",
        "--staging-bucket",
        f"s3://{s3.bucket_use1}/{prefix}",
    )
    assert code == 0, stderr
    assert records["sticker.webp"]["input"] == "s3object"
    _assert_box(records["sticker.webp"])
    left = s3.client().list_objects_v2(Bucket=s3.bucket_use1, Prefix=prefix)
    assert left.get("KeyCount", 0) == 0


def test_transcoded_jpeg_keeps_its_orientation_as_the_only_tag(tmp_path: Path) -> None:
    """The service rotates a JPEG by its EXIF tag (REKOGNITION.md), so the transcode
    sends the stored pixels with the tag; the CLI tests above prove the boxes."""
    from batchrek.limits import limits_for
    from batchrek.prepare.imaging import inspect, transcode

    data = corpus.photo(10_400, 600, orientation=6)
    out = transcode(data, inspect(data), limits_for("detect_labels"))
    img = Image.open(io.BytesIO(out.data))
    assert dict(img.getexif()) == {0x0112: 6}
    assert img.width < img.height
    assert out.sent.width > out.sent.height  # the displayed size

"""What the operator is told, end to end: the real CLI in a subprocess against the
emulator and moto's S3 server. Empty manifests, manifests read the wrong way, JSON
logs (a terminal included), -v, the run's identity and history in --metrics-out,
comparisons, the image each record was about, and drawing a result's boxes."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image, ImageChops, ImageOps

from batchrek.draw import BOX_COLOR
from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import ROOT, batchrek, read_records, run_args

pytestmark = pytest.mark.slow


def _images(folder: Path, n: int, **kw: Any) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img-{i}.jpg"
        path.write_bytes(corpus.photo(200 + 10 * i, 160, **kw))
        paths.append(path)
    return paths


def _manifest(tmp_path: Path, paths: list[Path]) -> Path:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps({"id": p.stem, "image": str(p)}) + b"\n"
                                  for p in paths))  # fmt: skip
    return manifest


# -- nothing to do, or a manifest read the wrong way ------------------------------------------


def test_an_empty_manifest_exits_2_with_no_items(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    out = tmp_path / "o.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url))
    assert (res.code, "no items" in res.stderr, out.exists()) == (2, True, False)


def test_allow_empty_lets_a_job_find_nothing(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    res = batchrek(
        *run_args(manifest, tmp_path / "o.jsonl", emu.endpoint_url, s3.endpoint_url),
        env={"BATCHREK_ALLOW_EMPTY": "1"},
    )
    assert (res.code, "nothing to do" in res.stderr) == (0, True)


def test_json_lines_forced_as_csv_is_a_manifest_error(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = _manifest(tmp_path, _images(tmp_path / "imgs", 2))
    res = batchrek(
        *run_args(manifest, tmp_path / "o.jsonl", emu.endpoint_url, s3.endpoint_url),
        "--format",
        "csv",
    )
    assert (res.code, "--format jsonl" in res.stderr) == (2, True)


def test_a_csv_header_without_an_image_column_exits_2(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    (img,) = _images(tmp_path / "imgs", 1)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\n{img},cat\n")
    res = batchrek(*run_args(manifest, tmp_path / "o.jsonl", emu.endpoint_url, s3.endpoint_url))
    assert (res.code, "has no 'image' column" in res.stderr) == (2, True)


# -- logs -------------------------------------------------------------------------------------


def _json_run(tmp_path: Path, emu: Any, s3: S3Bed) -> list[str]:
    manifest = _manifest(tmp_path, _images(tmp_path / "imgs", 3))
    return [
        *run_args(manifest, tmp_path / "o.jsonl", emu.endpoint_url, s3.endpoint_url),
        "--log-format",
        "json",
        "--log-interval-s",
        "1",
    ]


def test_json_logs_make_every_stderr_line_json(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    res = batchrek(*_json_run(tmp_path, emu, s3))
    lines = [json.loads(line) for line in res.stderr.splitlines()]
    assert (res.code, lines[-1]["msg"], lines[-1]["summary"]["ok"]) == (0, "summary", 3)


def test_json_logs_on_a_terminal_are_json_too(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    """stderr is a pseudo-terminal, where the live display would otherwise draw."""
    args = [a for a in _json_run(tmp_path, emu, s3) if a != "--no-progress"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchrek", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=120)
    lines = [line for line in b"".join(chunks).decode().splitlines() if line.strip()]
    assert (code, [json.loads(line)["level"] for line in lines][-1]) == (0, "info")


def test_verbose_after_the_command_logs_routes_and_retries(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    emu.configure(fault_rate=0.5, seed=3)
    manifest = _manifest(tmp_path, _images(tmp_path / "imgs", 6))
    res = batchrek(
        *run_args(manifest, tmp_path / "o.jsonl", emu.endpoint_url, s3.endpoint_url), "-v"
    )
    debug = [line for line in res.stderr.splitlines() if " DEBUG " in line]
    assert (any("route img-0: bytes" in d for d in debug), any(" retry " in d for d in debug)) == (
        True,
        True,
    )


# -- metrics: identity, history, permissions, comparison ---------------------------------------


def test_metrics_name_the_run(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = _manifest(tmp_path, _images(tmp_path / "imgs", 2))
    metrics = tmp_path / "metrics.json"
    batchrek(*run_args(manifest, tmp_path / "o.jsonl", emu.endpoint_url, s3.endpoint_url),
             "--metrics-out", str(metrics), "--rate", "30")  # fmt: skip
    run = json.loads(metrics.read_text())["run"]
    assert (run["manifest"], run["concurrency"], run["rate"], run["operations"]) == (
        str(manifest), 8, "30", ["detect_labels"],
    )  # fmt: skip


def test_metrics_files_are_as_readable_as_the_results(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = _manifest(tmp_path, _images(tmp_path / "imgs", 1))
    out, metrics = tmp_path / "o.jsonl", tmp_path / "metrics.json"
    batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
             "--metrics-out", str(metrics))  # fmt: skip
    assert metrics.stat().st_mode & 0o777 == out.stat().st_mode & 0o777


def test_a_rerun_keeps_the_whole_outputs_history(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = _manifest(tmp_path, _images(tmp_path / "imgs", 5))
    out, metrics = tmp_path / "o.jsonl", tmp_path / "metrics.json"
    common = [*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
              "--metrics-out", str(metrics)]  # fmt: skip
    batchrek(*common, "--limit", "2")
    rerun = batchrek(*common)
    output = json.loads(metrics.read_text())["output"]
    assert (
        [s["ok"] for s in output["segments"]],
        output["totals"]["pairs_done"],
        "5 pairs done over 2 runs" in rerun.stderr,
    ) == ([2, 3], 5, True)


def test_report_compares_runs_side_by_side(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = _manifest(tmp_path, _images(tmp_path / "imgs", 2))
    for name, conc in (("c2", "2"), ("c8", "8")):
        common = run_args(manifest, tmp_path / f"{name}.jsonl", emu.endpoint_url, s3.endpoint_url)
        batchrek(*common, "--concurrency", conc, "--metrics-out", str(tmp_path / f"{name}.json"))
    out = tmp_path / "compare.html"
    runs = [str(tmp_path / "c2.json"), str(tmp_path / "c8.json")]
    res = batchrek("report", *runs, "-o", str(out))
    page = out.read_text()
    assert (res.code, "<th>c2</th>" in page, "<th>c8</th>" in page) == (0, True, True)


# -- the image a record was about, and its boxes drawn ---------------------------------------


def test_records_carry_the_sent_images_displayed_size_and_orientation(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    local = tmp_path / "rotated.jpg"
    local.write_bytes(corpus.photo(320, 240, orientation=6))
    key = f"op/{uuid.uuid4()}/a.jpg"
    s3.put(s3.bucket_use1, key, corpus.photo(200, 200))
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{local}\ns3://{s3.bucket_use1}/{key}\n")
    out = tmp_path / "o.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    images = {r["input"]: r["image"] for r in res.records}
    assert images == {"bytes": {"width": 320, "height": 240, "orientation": 6}, "s3object": None}


def _painted(image: Image.Image, color: tuple[int, int, int], tolerance: int) -> tuple[int, ...]:
    """The bounding box of the pixels within ``tolerance`` of ``color``."""
    bands = [
        band.point(lambda v, t=target: 255 if abs(v - t) <= tolerance else 0)
        for band, target in zip(image.convert("RGB").split(), color, strict=True)
    ]
    mask = ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])
    box = mask.getbbox()
    assert box is not None
    return box


@pytest.mark.parametrize("orientation", [1, 6, 8, 3])
def test_draw_puts_the_box_on_the_red_region(
    tmp_path: Path, emu: Any, s3: S3Bed, orientation: int
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(corpus.photo(400, 300, orientation=orientation))
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{image}\n")
    out = tmp_path / "o.jsonl"
    batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url))
    picture = tmp_path / "check.png"
    res = batchrek("draw", str(out), "--id", str(image), "-o", str(picture))
    assert res.code == 0, res.stderr
    with Image.open(image) as stored:
        red = _painted(ImageOps.exif_transpose(stored), corpus.RED, 60)
    with Image.open(picture) as drawn:
        green = _painted(drawn, BOX_COLOR, 40)
    assert all(abs(g - r) <= 3 for g, r in zip(green, red, strict=True)), (green, red)


def test_draw_names_an_unknown_id(tmp_path: Path) -> None:
    results = tmp_path / "o.jsonl"
    results.write_text('{"id": "a", "operation": "detect_labels", "status": "ok"}\n')
    res = batchrek("draw", str(results), "--id", "b", "-o", str(tmp_path / "x.png"))
    assert (res.code, "no record with id 'b'" in res.stderr) == (2, True)


def test_demo_writes_exactly_the_images_asked_for(tmp_path: Path) -> None:
    res = batchrek("demo", "--dir", str(tmp_path / "demo"), "--count", "2")
    written = sorted(p.name for p in (tmp_path / "demo" / "images").iterdir())
    records = read_records(tmp_path / "demo" / "results.jsonl")
    assert (res.code, len(written), len(records)) == (0, 2, 4)

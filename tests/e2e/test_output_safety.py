"""The output is batchrek's own or new: the real CLI refuses, before anything is read
for resume or billed, an ``-o`` that would destroy a file that is not its own.

Each refusal is what the user sees (exit 2, one line that says what to do, no
traceback), what is left on disk (the file's bytes unchanged) and what the service
billed (nothing: the emulator saw no request).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from batchrek.emulator import EmulatorHandle
from tests.conftest import S3Bed
from tests.e2e.clirun import CliResult, batchrek, pairs, run_args
from tests.e2e.production import image_manifest

pytestmark = pytest.mark.slow


def _refused(res: CliResult, emu: EmulatorHandle, *, says: str) -> None:
    assert res.code == 2, res.stderr
    assert says in res.stderr
    assert "Traceback" not in res.stderr
    assert emu.stats()["total_requests"] == 0


def _same_file(name: str) -> Callable[[Path], Path]:
    """Ways of naming the manifest again: the same path, a symlink, a hard link, a
    relative spelling through another folder."""

    def make(manifest: Path) -> Path:
        folder = manifest.parent
        if name == "path":
            return manifest
        if name == "symlink":
            link = folder / "results.jsonl"
            link.symlink_to(manifest)
            return link
        if name == "hardlink":
            link = folder / "results.jsonl"
            os.link(manifest, link)
            return link
        (folder / "sub").mkdir()
        return folder / "sub" / ".." / manifest.name

    return make


@pytest.mark.parametrize("spelling", ["path", "symlink", "hardlink", "relative"])
def test_output_that_is_the_manifest_is_refused_and_left_whole(
    spelling: str, tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 3, salt=41)
    before = manifest.read_bytes()
    out = _same_file(spelling)(manifest)
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url))
    _refused(res, emu, says="is the manifest")
    assert manifest.read_bytes() == before


def test_output_that_is_the_manifest_is_refused_without_resume_too(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 3, salt=42)
    before = manifest.read_bytes()
    res = batchrek(*run_args(manifest, manifest, emu.endpoint_url, s3.endpoint_url), "--no-resume")
    _refused(res, emu, says="is the manifest")
    assert manifest.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [
        b"call the vendor on monday\nbackup is in /srv/old\n",
        b'{"id": "a", "image": "a.jpg"}\n{"id": "b", "image": "b.jpg"}\n',
        b"id,image\na,a.jpg\n",
    ],
    ids=["notes", "another-manifest", "csv"],
)
def test_existing_file_that_is_not_records_is_refused_and_left_whole(
    content: bytes, tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 3, salt=43)
    notes = tmp_path / "notes.jsonl"
    notes.write_bytes(content)
    res = batchrek(*run_args(manifest, notes, emu.endpoint_url, s3.endpoint_url))
    _refused(res, emu, says="is not a batchrek output")
    assert notes.read_bytes() == content


def test_records_with_notes_appended_at_the_end_are_refused(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=44)
    out = tmp_path / "out.jsonl"
    first = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url))
    assert first.code == 0, first.stderr
    body = out.read_bytes() + b"checked by Ann, all fine\n"
    out.write_bytes(body)
    emu.reset()
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url))
    _refused(res, emu, says="its last line is not a record")
    assert out.read_bytes() == body


def test_an_empty_existing_file_is_a_new_output(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=45)
    out = tmp_path / "out.jsonl"
    out.touch()
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert res.code == 0, res.stderr
    assert sorted(pairs(res.records)) == [("i0", "detect_labels"), ("i1", "detect_labels")]


@pytest.mark.parametrize("flag", ["--metrics-out", "--metrics-textfile"])
def test_a_metrics_file_that_is_the_output_is_refused(
    flag: str, tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=46)
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), flag, str(out))
    _refused(res, emu, says="is also -o")
    assert not out.exists()


def test_a_symlinked_output_is_compacted_in_its_target_and_stays_a_link(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=47)
    real = tmp_path / "data" / "results.jsonl"
    real.parent.mkdir()
    stale = {
        "id": "i0",
        "source": "x",
        "operation": "detect_labels",
        "status": "error",
        "error": {"code": "ThrottlingException", "message": "slow down", "retryable": True},
    }
    real.write_bytes(orjson.dumps(stale) + b"\n")  # a retryable failure: superseded
    link = tmp_path / "results.jsonl"
    link.symlink_to(real)
    res = batchrek(*run_args(manifest, link, emu.endpoint_url, s3.endpoint_url), output=real)
    assert res.code == 0, res.stderr
    assert (link.is_symlink(), os.readlink(link)) == (True, str(real))
    assert sorted((r["id"], r["status"]) for r in res.records) == [("i0", "ok"), ("i1", "ok")]


def test_an_s3_output_in_a_missing_bucket_is_refused_before_billing(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=48)
    res = batchrek(
        *run_args(manifest, "s3://no-such-bucket-here/out/", emu.endpoint_url, s3.endpoint_url)
    )
    _refused(res, emu, says="NoSuchBucket")


def test_draw_refuses_to_draw_over_the_image_itself(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    from batchrek.testing import corpus

    image = tmp_path / "photo.jpg"
    image.write_bytes(corpus.photo(300, 200))
    before = image.read_bytes()
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{image}\n")
    out = tmp_path / "o.jsonl"
    assert batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url)).code == 0
    res = batchrek("draw", str(out), "--id", str(image), "-o", str(image))
    assert (res.code, "is the image itself" in res.stderr, image.read_bytes() == before) == (
        2,
        True,
        True,
    )

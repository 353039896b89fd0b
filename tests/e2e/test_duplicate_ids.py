"""An id names one image: a manifest that repeats an id for other images gets one
``ManifestError`` record per later line, naming the first line, and no call for it.
What was billed stays in the output through any number of reruns.

The manifest lists ``x`` three times (three different images), ``y`` once, and a
fourth image twice under two different ids (in-run dedupe of the same content, a
different feature, stays as it is).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle
from tests.conftest import S3Bed
from tests.e2e.clirun import CliResult, batchrek, run_args
from tests.e2e.production import distinct_images, write_jsonl

pytestmark = pytest.mark.slow

OP = "detect_labels"


@dataclass(frozen=True)
class Repeated:
    runs: list[CliResult]  # the first run, then two reruns
    outputs: list[bytes]  # the output after each run
    images: list[str]  # img0..img3
    digests: list[str]  # sha256 of img0..img3
    analyses: list[dict[str, int]]  # per image digest, after each run


@pytest.fixture(scope="module")
def repeated(
    emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory
) -> Repeated:
    folder = tmp_path_factory.mktemp("dupes")
    imgs = distinct_images(folder / "imgs", 4, salt=61)
    manifest = write_jsonl(
        folder / "m.jsonl",
        [
            {"id": "x", "image": str(imgs[0])},  # line 1
            {"id": "y", "image": str(imgs[1])},  # line 2
            {"id": "x", "image": str(imgs[2])},  # line 3: repeats line 1
            {"id": "same-1", "image": str(imgs[3])},  # line 4
            {"id": "x", "image": str(imgs[3])},  # line 5: repeats line 1
            {"id": "same-2", "image": str(imgs[3])},  # line 6: same content, own id
        ],
    )
    out = folder / "out.jsonl"
    emulator.reset(settings=True)
    runs, outputs, analyses = [], [], []
    for _ in range(3):
        args = run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url)
        runs.append(batchrek(*args, output=out))
        outputs.append(out.read_bytes())
        analyses.append(emulator.analyses("DetectLabels"))
    emulator.reset(settings=True)
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in imgs]
    return Repeated(
        runs=runs,
        outputs=outputs,
        images=[str(p) for p in imgs],
        digests=digests,
        analyses=analyses,
    )


def _by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records}


def test_each_later_line_of_a_repeated_id_is_one_manifest_error(repeated: Repeated) -> None:
    records = _by_id(repeated.runs[0].records)
    problems = {k: v for k, v in records.items() if v["operation"] == "manifest"}
    assert {k: (v["error"]["code"], v["duplicate_of"]) for k, v in problems.items()} == {
        "manifest-line-3": ("ManifestError", {"id": "x", "first_line": 1}),
        "manifest-line-5": ("ManifestError", {"id": "x", "first_line": 1}),
    }


def test_the_manifest_error_says_what_to_do(repeated: Repeated) -> None:
    message = _by_id(repeated.runs[0].records)["manifest-line-3"]["error"]["message"]
    assert message.startswith("line 3: id 'x' is already used by line 1")
    assert "give this one its own id" in message


def test_the_first_line_of_a_repeated_id_is_analysed(repeated: Repeated) -> None:
    x = _by_id(repeated.runs[0].records)["x"]
    assert (x["status"], x["source"]) == ("ok", repeated.images[0])


def test_no_repeat_was_billed(repeated: Repeated) -> None:
    img0, img1, _line3_image, img3 = repeated.digests
    assert repeated.analyses[0] == {img0: 1, img1: 1, img3: 1}


def test_the_same_content_under_its_own_id_is_still_deduplicated(repeated: Repeated) -> None:
    records = _by_id(repeated.runs[0].records)
    assert records["same-2"].get("deduplicated_from") == "same-1"


def test_a_run_with_repeated_ids_exits_1(repeated: Repeated) -> None:
    assert [run.code for run in repeated.runs] == [1, 1, 1], repeated.runs[0].stderr


def test_two_reruns_bill_nothing_and_keep_every_billed_result(repeated: Repeated) -> None:
    assert repeated.analyses[2] == repeated.analyses[0]
    assert sorted(repeated.outputs[2].splitlines()) == sorted(repeated.outputs[0].splitlines())


def test_every_record_appears_once(repeated: Repeated) -> None:
    pairs = [(r["id"], r["operation"]) for r in repeated.runs[2].records]
    assert sorted(pairs) == [
        ("manifest-line-3", "manifest"),
        ("manifest-line-5", "manifest"),
        ("same-1", OP),
        ("same-2", OP),
        ("x", OP),
        ("y", OP),
    ]

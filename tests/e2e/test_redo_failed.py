"""After the user fixes what failed, a rerun can redo it: ``--redo-failed`` (all codes)
or ``--redo-failed=CODE,...`` (only those). Without it, the failures recorded earlier
are skipped, keep exit 1, and the summary says how many and how to redo them.

The manifest names four S3 objects in the service's region (sent as S3Object), two
of them not uploaded yet (``InvalidS3ObjectException``), and one local file that does
not exist yet (``SourceNotFound``). Between the runs the user uploads the objects,
then creates the file.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import CliResult, batchrek, run_args
from tests.e2e.production import exactly_once, write_jsonl

pytestmark = pytest.mark.slow

OP = "detect_labels"
S3_IDS = ("s0", "s1", "s2", "s3")
MISSING = ("s2", "s3")


@dataclass(frozen=True)
class Redone:
    first: CliResult
    plain_rerun: CliResult  # after the upload, without --redo-failed
    some_codes: CliResult  # --redo-failed=InvalidS3ObjectException
    all_codes: CliResult  # after creating the file, --redo-failed
    requests: list[int]  # the emulator's image-analysis requests after each run
    analyses: dict[str, int]  # per image key, over every run
    uris: dict[str, str]  # id -> s3 URI


@pytest.fixture(scope="module")
def redone(emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory) -> Redone:
    folder = tmp_path_factory.mktemp("redo")
    prefix = f"redo/{uuid.uuid4()}"
    uris = {i: f"s3://{s3.bucket_use1}/{prefix}/{i}.jpg" for i in S3_IDS}
    bodies = {i: corpus.photo(200 + 8 * n, 160) for n, i in enumerate(S3_IDS)}
    for i in S3_IDS:
        if i not in MISSING:
            s3.put(s3.bucket_use1, f"{prefix}/{i}.jpg", bodies[i])
    local = folder / "later.jpg"
    rows = [{"id": i, "image": uri} for i, uri in uris.items()]
    manifest = write_jsonl(folder / "m.jsonl", [*rows, {"id": "local", "image": str(local)}])
    out = folder / "out.jsonl"
    common = run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url)
    emulator.reset(settings=True)
    requests = []

    def run(*extra: str) -> CliResult:
        res = batchrek(*common, *extra, output=out)
        # Image-analysis requests: the preflight's free management probe is not billed.
        counts = emulator.stats()["requests"]
        requests.append(sum(sum(n.values()) for op, n in counts.items() if op.startswith("Detect")))
        return res

    first = run()
    for i in MISSING:  # the user fixes the cause
        s3.put(s3.bucket_use1, f"{prefix}/{i}.jpg", bodies[i])
    plain = run()
    some = run("--redo-failed=InvalidS3ObjectException")
    local.write_bytes(corpus.photo(240, 180))
    everything = run("--redo-failed")
    analyses = emulator.analyses("DetectLabels")
    emulator.reset(settings=True)
    return Redone(first, plain, some, everything, requests, analyses, uris)


def _codes(res: CliResult) -> dict[str, str | None]:
    return {r["id"]: (r["error"] or {}).get("code") for r in res.records}


def test_the_first_run_records_the_failures(redone: Redone) -> None:
    assert (redone.first.code, _codes(redone.first)) == (
        1,
        {
            "s0": None,
            "s1": None,
            "s2": "InvalidS3ObjectException",
            "s3": "InvalidS3ObjectException",
            "local": "SourceNotFound",
        },
    )


def test_a_plain_rerun_skips_earlier_failures_and_calls_nothing(redone: Redone) -> None:
    assert (redone.plain_rerun.code, redone.requests[1]) == (1, redone.requests[0])


def test_a_plain_rerun_says_how_many_failed_earlier_and_how_to_redo_them(
    redone: Redone,
) -> None:
    assert (
        "earlier:    3 pairs failed in earlier runs "
        "(InvalidS3ObjectException 2, SourceNotFound 1); they keep exit 1"
    ) in redone.plain_rerun.stderr
    assert "--redo-failed" in redone.plain_rerun.stderr


def test_redo_with_codes_redoes_only_those(redone: Redone) -> None:
    assert (redone.some_codes.code, _codes(redone.some_codes)) == (
        1,
        {"s0": None, "s1": None, "s2": None, "s3": None, "local": "SourceNotFound"},
    )
    assert "redone:     2 pairs" in redone.some_codes.stderr


def test_redo_with_codes_calls_only_the_redone_pairs(redone: Redone) -> None:
    # Only the two redone pairs reach the service; the skipped SourceNotFound does not.
    assert redone.requests[2] - redone.requests[1] == len(MISSING)


def test_redo_of_every_code_finishes_the_job(redone: Redone) -> None:
    assert redone.all_codes.code == 0, redone.all_codes.stderr
    assert all(r["status"] == "ok" for r in redone.all_codes.records)
    assert exactly_once(redone.all_codes.records, {(i, OP) for i in (*S3_IDS, "local")})


def test_every_image_was_analysed_once(redone: Redone) -> None:
    by_uri = {uri: redone.analyses.get(uri) for uri in redone.uris.values()}
    assert set(by_uri.values()) == {1}
    assert sum(redone.analyses.values()) == len(S3_IDS) + 1

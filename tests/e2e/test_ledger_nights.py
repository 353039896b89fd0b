"""Nightly runs against a ledger, through the CLI, against moto's S3 and the emulator.

One bucket prefix plays the nightly bucket. Night 1 analyses everything; before
night 2 one image is overwritten with new content, one is copied under a new key, one
is added and one deleted. The manifest is the prefix listing (ETag and size known,
no HEAD), the ledger a local directory, each night's output its own file.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import CliResult, batchrek, run_args

pytestmark = pytest.mark.slow

IMAGES = 10
OP = "detect_labels"


def _image(n: int, salt: int = 0) -> bytes:
    return corpus.photo(96 + n, 100 + salt, box=(0.1, 0.2, 0.6, 0.7))


def billed(emu: EmulatorHandle, api: str = "DetectLabels") -> int:
    """Billable analyses the service made since the last reset."""
    return sum(emu.stats()["analyses"].get(api, {}).values())


@dataclass
class Bed:
    folder: Path
    prefix: str
    ledger: Path
    s3: S3Bed
    emu: EmulatorHandle

    @property
    def manifest(self) -> str:
        return f"s3://{self.s3.bucket_use1}/{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}.jpg"

    def night(self, n: int, *extra: str, manifest: str | None = None) -> tuple[CliResult, int]:
        """Run night ``n``; returns the CLI result (records of that night) and the
        analyses billed."""
        out = self.folder / f"night-{n}.jsonl"
        self.emu.reset()
        args = run_args(manifest or self.manifest, out, self.emu.endpoint_url, self.s3.endpoint_url)
        res = batchrek(*args, "--rate", "1000", "--ledger", str(self.ledger), *extra, output=out)
        assert res.code == 0, res.stderr
        return res, billed(self.emu)


def _bed(folder: Path, s3: S3Bed, emu: EmulatorHandle) -> Bed:
    bed = Bed(folder, f"ledger/{uuid.uuid4()}/", folder / "ledger", s3, emu)
    for n in range(IMAGES):
        s3.put(s3.bucket_use1, bed.key(f"img-{n}"), _image(n))
    return bed


@dataclass(frozen=True)
class TwoNights:
    night1: CliResult
    billed1: int
    night2: CliResult
    billed2: int
    bed: Bed


@pytest.fixture(scope="module")
def two_nights(
    emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory
) -> TwoNights:
    bed = _bed(tmp_path_factory.mktemp("nights"), s3, emulator)
    night1, billed1 = bed.night(1)
    client = s3.client()
    client.put_object(Bucket=s3.bucket_use1, Key=bed.key("img-3"), Body=_image(3, salt=9))
    client.copy_object(
        Bucket=s3.bucket_use1,
        Key=bed.key("copy-of-5"),
        CopySource={"Bucket": s3.bucket_use1, "Key": bed.key("img-5")},
    )
    client.put_object(Bucket=s3.bucket_use1, Key=bed.key("new-1"), Body=_image(40))
    client.delete_object(Bucket=s3.bucket_use1, Key=bed.key("img-9"))
    night2, billed2 = bed.night(2)
    return TwoNights(night1, billed1, night2, billed2, bed)


def _ids(records: list[dict[str, Any]], bed: Bed) -> set[str]:
    return {r["id"].rsplit("/", 1)[1] for r in records}


def test_night_1_analyses_every_image_once(two_nights: TwoNights) -> None:
    assert (len(two_nights.night1.records), two_nights.billed1) == (IMAGES, IMAGES)


def test_night_2_bills_only_the_new_and_the_changed_image(two_nights: TwoNights) -> None:
    assert two_nights.billed2 == 2


def test_night_2_output_is_a_delta_of_changed_new_and_copied(two_nights: TwoNights) -> None:
    assert _ids(two_nights.night2.records, two_nights.bed) == {
        "img-3.jpg",
        "new-1.jpg",
        "copy-of-5.jpg",
    }


def test_a_copy_under_another_key_reuses_the_earlier_result_without_a_call(
    two_nights: TwoNights,
) -> None:
    (copy,) = [r for r in two_nights.night2.records if r["id"].endswith("copy-of-5.jpg")]
    (original,) = [r for r in two_nights.night1.records if r["id"].endswith("img-5.jpg")]
    assert (copy["reused_from"]["id"], copy["attempts"], copy["response"]) == (
        original["id"],
        0,
        original["response"],
    )


def test_an_overwritten_image_is_analysed_again_with_its_new_content(
    two_nights: TwoNights,
) -> None:
    (new,) = [r for r in two_nights.night2.records if r["id"].endswith("img-3.jpg")]
    (old,) = [r for r in two_nights.night1.records if r["id"].endswith("img-3.jpg")]
    assert (new["attempts"] >= 1, new["content"] != old["content"]) == (True, True)


def test_records_say_which_identity_keyed_them(two_nights: TwoNights) -> None:
    assert {r["content"].split(":", 1)[0] for r in two_nights.night1.records} == {"etag"}


def test_the_summary_splits_pairs_by_ledger_verdict(two_nights: TwoNights) -> None:
    assert "ledger:     new 1, changed 1, reused 1, unchanged 8" in two_nights.night2.stderr


def test_a_third_night_with_nothing_changed_bills_nothing_and_writes_nothing(
    two_nights: TwoNights,
) -> None:
    night3, billed3 = two_nights.bed.night(3)
    assert (billed3, night3.records) == (0, [])


def test_the_dry_run_prices_only_what_tonight_would_bill(two_nights: TwoNights) -> None:
    bed = two_nights.bed
    client = bed.s3.client()
    client.put_object(Bucket=bed.s3.bucket_use1, Key=bed.key("new-2"), Body=_image(41))
    client.copy_object(
        Bucket=bed.s3.bucket_use1,
        Key=bed.key("copy-of-1"),
        CopySource={"Bucket": bed.s3.bucket_use1, "Key": bed.key("img-1")},
    )
    bed.emu.reset()
    args = run_args(
        bed.manifest, bed.folder / "dry.jsonl", bed.emu.endpoint_url, bed.s3.endpoint_url
    )
    res = batchrek(*args, "--ledger", str(bed.ledger), "--dry-run")
    assert (res.code, bed.emu.stats()["total_requests"]) == (0, 0), res.stderr
    assert "ledger: new 1, changed 0, reused 1, unchanged 11, unknown 0" in res.stdout
    assert "billable calls: 1, estimated cost: $0.00" in res.stdout


def test_export_merges_the_nights_into_one_current_result_per_pair(
    two_nights: TwoNights,
) -> None:
    bed = two_nights.bed
    # Night 3 changed nothing, so it wrote no file: export what exists, oldest first.
    nights = [str(p) for p in sorted(bed.folder.glob("night-*.jsonl"))]
    out = bed.folder / "current.sqlite"
    res = batchrek("export", *nights, "-o", str(out))
    assert res.code == 0, res.stderr
    import sqlite3

    db = sqlite3.connect(out)
    rows = {
        r[0].rsplit("/", 1)[1]: r[1:]
        for r in db.execute("SELECT id, output, reused_from FROM results")
    }
    assert len(rows) == IMAGES + 2  # img-9 was deleted after night 1: still the last known
    assert rows["img-3.jpg"][0].endswith("night-2.jsonl")
    assert rows["img-4.jpg"][0].endswith("night-1.jsonl")
    assert rows["copy-of-5.jpg"][1].endswith("img-5.jpg")
    assert db.execute("SELECT count(*) FROM labels WHERE kind = 'label'").fetchone()[0] > 0

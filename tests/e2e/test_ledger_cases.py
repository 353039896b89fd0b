"""The ledger's other cases through the CLI: local files (sha256), a parameter change,
an operation added, a HEAD for S3 items without an ETag, an S3 ledger, a kill during a
night, two shards at once, and the export's current view after three nights."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.ledger import LedgerIndex, RecordReader, load_local_segments
from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import CliResult, batchrek, read_records, run_args
from tests.e2e.production import Child, image_manifest, wait_until, write_jsonl

pytestmark = pytest.mark.slow

OP = "detect_labels"


def billed(emu: EmulatorHandle) -> dict[str, int]:
    return {op: sum(c.values()) for op, c in emu.stats()["analyses"].items()}


def night(
    emu: EmulatorHandle,
    s3: S3Bed,
    manifest: Path | str,
    out: Path | str,
    ledger: Path | str,
    *extra: str,
) -> tuple[CliResult, dict[str, int]]:
    emu.reset()
    args = run_args(manifest, out, emu.endpoint_url, s3.endpoint_url)
    res = batchrek(
        *args,
        "--rate",
        "1000",
        "--ledger",
        str(ledger),
        *extra,
        output=out if isinstance(out, Path) else None,
    )
    assert res.code == 0, res.stderr
    return res, billed(emu)


def test_local_files_are_keyed_by_sha256_and_unchanged_ones_skipped(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 6, salt=21)
    first, billed1 = night(emu, s3, manifest, tmp_path / "n1.jsonl", tmp_path / "ledger")
    (tmp_path / "imgs" / "img-00002.jpg").write_bytes(corpus.photo(150, 150))
    second, billed2 = night(emu, s3, manifest, tmp_path / "n2.jsonl", tmp_path / "ledger")
    assert {r["content"][:7] for r in first.records} == {"sha256:"}
    assert (billed1, billed2, [r["id"] for r in second.records]) == (
        {"DetectLabels": 6},
        {"DetectLabels": 1},
        ["i2"],
    )


def test_a_parameter_change_analyses_everything_again_as_changed(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 4, salt=22)
    night(emu, s3, manifest, tmp_path / "n1.jsonl", tmp_path / "ledger")
    config = tmp_path / "c.toml"
    config.write_text("[params.detect_labels]\nMinConfidence = 80\n")
    res, billed2 = night(
        emu, s3, manifest, tmp_path / "n2.jsonl", tmp_path / "ledger", "--config", str(config)
    )
    assert billed2 == {"DetectLabels": 4}
    assert "ledger:     new 0, changed 4, reused 0, unchanged 0" in res.stderr


def test_an_operation_added_on_night_2_bills_only_that_operation(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 4, salt=23)
    night(emu, s3, manifest, tmp_path / "n1.jsonl", tmp_path / "ledger")
    res, billed2 = night(
        emu,
        s3,
        manifest,
        tmp_path / "n2.jsonl",
        tmp_path / "ledger",
        "--operation",
        "detect_labels",
        "--operation",
        "detect_text",
    )
    assert billed2 == {"DetectText": 4}
    assert {r["operation"] for r in res.records} == {"detect_text"}


def _s3_images(s3: S3Bed, prefix: str, n: int) -> list[str]:
    uris = []
    for k in range(n):
        key = f"{prefix}img-{k}.jpg"
        s3.put(s3.bucket_use1, key, corpus.photo(100 + k, 90, box=(0.2, 0.2, 0.5, 0.5)))
        uris.append(f"s3://{s3.bucket_use1}/{key}")
    return uris


def test_s3_items_without_an_etag_get_one_head_and_an_s3_ledger_works(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    prefix = f"head/{uuid.uuid4()}/"
    uris = _s3_images(s3, prefix, 4)
    manifest = write_jsonl(tmp_path / "m.jsonl", ({"image": u} for u in uris))
    ledger = f"s3://{s3.bucket_use1}/{prefix}ledger/"
    out1 = f"s3://{s3.bucket_use1}/{prefix}out/"
    night(emu, s3, manifest, out1, ledger)
    res, billed2 = night(emu, s3, manifest, tmp_path / "n2.jsonl", ledger)
    keys = [
        o["Key"]
        for o in s3.client().list_objects_v2(Bucket=s3.bucket_use1, Prefix=prefix + "ledger/")[
            "Contents"
        ]
    ]
    assert (billed2, res.records) == ({}, [])
    assert "unchanged 4" in res.stderr
    assert sorted(k.rsplit(".", 1)[1] for k in keys) == ["entries", "outputs"]


def test_a_copy_reuses_a_record_that_lives_in_an_s3_part_file(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    prefix = f"reuse/{uuid.uuid4()}/"
    _s3_images(s3, prefix + "in/", 3)
    listing = f"s3://{s3.bucket_use1}/{prefix}in/"
    ledger = f"s3://{s3.bucket_use1}/{prefix}ledger/"
    night(emu, s3, listing, f"s3://{s3.bucket_use1}/{prefix}out1/", ledger)
    s3.client().copy_object(
        Bucket=s3.bucket_use1,
        Key=f"{prefix}in/zz-copy.jpg",
        CopySource={"Bucket": s3.bucket_use1, "Key": f"{prefix}in/img-1.jpg"},
    )
    res, billed2 = night(emu, s3, listing, tmp_path / "n2.jsonl", ledger)
    (copy,) = res.records
    assert billed2 == {}
    assert copy["reused_from"]["output"].startswith(f"s3://{s3.bucket_use1}/{prefix}out1/part-")


# -- a kill during a night -------------------------------------------------------------


def _entries_read_back(ledger: Path) -> tuple[int, int]:
    """(entries, entries whose pointer reads back a record of an ok pair)."""

    async def check() -> tuple[int, int]:
        segments = await load_local_segments(ledger)
        index = LedgerIndex.build(segments)
        reader = RecordReader(None)
        good = 0
        for seg in segments:
            one = LedgerIndex.build([seg])
            for pos in range(len(one)):
                content = one._contents[pos]
                for pointer in one.pointers(content, limit=1):
                    record = await reader.read(pointer)
                    good += record is not None and record.get("status") == "ok"
        return len(index), good

    return anyio.run(check)


def test_a_kill_mid_night_leaves_no_entry_without_its_record_and_the_rerun_finishes(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    n = 60
    manifest = image_manifest(tmp_path, n, salt=24)
    out, ledger = tmp_path / "n1.jsonl", tmp_path / "ledger"
    emu.configure(latency_ms=40)
    args = run_args(manifest, out, emu.endpoint_url, s3.endpoint_url)
    child = Child([*args, "--rate", "15", "--ledger", str(ledger)], log=tmp_path / "err.txt")
    try:
        assert wait_until(lambda: len(read_records(out)) >= 20, timeout_s=60)
        child.send(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.running:
            child.kill()
    # Calls the killed run left in flight still finish (and bill) at the service.
    assert wait_until(lambda: emu.stats()["in_flight"] == 0, timeout_s=10)
    entries, good = _entries_read_back(ledger)
    written = len(read_records(out))
    emu.configure(latency_ms=0)
    _, billed2 = night(emu, s3, manifest, out, ledger)
    assert 0 < entries <= written < n
    assert good == entries
    # The rerun bills only what the output did not hold: the records written after the
    # ledger's last entries are indexed by its catch-up, not analysed again.
    assert billed2["DetectLabels"] == n - written
    ids = {r["id"] for r in read_records(out)}
    assert ids == {f"i{k}" for k in range(n)}


def test_two_shards_write_their_own_segments_at_once_and_read_the_union(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 20, salt=25)
    ledger = tmp_path / "ledger"
    emu.reset()
    args = run_args(manifest, tmp_path / "n1.jsonl", emu.endpoint_url, s3.endpoint_url)
    children = [
        Child(
            [
                *args,
                "--rate",
                "1000",
                "--ledger",
                str(ledger),
                "--shard-index",
                str(i),
                "--shard-count",
                "2",
            ],
            log=tmp_path / f"err-{i}.txt",
        )
        for i in range(2)
    ]
    codes = [c.wait(120) for c in children]
    assert codes == [0, 0], [c.stderr() for c in children]
    segments = sorted(p.name for p in ledger.glob("*.entries"))
    _, billed2 = night(emu, s3, manifest, tmp_path / "n2.jsonl", ledger)
    assert (len(segments), {s.split("-")[2] for s in segments}, billed2) == (
        2,
        {"0000", "0001"},
        {},
    )


# -- the export after three nights -----------------------------------------------------


def test_export_after_three_nights_holds_the_newest_result_of_every_pair(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    import pyarrow.parquet as pq

    manifest = image_manifest(tmp_path, 5, salt=26)
    ledger = tmp_path / "ledger"
    night(emu, s3, manifest, tmp_path / "night-1.jsonl", ledger)
    (tmp_path / "imgs" / "img-00001.jpg").write_bytes(corpus.photo(170, 130))  # changed
    night(emu, s3, manifest, tmp_path / "night-2.jsonl", ledger)
    both = ("--operation", "detect_labels", "--operation", "detect_text")
    night(emu, s3, manifest, tmp_path / "night-3.jsonl", ledger, *both)
    nights = [str(tmp_path / f"night-{k}.jsonl") for k in (1, 2, 3)]
    res = batchrek("export", *nights, "-o", str(tmp_path / "current.parquet"))
    assert res.code == 0, res.stderr
    results = pq.read_table(tmp_path / "current.parquet").to_pylist()
    labels = pq.read_table(tmp_path / "current.labels.parquet").to_pylist()
    where = {(r["id"], r["operation"]): Path(r["output"]).name for r in results}
    assert len(where) == 10
    assert where[("i1", OP)] == "night-2.jsonl"
    assert where[("i0", OP)] == "night-1.jsonl"
    assert {where[(f"i{k}", "detect_text")] for k in range(5)} == {"night-3.jsonl"}
    assert {r["kind"] for r in labels} >= {"label"}
    assert all(0 <= (r["confidence"] or 0) <= 100 for r in labels)


def test_export_to_csv_needs_no_extra_and_writes_both_tables(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    import csv

    manifest = image_manifest(tmp_path, 2, salt=27)
    night(emu, s3, manifest, tmp_path / "night-1.jsonl", tmp_path / "ledger")
    res = batchrek("export", str(tmp_path / "night-1.jsonl"), "-o", str(tmp_path / "cur.csv"))
    rows: list[dict[str, Any]] = list(csv.DictReader((tmp_path / "cur.csv").open()))
    label_rows = list(csv.DictReader((tmp_path / "cur.labels.csv").open()))
    assert (res.code, len(rows), rows[0]["status"]) == (0, 2, "ok")
    assert set(label_rows[0]) >= {"id", "kind", "name", "confidence", "left"}

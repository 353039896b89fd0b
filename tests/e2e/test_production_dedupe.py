"""In-run dedupe through the real CLI: the same image under several ids is billed once
per operation, yet every id gets its own record; ``--no-dedupe`` sends every listing.

The manifest lists one local file under three ids and one S3 object (in the service's
region, so it goes as S3Object) under two. The emulator keys its accounting by the
sha256 of the bytes and by ``s3://bucket/key``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, run_args
from tests.e2e.production import exactly_once, write_jsonl

pytestmark = pytest.mark.slow

OPS = ("detect_labels", "detect_text")
APIS = ("DetectLabels", "DetectText")
LOCAL_IDS = ("local-a", "local-b", "local-c")
S3_IDS = ("s3-a", "s3-b")


@dataclass(frozen=True)
class Deduped:
    dedupe: bool
    code: int
    stderr: str
    records: list[dict[str, Any]]
    local_key: str
    s3_key: str
    analyses: dict[str, dict[str, int]]  # API -> image key -> analyses


@pytest.fixture(scope="module", params=[True, False], ids=["dedupe", "no-dedupe"])
def deduped(
    request: pytest.FixtureRequest,
    emulator: EmulatorHandle,
    s3: S3Bed,
    tmp_path_factory: pytest.TempPathFactory,
) -> Deduped:
    dedupe: bool = request.param
    folder = tmp_path_factory.mktemp("dedupe")
    body = corpus.photo(240, 180, box=(0.2, 0.2, 0.4, 0.4))
    local = folder / "same.jpg"
    local.write_bytes(body)
    key = f"dedupe/{uuid.uuid4()}/same.jpg"
    s3.put(s3.bucket_use1, key, corpus.photo(260, 190, box=(0.3, 0.3, 0.5, 0.5)))
    uri = f"s3://{s3.bucket_use1}/{key}"
    rows = [{"id": i, "image": str(local)} for i in LOCAL_IDS]
    rows += [{"id": i, "image": uri} for i in S3_IDS]
    manifest = write_jsonl(folder / "m.jsonl", rows)
    out = folder / "out.jsonl"
    emulator.reset(settings=True)
    emulator.configure(latency_ms=30)
    flags = [] if dedupe else ["--no-dedupe"]
    ops = [arg for op in OPS for arg in ("--operation", op)]
    res = batchrek(
        *run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url),
        *ops,
        *flags,
        output=out,
    )
    analyses = {api: emulator.analyses(api) for api in APIS}
    emulator.reset(settings=True)
    return Deduped(
        dedupe=dedupe,
        code=res.code,
        stderr=res.stderr,
        records=res.records,
        local_key=hashlib.sha256(body).hexdigest(),
        s3_key=uri,
        analyses=analyses,
    )


def test_run_succeeds(deduped: Deduped) -> None:
    assert deduped.code == 0, deduped.stderr


def test_every_id_gets_a_record_per_operation(deduped: Deduped) -> None:
    expected = {(i, op) for i in (*LOCAL_IDS, *S3_IDS) for op in OPS}
    assert exactly_once(deduped.records, expected)


def test_analyses_per_image_and_operation(deduped: Deduped) -> None:
    # Dedupe: once per operation. No dedupe: once per listing.
    per_image = (
        {deduped.local_key: 1, deduped.s3_key: 1}
        if deduped.dedupe
        else {deduped.local_key: len(LOCAL_IDS), deduped.s3_key: len(S3_IDS)}
    )
    assert deduped.analyses == {api: per_image for api in APIS}


def test_reused_records_name_the_record_they_copy(deduped: Deduped) -> None:
    copied = sorted(
        (r["id"], r["operation"]) for r in deduped.records if r.get("deduplicated_from")
    )
    reused_ids = (*LOCAL_IDS[1:], *S3_IDS[1:]) if deduped.dedupe else ()
    assert len(copied) == len(reused_ids) * len(OPS)

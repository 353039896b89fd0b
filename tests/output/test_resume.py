from __future__ import annotations

import json
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek.models import ErrorInfo, Result
from batchrek.output import resume
from batchrek.output.resume import ResumeIndex, ResumeState, load_resume, pair_key
from batchrek.output.resume import file as resume_file
from batchrek.output.resume import scan as resume_scan

pytestmark = pytest.mark.anyio


def line(
    item: str,
    op: str = "detect_labels",
    *,
    ok: bool = True,
    retryable: bool = False,
    note: str = "",
) -> bytes:
    error = None if ok else ErrorInfo("SomeError", note or "boom", retryable)
    result = Result(
        id=item,
        source=f"s3://bucket/{item}",
        operation=op,
        status="ok" if ok else "error",
        input="s3object",
        attempts=1,
        latency_ms=12.5,
        response={"Labels": [{"Name": "Dog", "Confidence": 99.0}], "note": note} if ok else None,
        error=error,
    )
    return orjson.dumps(result.to_record()) + b"\n"


def pairs_in(path: Path) -> Counter[tuple[str, str]]:
    records = [json.loads(raw) for raw in path.read_bytes().splitlines()]
    return Counter((r["id"], r["operation"]) for r in records)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def load(path: Path, **kwargs: Any) -> ResumeState:
    return await load_resume(path, **kwargs)


async def test_missing_output_gives_an_empty_index(tmp_path: Path) -> None:
    state = await load(tmp_path / "nope.jsonl")
    assert (len(state), state.records) == (0, 0)


async def test_torn_last_line_is_cut_back_to_the_last_newline(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    whole = line("a") + line("b")
    out.write_bytes(whole + line("c")[:40])
    state = await load(out)
    assert (state.torn_lines, state.torn_bytes, out.read_bytes()) == (1, 40, whole)


async def test_torn_pair_is_not_done(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a") + line("c")[:-1])  # only the newline is missing
    state = await load(out)
    assert ("c", "detect_labels") not in state


async def test_ok_record_is_done(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a"))
    state = await load(out)
    assert ("a", "detect_labels") in state


async def test_done_is_per_operation(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", "detect_labels"))
    state = await load(out)
    assert ("a", "detect_faces") not in state


async def test_permanent_error_is_done_and_counted_failed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", ok=False) + line("b"))
    state = await load(out)
    assert (("a", "detect_labels") in state, state.done, state.failed) == (True, 2, 1)


async def test_retryable_error_is_redone_and_dropped(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", ok=False, retryable=True) + line("b"))
    state = await load(out)
    assert (("a", "detect_labels") in state, state.redo, out.read_bytes()) == (
        False,
        1,
        line("b"),
    )


async def test_retryable_error_then_ok_keeps_only_the_ok(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", ok=False, retryable=True) + line("b") + line("a", note="later"))
    state = await load(out)
    assert (("a", "detect_labels") in state, state.redo, state.superseded) == (True, 0, 1)
    assert out.read_bytes() == line("b") + line("a", note="later")


async def test_ok_is_preferred_over_an_earlier_permanent_error(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", ok=False) + line("a", note="fixed"))
    state = await load(out)
    assert (out.read_bytes(), state.failed, state.duplicates) == (line("a", note="fixed"), 0, 1)


async def test_duplicates_keep_the_earliest_record(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", note="first") + line("b") + line("a", note="second"))
    await load(out)
    assert out.read_bytes() == line("a", note="first") + line("b")


async def test_compaction_leaves_exactly_one_record_per_done_pair(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    body = b"".join(
        [
            line("a"),
            line("a", "detect_faces", ok=False, retryable=True),
            line("b", ok=False),
            line("b"),
            line("c", ok=False, retryable=True),
            line("a"),
            line("a", "detect_faces"),
            line("d", ok=False),
            line("d", ok=False),
        ]
    )
    out.write_bytes(body + line("e")[:10])
    state = await load(out)
    expected = {("a", "detect_labels"), ("a", "detect_faces"), ("b", "detect_labels")}
    expected.add(("d", "detect_labels"))
    assert (pairs_in(out), state.compacted) == (Counter(expected), True)


async def test_counts_after_compaction(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(
        line("a")
        + line("a")
        + line("b", ok=False, retryable=True)
        + b"not json\n"
        + line("c", ok=False)
        + line("x")[:9]
    )
    state = await load(out)
    counts = {k: getattr(state, k) for k in ("records", "done", "failed", "redo", "dropped")}
    assert counts == {"records": 4, "done": 2, "failed": 1, "redo": 1, "dropped": 3}


async def test_a_clean_output_is_not_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a") + line("b"))
    inode = out.stat().st_ino
    state = await load(out)
    assert (state.compacted, out.stat().st_ino) == (False, inode)


async def test_compact_false_only_reports(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    body = line("a", ok=False, retryable=True) + line("a") + line("b")[:5]
    out.write_bytes(body)
    state = await load(out, compact=False)
    assert (out.read_bytes(), state.superseded, state.torn_lines) == (body, 1, 1)


async def test_redo_failed_redoes_permanent_errors(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", ok=False) + line("b"))
    state = await load(out, redo_failed=True)
    assert (("a", "detect_labels") in state, state.redo, out.read_bytes()) == (
        False,
        1,
        line("b"),
    )


async def test_a_failed_compaction_leaves_the_output_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    body = line("a", ok=False, retryable=True) + line("b") + line("c")
    out.write_bytes(body)

    def crash(*args: Any) -> bytes:
        raise OSError("disk gone")

    monkeypatch.setattr(resume_file, "keep_lines", crash)
    with pytest.raises(OSError, match="disk gone"):
        await load(out)
    assert (out.read_bytes(), names(tmp_path)) == (body, ["out.jsonl"])


async def test_a_stale_compaction_temp_file_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a"))
    (tmp_path / ".out.jsonl.compact-4242.tmp").write_bytes(line("a")[:20])
    await load(out)
    assert names(tmp_path) == ["out.jsonl"]


async def test_compaction_keeps_the_file_mode(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", ok=False, retryable=True) + line("b"))
    out.chmod(0o600)
    await load(out)
    assert out.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "item",
    ['has "quotes"', "back\\slash", "new\nline", "ünïcødé/🐕.jpg", "tab\there", ""],
)
async def test_ids_with_escapes_or_unicode_are_indexed(tmp_path: Path, item: str) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line(item))
    state = await load(out)
    assert (item, "detect_labels") in state


async def test_records_from_another_writer_are_indexed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    record = {"status": "ok", "operation": "detect_text", "id": "é", "response": {}}
    out.write_text(json.dumps(record) + "\n")  # spaces, other key order, \u escapes
    state = await load(out)
    assert ("é", "detect_text") in state


async def test_an_error_record_without_error_info_is_redone(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(orjson.dumps({"id": "a", "operation": "op", "status": "error"}) + b"\n")
    state = await load(out)
    assert (("a", "op") in state, state.redo) == (False, 1)


async def test_a_large_output_is_indexed_whole(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    ops = ("detect_labels", "detect_faces")
    out.write_bytes(b"".join(line(f"img-{i:06d}", ops[i % 2]) for i in range(50_000)))
    state = await load(out)
    found = sum((f"img-{i:06d}", ops[i % 2]) in state for i in range(0, 50_000, 7))
    assert (state.done, found, state.compacted) == (50_000, len(range(0, 50_000, 7)), False)


async def test_a_large_output_compacts_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resume_file, "CHUNK_BYTES", 4096)  # many chunks, lines cut across them
    out = tmp_path / "out.jsonl"
    records = [
        line(f"img-{i:05d}", ok=i % 97 != 0, retryable=True, note="x" * (i % 50))
        for i in range(5_000)
    ]
    out.write_bytes(b"".join(records))
    await load(out)
    assert out.read_bytes() == b"".join(r for i, r in enumerate(records) if i % 97 != 0)


def test_index_membership_uses_the_pair_key() -> None:
    index = ResumeIndex(array("q", sorted({pair_key("a", "op"), pair_key("b", "op")})))
    assert (("a", "op") in index, ("c", "op") in index, "a" in index) == (True, False, False)


def test_index_holds_eight_bytes_per_pair() -> None:
    keys = array("q", sorted({pair_key(str(i), "op") for i in range(1000)}))
    index = ResumeIndex(keys)
    assert (len(index), index.nbytes) == (1000, 8000)


def test_public_api_is_explicit() -> None:
    for module in (resume, resume_scan, resume_file):
        assert all(hasattr(module, name) for name in module.__all__)


def failed(item: str, code: str) -> bytes:
    record = Result(
        id=item,
        source=f"s3://bucket/{item}",
        operation="detect_labels",
        status="error",
        input="none",
        attempts=1,
        latency_ms=0.0,
        error=ErrorInfo(code, "no", False),
    ).to_record()
    return orjson.dumps(record) + b"\n"


async def test_redo_failed_with_codes_redoes_only_those_codes(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(failed("a", "NoSuchKey") + failed("b", "AccessDenied") + line("c"))
    state = await load(out, redo_failed={"NoSuchKey"})
    done = [(i, "detect_labels") in state for i in "abc"]
    assert (done, state.failed_redone, state.failed_by_code) == (
        [False, True, True],
        1,
        {"AccessDenied": 1},
    )
    assert out.read_bytes() == failed("b", "AccessDenied") + line("c")


async def test_failures_kept_are_counted_by_code_once_per_pair(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(
        failed("a", "NoSuchKey") + failed("a", "NoSuchKey") + failed("b", "AccessDenied")
    )
    state = await load(out)
    assert (state.failed, state.failed_by_code) == (2, {"AccessDenied": 1, "NoSuchKey": 1})


async def test_a_failure_superseded_by_an_ok_record_is_not_counted(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(failed("a", "NoSuchKey") + line("a"))
    state = await load(out)
    assert (state.failed, state.failed_by_code, pairs_in(out)) == (
        0,
        {},
        Counter({("a", "detect_labels"): 1}),
    )


async def test_a_symlink_named_like_a_stale_temp_is_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(line("a", ok=False, retryable=True) + line("b"))
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    trap = tmp_path / ".out.jsonl.compact-1234.tmp"
    trap.symlink_to(victim)
    state = await load(out)
    assert (state.compacted, victim.read_bytes(), trap.is_symlink()) == (True, b"precious\n", True)


async def test_a_symlinked_output_is_rewritten_in_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_bytes(line("a", ok=False, retryable=True) + line("b"))
    link = tmp_path / "out.jsonl"
    link.symlink_to(real)
    await load(link)
    assert (link.is_symlink(), real.read_bytes()) == (True, line("b"))

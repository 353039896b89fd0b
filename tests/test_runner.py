"""What the summary says at the edges (a stopped run, failures recorded earlier), and
how ``--redo-failed`` parses."""

from __future__ import annotations

import sys

import pytest

from batchrek import cli
from batchrek.runner import format_summary


def test_a_finished_run_reads_like_one() -> None:
    text = format_summary({"ok": 3})
    assert (text.splitlines()[0], "stopped" in text) == ("batchrek summary", False)


def test_a_stopped_run_says_so_first_and_last() -> None:
    lines = format_summary({"ok": 3, "stopped": {"pairs_left": 97}}).splitlines()
    assert lines[0] == "batchrek summary (stopped before the end of the manifest)"
    assert lines[-1] == (
        "stopped: 97 pairs left (estimated from the manifest's line count); "
        "rerun with the same -o to finish"
    )


def test_a_stopped_run_of_unknown_size_says_the_pairs_left_are_not_counted() -> None:
    last = format_summary({"stopped": {"pairs_left": None}}).splitlines()[-1]
    assert last.startswith("stopped: the pairs left are not counted")


def test_failures_recorded_earlier_are_counted_by_code_with_how_to_redo_them() -> None:
    resume = {
        "failed_earlier": 3,
        "failed_earlier_by_code": {"NoSuchKey": 2, "AccessDenied": 1},
        "failed_redone": 0,
    }
    text = format_summary({"resume": resume})
    assert (
        "earlier:    3 pairs failed in earlier runs (AccessDenied 1, NoSuchKey 2); they "
        "keep exit 1: after fixing the cause, rerun with --redo-failed"
    ) in text


def _run_flags(argv: list[str]) -> dict[str, object]:
    parser = cli._parser()
    return cli._flags(parser.parse_args(argv))


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["run", "m.jsonl", "-o", "o.jsonl", "--redo-failed"], "all"),
        (
            ["run", "m.jsonl", "-o", "o.jsonl", "--redo-failed=NoSuchKey,AccessDenied"],
            "NoSuchKey,AccessDenied",
        ),
        (["run", "m.jsonl", "--redo-failed", "NoSuchKey", "-o", "o.jsonl"], "NoSuchKey"),
    ],
    ids=["all", "codes", "codes-then-more-flags"],
)
def test_redo_failed_parses(argv: list[str], value: str) -> None:
    assert _run_flags(argv)["redo_failed"] == value


def test_redo_failed_before_the_manifest_says_why_the_manifest_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--redo-failed", "m.jsonl", "-o", "o.jsonl"]
    monkeypatch.setattr(sys, "argv", ["batchrek", *argv])
    with pytest.raises(SystemExit) as exited:
        cli._parser().parse_args(argv)
    assert exited.value.code == 2
    assert "put it after the manifest, or write --redo-failed=CODES" in capsys.readouterr().err

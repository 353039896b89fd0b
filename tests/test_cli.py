"""Command-line conventions, in process: --version, -v anywhere, comma lists and
hints for --operation, one-line usage errors, flags named in messages, ranges checked
before anything runs, unknown BATCHREK_* variables, and JSON errors in JSON mode."""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

import pytest

from batchrek.cli import _parser, main
from batchrek.config import FLAGS

RUN = ["run", "m.jsonl", "-o", "o.jsonl"]


def _fails(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """Run the CLI expecting exit 2; its stderr lines."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    return capsys.readouterr().err.strip().splitlines()


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"batchrek {version('batchrek')}"


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [(["-v", *RUN], True), ([*RUN, "-v"], True), ([*RUN, "--verbose"], True), (RUN, False)],
)
def test_verbose_is_accepted_before_or_after_the_command(argv: list[str], verbose: bool) -> None:
    assert _parser().parse_args(argv).verbose is verbose


def test_operations_take_a_comma_list_and_repeat() -> None:
    args = _parser().parse_args([*RUN, "--operation", "detect_labels,detect_text",
                                 "--operation", "detect_faces"])  # fmt: skip
    assert args.operations == ["detect_labels", "detect_text", "detect_faces"]


def test_an_api_name_gets_its_snake_case_name(capsys: pytest.CaptureFixture[str]) -> None:
    first, _ = _fails(capsys, *RUN, "--operation", "DetectLabels")
    assert first.endswith("'DetectLabels' is not an operation; did you mean detect_labels?")


def test_a_usage_error_is_one_line_and_where_to_read_more(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = _fails(capsys, *RUN, "--concurrency", "many")
    assert (len(lines), lines[1]) == (2, "see: batchrek run --help")


def test_a_usage_error_shows_no_usage_block(capsys: pytest.CaptureFixture[str]) -> None:
    assert not any("usage:" in line for line in _fails(capsys, "run"))


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--item-deadline-s", "0", "setting item_deadline_s) must be more than 0, not 0"),
        ("--log-interval-s", "0", "setting log_interval_s) must be at least 1, not 0"),
        ("--concurrency", "0", "setting concurrency) must be at least 1, not 0"),
        ("--max-attempts", "-1", "setting max_attempts) must be at least 1, not -1"),
        ("--grace-period-s", "nan", "setting grace_period_s) must be a finite number, not nan"),
        ("--shard-count", "0", "setting shard_count) must be at least 1, not 0"),
    ],
)
def test_numbers_are_range_checked_before_the_run(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    assert _fails(capsys, *RUN, flag, value) == [f"batchrek: error: {flag} ({message}"]


def test_limit_zero_is_no_items(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = _fails(capsys, *RUN, "--limit", "0")
    assert ("no items" in line, "allow_empty" in line) == (True, True)


def test_a_demo_of_no_images_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    first, _ = _fails(capsys, "demo", "--count", "0")
    assert first.endswith("must be at least 1, not 0")


def test_a_report_to_an_unknown_format_is_refused_before_reading(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "r.pdf"
    (line,) = _fails(capsys, "report", str(tmp_path / "missing.json"), "-o", str(out))
    assert ("name it .html or .png" in line, out.exists()) == (True, False)


def test_an_unknown_batchrek_variable_is_reported_with_a_suggestion(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHREK_CONCURENCY", "8")
    (line,) = _fails(capsys, *RUN)
    assert line.endswith(
        "BATCHREK_CONCURENCY: unknown setting 'concurency'; did you mean "
        "BATCHREK_CONCURRENCY? (every BATCHREK_* variable is read as a setting)"
    )


def test_errors_are_json_lines_in_json_log_mode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHREK_LOG_FORMAT", "json")
    lines = _fails(capsys, *RUN, "--concurrency", "0")
    assert [json.loads(line)["level"] for line in lines] == ["error"]


def test_usage_errors_are_json_lines_in_json_log_mode(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _fails(capsys, *RUN, "--log-format", "json", "--operation", "DetectText")
    assert "did you mean detect_text?" in json.loads(lines[0])["msg"]


def test_every_flag_the_messages_name_exists() -> None:
    run = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "run"
    ]
    options = {o for action in run._actions for o in action.option_strings}
    assert set(FLAGS.values()) - options == set()


def test_every_run_flag_is_named_by_its_setting() -> None:
    run = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "run"
    ]
    dests = {a.dest for a in run._actions if a.option_strings} - {"help", "config", "verbose"}
    assert dests - set(FLAGS) == set()

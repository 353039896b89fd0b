from __future__ import annotations

from pathlib import Path

import pytest

from batchrek.config import load_settings
from batchrek.errors import ConfigError

BASE = {"manifest": "m.txt", "output": "o.jsonl"}


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_defaults_apply_when_nothing_is_given() -> None:
    s = load_settings(BASE, environ={})
    assert (s.concurrency, s.rate, s.operations, s.resume) == (64, "auto", ("detect_labels",), True)


def test_file_overrides_defaults(tmp_path: Path) -> None:
    s = load_settings(BASE, config_file=_file(tmp_path, "concurrency = 8\n"), environ={})
    assert s.concurrency == 8


def test_env_overrides_file(tmp_path: Path) -> None:
    s = load_settings(
        BASE,
        config_file=_file(tmp_path, "concurrency = 8\n"),
        environ={"BATCHREK_CONCURRENCY": "16"},
    )
    assert s.concurrency == 16


def test_flags_override_env() -> None:
    s = load_settings({**BASE, "concurrency": 4}, environ={"BATCHREK_CONCURRENCY": "16"})
    assert s.concurrency == 4


def test_env_list_of_operations() -> None:
    s = load_settings(BASE, environ={"BATCHREK_OPERATIONS": "detect_labels,detect_text"})
    assert s.operations == ("detect_labels", "detect_text")


def test_bool_from_env() -> None:
    assert load_settings(BASE, environ={"BATCHREK_RESUME": "false"}).resume is False


def test_indexed_job_sets_the_shard_index() -> None:
    s = load_settings(BASE, environ={"JOB_COMPLETION_INDEX": "2", "BATCHREK_SHARD_COUNT": "4"})
    assert (s.shard_index, s.shard_count) == (2, 4)


def test_shard_index_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="shard_index"):
        load_settings(BASE, environ={"JOB_COMPLETION_INDEX": "4", "BATCHREK_SHARD_COUNT": "4"})


def test_unknown_file_key_suggests_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'max_attempts'"):
        load_settings(BASE, config_file=_file(tmp_path, "max_attempt = 3\n"), environ={})


def test_wrong_type_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="concurrency must be int"):
        load_settings(BASE, config_file=_file(tmp_path, 'concurrency = "many"\n'), environ={})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(BASE, config_file=_file(tmp_path, "concurrency = [\n"), environ={})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(BASE, config_file=str(tmp_path / "none.toml"), environ={})


def test_rate_must_be_auto_or_a_number() -> None:
    with pytest.raises(ConfigError, match=r"--rate \(setting rate\) must be 'auto' or a number"):
        load_settings({**BASE, "rate": "fast"}, environ={})


def test_per_operation_rate_wins_over_rate(tmp_path: Path) -> None:
    s = load_settings(
        {**BASE, "rate": "20"},
        config_file=_file(tmp_path, "[rates]\ndetect_labels = 7\n"),
        environ={},
    )
    assert (s.fixed_rate("detect_labels"), s.fixed_rate("detect_text")) == (7.0, 20.0)


def test_stage_needs_a_staging_bucket() -> None:
    with pytest.raises(ConfigError, match="staging_bucket"):
        load_settings({**BASE, "oversize": "stage"}, environ={})


def test_output_is_required_unless_dry_run() -> None:
    with pytest.raises(ConfigError, match="no output"):
        load_settings({"manifest": "m.txt"}, environ={})


@pytest.mark.parametrize("name", ["default.toml", "local-demo.toml", "nightly-s3.toml"])
def test_shipped_configs_load(name: str) -> None:
    root = Path(__file__).resolve().parent.parent / "configs"
    assert load_settings(BASE, config_file=str(root / name), environ={}).operations


def test_an_unknown_environment_variable_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean BATCHREK_MAX_ATTEMPTS"):
        load_settings(BASE, environ={"BATCHREK_MAX_ATTEMPT": "3"})


def test_a_table_in_the_environment_points_to_the_config_file() -> None:
    with pytest.raises(ConfigError, match=r"\[rates\] is a table"):
        load_settings(BASE, environ={"BATCHREK_RATES": "10"})


def test_allow_empty_comes_from_the_environment() -> None:
    settings = load_settings({**BASE, "limit": 0}, environ={"BATCHREK_ALLOW_EMPTY": "1"})
    assert (settings.allow_empty, settings.limit) == (True, 0)


def test_a_range_error_from_the_file_names_the_flag_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--item-deadline-s \(setting item_deadline_s\)"):
        load_settings(BASE, config_file=_file(tmp_path, "item_deadline_s = 0\n"), environ={})


def test_a_setting_without_a_flag_is_named_with_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"setting http_timeout_s \(BATCHREK_HTTP_TIMEOUT_S\)"):
        load_settings(BASE, config_file=_file(tmp_path, "http_timeout_s = -1\n"), environ={})

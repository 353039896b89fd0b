"""The deployment files say what the code assumes: signals reach batchrek, it runs as
non-root, Kubernetes waits out its grace period, exit 2 is final, shards add up.

Checked against the code's own values (``Settings``' default ``grace_period_s``, the CLI's exit
codes), so changing one side without the other fails here.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from batchrek import cli, runner
from batchrek.config import Settings, load_settings

# PyYAML ships no types; it is in the test environment through moto (responses).
yaml: Any = importlib.import_module("yaml")

_DEFAULT_GRACE_S = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "grace_period_s"
)
ROOT = Path(__file__).resolve().parent.parent.parent
K8S = ROOT / "configs" / "k8s"
# After the grace period batchrek cancels what is in flight and closes the output
# (a last write and fsync, or completing an S3 part file): seconds it may need.
SHUTDOWN_MARGIN_S = 5


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _instructions(name: str) -> list[str]:
    return [rest for word, rest in _dockerfile() if word == name]


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((K8S / name).read_text())
    assert isinstance(data, dict)
    return data


def _job_spec(name: str) -> dict[str, Any]:
    doc = _load(name)
    spec: dict[str, Any] = doc["spec"]
    return spec["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else spec


def _container(job_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = job_spec["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value")) for e in container.get("env", ())}


MANIFESTS = ["cronjob.yaml", "indexed-job.yaml"]


# -- Dockerfile --------------------------------------------------------------------------


def test_entrypoint_is_exec_form_under_tini() -> None:
    (entry,) = _instructions("ENTRYPOINT")
    argv = json.loads(entry)  # exec form is a JSON array; shell form would not parse
    assert argv[:2] == ["/usr/bin/tini", "--"]
    assert argv[2] == "batchrek"


def test_tini_is_installed() -> None:
    assert any("tini" in shlex.split(run) for run in _instructions("RUN"))


def test_image_runs_as_a_non_root_user() -> None:
    user = _instructions("USER")[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit()


def test_pods_run_as_the_images_uid() -> None:
    uid = int(_instructions("USER")[-1].split(":")[0])
    for name in MANIFESTS:
        security = _job_spec(name)["template"]["spec"]["securityContext"]
        assert (security["runAsNonRoot"], security["runAsUser"]) == (True, uid), name


# -- both Kubernetes manifests ------------------------------------------------------------


@pytest.mark.parametrize("name", MANIFESTS)
def test_termination_grace_outlasts_batchreks_grace_period(name: str) -> None:
    spec = _job_spec(name)
    args = _container(spec)["args"]
    grace = float(_arg(args, "--grace-period-s") or _DEFAULT_GRACE_S)
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= grace + SHUTDOWN_MARGIN_S


@pytest.mark.parametrize("name", MANIFESTS)
def test_exit_2_fails_the_job_without_retries(name: str) -> None:
    spec = _job_spec(name)
    container = _container(spec)["name"]
    fail_on = [
        r["onExitCodes"]
        for r in spec["podFailurePolicy"]["rules"]
        if r["action"] == "FailJob" and "onExitCodes" in r
    ]
    assert {"containerName": container, "operator": "In", "values": [runner.EXIT_USAGE]} in fail_on


@pytest.mark.parametrize("name", MANIFESTS)
def test_pods_are_never_restarted_in_place(name: str) -> None:
    # podFailurePolicy requires Never; a retry is a new pod that resumes the output.
    assert _job_spec(name)["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("name", MANIFESTS)
def test_args_parse_as_a_batchrek_run(name: str) -> None:
    args = _container(_job_spec(name))["args"]
    parsed = cli._parser().parse_args(args)
    assert parsed.command == "run"
    assert parsed.output.startswith("s3://")


# -- the CronJob -------------------------------------------------------------------------


def test_cronjob_never_runs_twice_at_once() -> None:
    assert _load("cronjob.yaml")["spec"]["concurrencyPolicy"] == "Forbid"


def test_cronjob_has_a_starting_deadline() -> None:
    deadline = _load("cronjob.yaml")["spec"].get("startingDeadlineSeconds")
    assert isinstance(deadline, int)
    assert deadline > 0


def test_cronjobs_config_file_loads_and_its_grace_period_fits() -> None:
    spec = _job_spec("cronjob.yaml")
    args = _container(spec)["args"]
    mounted = _arg(args, "--config")
    assert mounted is not None
    settings = load_settings(  # raises ConfigError (exit 2 in the pod) if it is wrong
        {"manifest": args[1], "output": _arg(args, "-o")},
        config_file=str(ROOT / "configs" / Path(mounted).name),
        environ={},
    )
    termination = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    assert settings.grace_period_s + SHUTDOWN_MARGIN_S <= termination


def test_the_nightly_cronjob_and_its_config_use_the_same_s3_ledger() -> None:
    args = _container(_job_spec("cronjob.yaml"))["args"]
    settings = load_settings(
        {"manifest": args[1], "output": _arg(args, "-o")},
        config_file=str(ROOT / "configs" / "nightly-s3.toml"),
        environ={},
    )
    flag = _arg(args, "--ledger")
    assert (flag, settings.ledger) == (settings.ledger, flag)
    assert str(flag).startswith("s3://")


# -- the Indexed Job ---------------------------------------------------------------------


def test_indexed_job_is_indexed() -> None:
    assert _load("indexed-job.yaml")["spec"]["completionMode"] == "Indexed"


def test_indexed_job_shard_count_matches_completions() -> None:
    spec = _job_spec("indexed-job.yaml")
    count = _env(_container(spec)).get("BATCHREK_SHARD_COUNT")
    assert count is not None
    assert int(count) == spec["completions"]

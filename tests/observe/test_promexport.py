"""Prometheus export: a textfile parsed back, and a push to a real Pushgateway."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from batchrek.clock import FakeClock
from batchrek.models import ErrorInfo, Result
from batchrek.observe import RunMetrics
from batchrek.observe.prometheus import push, write_textfile

PUSHGATEWAY = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"


def _summary(*, success: bool = True) -> dict[str, Any]:
    clock = FakeClock()
    m = RunMetrics(clock, ["detect_labels"], wall=lambda: 1_700_000_000.0, cpu=lambda: 0.0)
    for seconds in (0.1, 0.2, 0.3):
        m.attempt_started("detect_labels")
        m.attempt_finished("detect_labels", seconds, outcome="ok" if success else "throttled")
    m.retried("detect_labels", "ThrottlingException")
    clock.advance(1.0)
    if success:
        for _ in range(3):
            m.record_result(_result("ok"), 0.2)
    m.record_result(_result("error"), 0.2)
    m.set_rate("detect_labels", 25.0)
    clock.advance(1.0)
    m.tick()
    m.finish()
    return m.summary()


def _result(status: str) -> Result:
    return Result(
        id="a",
        source="a.jpg",
        operation="detect_labels",
        status=status,  # type: ignore[arg-type]
        input="bytes",
        attempts=1,
        latency_ms=1.0,
        error=ErrorInfo("InvalidImageFormatException", "bad") if status == "error" else None,
    )


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The one sample named ``name`` whose labels include ``labels`` (the Pushgateway
    adds ``instance``)."""
    want = set(labels.items())
    (value,) = [v for (n, ls), v in samples.items() if n == name and want <= ls]
    return value


@pytest.fixture
def textfile(tmp_path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    path = tmp_path / "batchrek.prom"
    write_textfile(str(path), _summary())
    return _samples(path.read_text())


def test_textfile_counts_pairs_by_status(textfile: dict[Any, float]) -> None:
    assert _value(textfile, "batchrek_pairs_total", operation="detect_labels", status="ok") == 3


def test_textfile_counts_failures_by_code(textfile: dict[Any, float]) -> None:
    labels = {"operation": "detect_labels", "code": "InvalidImageFormatException"}
    assert _value(textfile, "batchrek_errors_total", **labels) == 1


def test_textfile_has_latency_quantiles_in_seconds(textfile: dict[Any, float]) -> None:
    p50 = _value(textfile, "batchrek_latency_seconds", operation="detect_labels", quantile="0.5")
    assert p50 == pytest.approx(0.2, rel=0.02)


def test_textfile_has_the_last_success_timestamp(textfile: dict[Any, float]) -> None:
    assert _value(textfile, "batchrek_last_success_timestamp_seconds") == 1_700_000_001.0


def test_textfile_has_the_settled_rate(textfile: dict[Any, float]) -> None:
    assert _value(textfile, "batchrek_rate_tps", operation="detect_labels") == 25.0


def test_no_success_means_no_last_success_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "batchrek.prom"
    write_textfile(str(path), _summary(success=False))
    assert "batchrek_last_success_timestamp_seconds" not in path.read_text()


def test_a_finished_run_is_not_stopped(textfile: dict[Any, float]) -> None:
    assert _value(textfile, "batchrek_stopped", kind="none") == 0


def test_a_stopped_run_says_why_with_its_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "batchrek.prom"
    stop = {"kind": "not_a_manifest", "exit_code": 2, "message": "m", "fix": "f"}
    write_textfile(str(path), {**_summary(), "stop": stop})
    samples = _samples(path.read_text())
    assert _value(samples, "batchrek_stopped", kind="not_a_manifest", exit_code="2") == 1


def test_a_process_alone_shares_its_quota_with_nobody(textfile: dict[Any, float]) -> None:
    assert _value(textfile, "batchrek_peers_sharing") == 1
    assert not [n for n, _ in textfile if n == "batchrek_ledger_caught_up"]  # no ledger


def test_peers_and_the_ledger_catch_up_are_exported(tmp_path: Path) -> None:
    path = tmp_path / "batchrek.prom"
    peers = {"where": "s3://b/p/_peers/", "as": "shard-0001", "others": 3, "most_at_once": 4}
    write_textfile(str(path), {**_summary(), "peers": peers, "ledger": {"caught_up": 17}})
    samples = _samples(path.read_text())
    assert _value(samples, "batchrek_peers_sharing") == 4
    assert _value(samples, "batchrek_ledger_caught_up") == 17


def test_textfile_write_leaves_no_temp_file(tmp_path: Path) -> None:
    write_textfile(str(tmp_path / "batchrek.prom"), _summary())
    assert [p.name for p in tmp_path.iterdir()] == ["batchrek.prom"]


# -- a real Pushgateway ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def pushgateway() -> Iterator[str]:
    if not Path(PUSHGATEWAY).exists():
        pytest.skip(
            "prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)"
        )
    port = _free_port()
    proc = subprocess.Popen(
        [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the Pushgateway did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        return _samples(r.read().decode())


def test_push_lands_under_the_job_and_shard(pushgateway: str) -> None:
    push(pushgateway, _summary(), job="batchrek-test", grouping={"shard": "3"})
    labels = {"job": "batchrek-test", "shard": "3", "operation": "detect_labels"}
    assert _value(_scrape(pushgateway), "batchrek_pairs_total", status="ok", **labels) == 3


def test_pushed_elapsed_seconds_is_readable(pushgateway: str) -> None:
    push(pushgateway, _summary(), job="batchrek-test", grouping={"shard": "4"})
    samples = _scrape(pushgateway)
    assert _value(samples, "batchrek_elapsed_seconds", job="batchrek-test", shard="4") == 2.0


def test_a_second_push_of_a_shard_replaces_the_first(pushgateway: str) -> None:
    push(pushgateway, _summary(), job="batchrek-test", grouping={"shard": "5"})
    push(pushgateway, _summary(success=False), job="batchrek-test", grouping={"shard": "5"})
    samples = _scrape(pushgateway)
    labels = {"job": "batchrek-test", "shard": "5", "operation": "detect_labels"}
    assert _value(samples, "batchrek_pairs_total", status="ok", **labels) == 0


# -- credentials in the Pushgateway URL -------------------------------------------------


@pytest.fixture
def recording_gateway() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in Pushgateway on 127.0.0.1 that records each request's path and auth."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization", "")})
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


def test_credentials_in_the_url_go_as_basic_auth_not_in_the_request(
    recording_gateway: tuple[str, list[dict[str, str]]],
) -> None:
    import base64

    address, seen = recording_gateway
    push(f"http://ops:s3cret@{address}", _summary(), job="j", grouping={"shard": "0"})
    [request] = seen
    assert request["auth"] == "Basic " + base64.b64encode(b"ops:s3cret").decode()
    assert "s3cret" not in request["path"]

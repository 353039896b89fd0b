"""Prometheus export of a run's summary: Pushgateway push and node-exporter textfile.

A batch job is gone before any scraper comes by, so its numbers are pushed (or left in
a textfile) once, from :meth:`RunMetrics.summary`. Each export builds a private
``CollectorRegistry``: nothing is registered globally, and two runs in one process
cannot collide. ``push`` and ``write_textfile`` block (HTTP, file I/O): call them at the
end of a run, or through ``anyio.to_thread.run_sync``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, generate_latest, push_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import basic_auth_handler
from prometheus_client.registry import Collector

from batchrek.safefile import atomic_write

__all__ = ["build_registry", "push", "write_textfile"]

_QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"))
_STATUSES = ("ok", "failed", "skipped", "deduplicated")


class _SummaryCollector(Collector):
    """Exposes one summary dict; collected once per export."""

    def __init__(self, summary: Mapping[str, Any]) -> None:
        self._summary = summary

    def collect(self) -> Iterator[Metric]:
        s = self._summary
        ops: Mapping[str, Mapping[str, Any]] = s.get("by_operation", {})

        pairs = CounterMetricFamily(
            "batchrek_pairs", "Finished (item, operation) pairs.", labels=["operation", "status"]
        )
        requests = _per_op_counter("batchrek_requests", "Service calls, retries included.")
        throttled = _per_op_counter("batchrek_throttled", "Attempts the service throttled.")
        retries = _per_op_counter("batchrek_retries", "Attempts retried.")
        errors = CounterMetricFamily(
            "batchrek_errors", "Failed pairs by error code.", labels=["operation", "code"]
        )
        rate = GaugeMetricFamily(
            "batchrek_rate_tps", "Settled request rate limit.", labels=["operation"]
        )
        latency = Metric(
            "batchrek_latency_seconds", "Service latency of successful calls.", "summary"
        )
        for op, o in ops.items():
            for status in _STATUSES:
                pairs.add_metric([op, status], o.get(status, 0))
            requests.add_metric([op], o.get("requests", 0))
            throttled.add_metric([op], o.get("throttled", 0))
            retries.add_metric([op], o.get("retries", 0))
            for code, n in o.get("failed_by_code", {}).items():
                errors.add_metric([op, code], n)
            if o.get("rate") is not None:
                rate.add_metric([op], o["rate"])
            _add_quantiles(latency, {"operation": op}, o.get("latency_ms", {}))
        yield from (pairs, requests, throttled, retries, errors, rate, latency)

        yield _gauge(
            "batchrek_throughput_per_second",
            "Finished pairs per second.",
            s.get("throughput_per_s", 0.0),
        )
        yield _gauge("batchrek_elapsed_seconds", "Run duration.", s.get("elapsed_s", 0.0))
        yield _gauge("batchrek_items", "Items read from the manifest.", s.get("items", 0))
        yield _stopped(s.get("stop"))
        peers = s.get("peers") or {}
        yield _gauge(
            "batchrek_peers_sharing",
            "Processes that shared the quota through notes at once, at most (1: alone).",
            peers.get("most_at_once", 1),
        )
        ledger = s.get("ledger") or {}
        if ledger:
            yield _gauge(
                "batchrek_ledger_caught_up",
                "Records a stopped run left out of the ledger, indexed from its output.",
                ledger.get("caught_up", 0),
            )
        skipped = CounterMetricFamily(
            "batchrek_listing_skipped",
            "Entries a folder, prefix or inventory listing left out, by reason.",
            labels=["reason"],
        )
        for reason, n in (s.get("listing_skipped") or {}).items():
            skipped.add_metric([reason], n)
        yield skipped
        if s.get("last_success_unix") is not None:
            yield _gauge(
                "batchrek_last_success_timestamp_seconds",
                "Unix time of the last successful call.",
                s["last_success_unix"],
            )


def _stopped(stop: Mapping[str, Any] | None) -> GaugeMetricFamily:
    """1 with why (``kind``) and the exit code when the run stopped before the end of
    its manifest; 0 (kind "none") when it finished."""
    gauge = GaugeMetricFamily(
        "batchrek_stopped",
        "1: the run stopped before the end of its manifest (kind: why), 0: it finished.",
        labels=["kind", "exit_code"],
    )
    if stop:
        gauge.add_metric([str(stop.get("kind")), str(stop.get("exit_code"))], 1)
    else:
        gauge.add_metric(["none", ""], 0)
    return gauge


def _per_op_counter(name: str, doc: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=["operation"])


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _add_quantiles(metric: Metric, labels: Mapping[str, str], ms: Mapping[str, Any]) -> None:
    for quantile, key in _QUANTILES:
        metric.add_sample(metric.name, {**labels, "quantile": quantile}, ms.get(key, 0.0) / 1000.0)
    count = ms.get("count", 0)
    metric.add_sample(metric.name + "_count", dict(labels), count)
    metric.add_sample(metric.name + "_sum", dict(labels), ms.get("sum", 0.0) / 1000.0)


def build_registry(summary: Mapping[str, Any]) -> CollectorRegistry:
    """A fresh registry holding exactly this summary's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SummaryCollector(summary))
    return registry


def push(
    url: str,
    summary: Mapping[str, Any],
    *,
    job: str,
    grouping: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """PUT the summary to a Pushgateway under ``job`` plus ``grouping`` (e.g. shard).

    PUT replaces the whole group, so a rerun of the same shard overwrites, never adds.
    ``https://user:password@host/`` sends the credentials as HTTP basic auth (they
    are never part of the URL requested, nor of any message).
    """
    address, auth = _split_credentials(url)
    kwargs: dict[str, Any] = {}
    if auth is not None:
        user, password = auth

        def handler(url: str, method: str, timeout: float | None, headers: Any, data: bytes) -> Any:
            return basic_auth_handler(url, method, timeout, headers, data, user, password)

        kwargs["handler"] = handler
    push_to_gateway(
        address,
        job=job,
        registry=build_registry(summary),
        grouping_key=dict(grouping or {}),
        timeout=timeout_s,
        **kwargs,
    )


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its userinfo, and the (user, password) it held."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username), unquote(parts.password or ""))


def write_textfile(path: str, summary: Mapping[str, Any]) -> None:
    """Write node-exporter textfile format; temp file + rename, so readers never see half.

    ``prometheus_client.write_to_textfile`` is not used: its temporary file has a
    predictable name opened without ``O_EXCL``, so a symlink left there would be
    followed. ``batchrek.safefile.atomic_write`` creates it exclusively."""
    atomic_write(path, generate_latest(build_registry(summary)))

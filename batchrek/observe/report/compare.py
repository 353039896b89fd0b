"""Several runs side by side: which settings differed, which run was faster, and why
(each run's verdict). The charts are ``model.compare_charts``; this is the table.

Runs are compared by pairs per second (finished (item, operation) pairs over the
run's duration), the number a user tuning --concurrency or --rate wants to raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchrek.observe.numbers import fmt, fmt_count, fmt_percent
from batchrek.observe.report.model import fmt_time, identity_rows

__all__ = ["Comparison", "compare"]

_SETTINGS = ("concurrency", "rate", "operations", "region", "endpoint", "shard", "version",
             "started", "manifest", "output")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Comparison:
    labels: tuple[str, ...]
    settings: tuple[tuple[str, tuple[str, ...], bool], ...]  # (name, cells, differs)
    results: tuple[tuple[str, tuple[str, ...]], ...]
    best: int | None  # the fastest run, by pairs per second
    conclusion: tuple[str, ...]  # the sentences: who won, by how much, and each limiter


def compare(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> Comparison:
    idents = [dict(identity_rows(s)) for s in summaries]
    settings = tuple(
        (name, cells, len(set(cells)) > 1 and name != "started")  # a start always differs
        for name in _SETTINGS
        for cells in [tuple(i.get(name, "?") for i in idents)]
    )
    speeds = [float(s.get("throughput_per_s") or 0.0) for s in summaries]
    best = max(range(len(speeds)), key=speeds.__getitem__) if any(speeds) else None
    results = (
        ("duration", _cells(summaries, lambda s: fmt_time(_f(s, "elapsed_s"), exact=True))),
        ("pairs ok / failed", _cells(summaries, lambda s: f"{fmt_count(s.get('ok') or 0)} / "
                                                        f"{fmt_count(s.get('failed') or 0)}")),
        ("pairs per second", _cells(summaries, lambda s: fmt(_f(s, "throughput_per_s")))),
        ("requests per second", _cells(summaries, _requests_per_s)),
        ("throttled", _cells(summaries, _throttled)),
        ("latency p50 / p99 ms", _cells(summaries, lambda s: " / ".join(
            fmt((s.get("latency_ms") or {}).get(k) or 0.0) for k in ("p50", "p99")))),
        ("in flight, mean", _cells(summaries, lambda s: fmt(_conc(s).get("in_flight_mean")))),
        ("client CPU, cores", _cells(summaries, _cores)),
        ("limited by", _cells(summaries, lambda s: str(_verdict(s).get("limiter", "?")))),
        ("suggestion", _cells(summaries, _suggestion)),
    )  # fmt: skip
    return Comparison(
        labels=tuple(labels),
        settings=settings,
        results=results,
        best=best,
        conclusion=_conclusion(summaries, labels, speeds, best),
    )


def _conclusion(
    summaries: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    speeds: Sequence[float],
    best: int | None,
) -> tuple[str, ...]:
    lines: list[str] = []
    if best is not None:
        others = [
            f"{fmt(speeds[best] / speeds[i])}x {labels[i]} ({fmt(speeds[i])})"
            for i in range(len(speeds))
            if i != best and speeds[i] > 0
        ]
        lines.append(
            f"Fastest: {labels[best]} at {fmt(speeds[best])} pairs/s"
            + (f", {', '.join(others)}." if others else ".")
        )
    for label, s in zip(labels, summaries, strict=True):
        verdict = _verdict(s)
        lines.append(f"{label}: limited by {verdict.get('limiter', '?')}. "
                     f"{verdict.get('explanation', '')}")  # fmt: skip
    return tuple(lines)


def _cells(summaries: Sequence[Mapping[str, Any]], cell: Any) -> tuple[str, ...]:
    return tuple(str(cell(s)) for s in summaries)


def _f(s: Mapping[str, Any], key: str) -> float:
    return float(s.get(key) or 0.0)


def _conc(s: Mapping[str, Any]) -> Mapping[str, Any]:
    conc = s.get("concurrency")
    return conc if isinstance(conc, Mapping) else {}


def _verdict(s: Mapping[str, Any]) -> Mapping[str, Any]:
    return s.get("verdict") or {}


def _requests_per_s(s: Mapping[str, Any]) -> str:
    elapsed = _f(s, "elapsed_s")
    return fmt(_f(s, "requests") / elapsed if elapsed else 0.0)


def _throttled(s: Mapping[str, Any]) -> str:
    requests = _f(s, "requests")
    share = _f(s, "throttled") / requests if requests else 0.0
    return f"{fmt_count(s.get('throttled') or 0)} ({fmt_percent(share)})"


def _cores(s: Mapping[str, Any]) -> str:
    elapsed = _f(s, "elapsed_s")
    return fmt(_f(s, "cpu_s") / elapsed if elapsed else 0.0)


def _suggestion(s: Mapping[str, Any]) -> str:
    verdict = _verdict(s)
    return str(verdict.get("flag") or verdict.get("setting") or "-")

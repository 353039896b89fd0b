"""What a run found about itself as a whole, for the summary: warnings said once
(a bucket no S3Object could be read from) and the outages its circuit breakers
waited out. Bounded: at most ``MAX_WARNINGS`` warnings."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_WARNINGS", "Findings"]

MAX_WARNINGS = 20


class Findings:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.outages: dict[str, dict[str, Any]] = {}  # endpoint -> breaker trips, probes
        self.peers: dict[str, Any] | None = None  # how the quota was shared (run.peers)

    def warn(self, text: str) -> None:
        """A finding about the whole run, said once."""
        if len(self.warnings) < MAX_WARNINGS and text not in self.warnings:
            self.warnings.append(text)

    def outage(self, endpoint: str, *, trips: int, probes: int) -> None:
        """An endpoint's circuit breaker opened ``trips`` times during the run."""
        self.outages[endpoint] = {"trips": trips, "probes": probes}

    def shared(self, *, where: str, me: str, others: int, most: int) -> None:
        """This process shared its quota through notes at ``where`` as ``me``, with
        ``others`` other processes in all, at most ``most`` (itself included) at once."""
        self.peers = {"where": where, "as": me, "others": others, "most_at_once": most}

    def summary(self) -> dict[str, Any]:
        return {
            "warnings": list(self.warnings),
            "outages": dict(self.outages),
            "peers": self.peers,
        }

    def __repr__(self) -> str:
        return f"Findings(warnings={len(self.warnings)}, outages={len(self.outages)})"

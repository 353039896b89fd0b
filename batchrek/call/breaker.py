"""Circuit breakers: an endpoint that fails for many calls at once is waited out,
not burned through.

Without one, a service outage of a few seconds spends the attempts of every item in
flight and after it (each retried up to ``max_attempts`` times), and those items
end as failed records. With one per endpoint (Rekognition; S3; each URL host):

    closed ──``threshold`` outage failures in a row──▶ open
    open ──after the probe interval──▶ half-open: one call (the probe) goes through
    half-open ──the probe is answered──▶ closed: every waiting call goes on
    half-open ──the probe fails too──▶ open, the next probe twice as late
                                       (up to ``probe_max_s``)
    open for longer than ``outage_timeout_s`` ──▶ ``ServiceOutage`` (exit 3): the
        run stops, a rerun resumes. For one URL host among many (``fatal=False``)
        the run goes on instead: that host's calls fail at once from then on, each
        a retryable ``HostUnavailable`` record that a rerun redoes.

Only outage failures count (``call.is_outage``: connection errors, timeouts, 5xx);
any other answer, a throttle or a per-image error included, proves the endpoint is
up and resets the count. A failure that finds the breaker open is the outage's, not
the item's: ``failed`` returns True and the caller waits and tries again without
spending one of the item's attempts. While the breaker is open no new call starts
(``admit`` waits), so an outage costs one probe per interval instead of a flood.

The breaker owns no task: the calls waiting in ``admit`` drive it, one of them
sleeping until the next probe is due (through the injected ``Clock``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import anyio

from batchrek.clock import Clock
from batchrek.errors import ItemError, ServiceOutage
from batchrek.models import ErrorInfo

__all__ = ["BreakerSettings", "Breakers", "CircuitBreaker"]

log = logging.getLogger("batchrek")

State = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """The breaker's timings (settings ``breaker_*`` and ``outage_timeout_s``)."""

    threshold: int = 5
    probe_s: float = 1.0
    probe_max_s: float = 15.0
    outage_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be >= 1")
        if self.probe_s <= 0 or self.probe_max_s < self.probe_s:
            raise ValueError("need 0 < probe_s <= probe_max_s")
        if self.outage_timeout_s <= 0:
            raise ValueError("outage_timeout_s must be > 0")


class CircuitBreaker:
    """One endpoint's breaker (see the module doc). Not thread-safe: one event loop."""

    def __init__(
        self, name: str, settings: BreakerSettings, *, clock: Clock, fatal: bool = True
    ) -> None:
        self.name = name
        self.settings = settings
        self.fatal = fatal
        self.trips = 0  # times it opened
        self.probes = 0  # probe calls let through
        self._clock = clock
        self._state: State = "closed"
        self._streak = 0  # outage failures in a row
        self._streak_started = 0.0
        self._last: ErrorInfo | None = None
        self._interval = settings.probe_s
        self._next_probe = 0.0
        self._electing = False  # a waiter is sleeping until the next probe
        self._outage: ServiceOutage | ItemError | None = None
        self._changed = anyio.Event()

    @property
    def state(self) -> State:
        return self._state

    @property
    def gave_up(self) -> ServiceOutage | ItemError | None:
        """The error every call gets once the outage outlasted its timeout."""
        return self._outage

    @property
    def idle(self) -> bool:
        """Closed with nothing counted: it can be forgotten (``Breakers``)."""
        return self._state == "closed" and self._streak == 0

    def outage_s(self) -> float:
        """How long the current outage has lasted (0 when closed)."""
        if self._state == "closed":
            return 0.0
        return self._clock.monotonic() - self._streak_started

    async def admit(self) -> bool:
        """Wait until a call may go; True when this call is the probe. Raises
        ``ServiceOutage`` once the endpoint has failed for ``outage_timeout_s``
        (``ItemError("HostUnavailable")``, retryable, when not ``fatal``)."""
        while True:
            if self._outage is not None:
                raise self._outage
            if self._state == "closed":
                return False
            if self._state == "open" and not self._electing:
                if await self._wait_for_probe():
                    self.probes += 1
                    return True
                continue
            await self._changed.wait()

    def succeeded(self, *, probe: bool) -> None:
        """The endpoint answered (anything but an outage failure)."""
        self._streak = 0
        if self._state != "closed":
            log.warning(
                "%s answers again after %.1f s; resuming",
                self.name,
                self._clock.monotonic() - self._streak_started,
            )
            self._state = "closed"
            self._interval = self.settings.probe_s
            self._wake()

    def failed(self, info: ErrorInfo, *, probe: bool) -> bool:
        """An outage failure. True when the breaker is open after it: the failure is
        the outage's, and the caller should ``admit`` again instead of counting it."""
        now = self._clock.monotonic()
        self._last = info
        if self._streak == 0:
            self._streak_started = now
        self._streak += 1
        if probe and self._state == "half-open":
            self._reopen(now)
            return True
        if self._state != "closed":  # sent before the breaker opened; failed with the rest
            return True
        if self._streak >= self.settings.threshold:
            self.trips += 1
            self._reopen(now)
            log.warning(
                "%s: %d calls in a row failed (%s: %s); pausing calls to it and probing "
                "(gives up after %g s)",
                self.name,
                self._streak,
                info.code,
                info.message[:200],
                self.settings.outage_timeout_s,
            )
            return True
        return False

    def abandoned(self, *, probe: bool) -> None:
        """The call ended without an answer either way (cancelled): a probe's turn
        passes to the next waiter at once."""
        if probe and self._state == "half-open":
            self._state = "open"
            self._next_probe = self._clock.monotonic()
            self._wake()

    # -- internals ---------------------------------------------------------------

    def _reopen(self, now: float) -> None:
        if self._state == "half-open":
            self._interval = min(self._interval * 2, self.settings.probe_max_s)
        self._state = "open"
        self._next_probe = now + self._interval
        self._wake()

    async def _wait_for_probe(self) -> bool:
        """This caller sleeps until the probe is due, then probes (True), unless the
        state moved on meanwhile (False: look again)."""
        self._electing = True
        try:
            await self._clock.sleep(max(0.0, self._next_probe - self._clock.monotonic()))
        finally:
            self._electing = False
            self._wake()  # a cancelled elector hands the role on
        if self._state != "open" or self._outage is not None:
            return False
        if self._clock.monotonic() < self._next_probe:
            return False  # reopened meanwhile, with a later probe time
        outage = self.outage_s()
        if outage >= self.settings.outage_timeout_s:
            last = self._last
            detail = f"{last.code}: {last.message[:200]}" if last is not None else "no answer"
            said = (
                f"{self.name} has not answered for {outage:.0f} s (outage_timeout_s = "
                f"{self.settings.outage_timeout_s:g}; last error {detail})"
            )
            if self.fatal:
                self._outage = ServiceOutage(said)  # the rerun advice: ``run.stop``
            else:
                log.warning("%s; its images fail from now on (a rerun retries them)", said)
                self._outage = ItemError("HostUnavailable", said, retryable=True)
            self._wake()
            raise self._outage
        self._state = "half-open"
        return True

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.name!r}, {self._state}, streak={self._streak}, "
            f"trips={self.trips})"
        )


class Breakers:
    """One breaker per endpoint key, created on first use. Idle breakers are
    forgotten once there are more than ``keep`` (a manifest of a million URL hosts
    must not hold a million breakers)."""

    def __init__(self, settings: BreakerSettings, *, clock: Clock, keep: int = 1024) -> None:
        self.settings = settings
        self._clock = clock
        self._keep = keep
        self._by_key: dict[str, CircuitBreaker] = {}

    def get(self, key: str, name: str | None = None, *, fatal: bool = True) -> CircuitBreaker:
        found = self._by_key.get(key)
        if found is None:
            if len(self._by_key) >= self._keep:
                for stale in [k for k, b in self._by_key.items() if b.idle]:
                    del self._by_key[stale]
                while len(self._by_key) >= self._keep:  # the oldest go, open or not
                    del self._by_key[next(iter(self._by_key))]
            found = self._by_key[key] = CircuitBreaker(
                name or key, self.settings, clock=self._clock, fatal=fatal
            )
        return found

    def open_now(self) -> list[CircuitBreaker]:
        return [b for b in self._by_key.values() if b.state != "closed"]

    def tripped(self) -> list[CircuitBreaker]:
        """Breakers that opened at least once (still remembered)."""
        return [b for b in self._by_key.values() if b.trips]

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"Breakers({len(self._by_key)}, open={len(self.open_now())})"

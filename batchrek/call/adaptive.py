"""``--rate auto``: find and hold an operation's TPS quota without knowing it.

The account's real quota is invisible to the client (AWS raises it per account,
operation and region), so the controller learns it from throttles, the way TCP
CUBIC learns a path's capacity from losses:

    rate  startup    recover     plateau       probe
      |                        .-------------------.
      |        x              /                     x   x: throttle. ceiling = the rate
      |       /|            /                       |      accepted; rate = decrease x
      |      / |         /                          |      ceiling
      |  ---'  '-------'                            '---
      +-------------------------------------------------> time

- startup: grow multiplicatively (20 % a second) from the published default until
  the first throttle; faster growth overshoots further while the service's burst
  allowance hides the quota (simulated 31 s runs at an unknown 100 TPS quota with a
  1 s burst, goodput / throttled: 15 %/s 98.1 % / 0.53 %, 18 %/s 98.7 % / 0.59 %,
  20 %/s 99.0 % / 0.70 %, 25 %/s 99.8 % / 0.89 %, max 1.1 %; measured against the
  emulator at 20 %/s: 97.9-98.5 % / 0.60-0.66 % in three runs);
- on a throttle: the new ceiling is the rate the service actually accepted over the
  last window (not the rate sent, which overshoots), the rate drops to
  ``decrease`` x ceiling (``startup_decrease``, deeper, on the first: the service's
  burst allowance inflated what it accepted during startup), at most once per
  window, because the throttles of requests already in flight describe the same
  overshoot; unless throttles keep coming from requests sent after the decrease,
  which means it fell short;
- recover along a cubic: fast at first, flat near the ceiling for a long time (each
  probe past it costs a throttled request), then convex again; once as long again
  has passed beyond the old ceiling with no throttle, grow as at startup, to find a
  raised quota in seconds;
- growth only counts while the caller keeps up with the rate, so a latency-bound or
  idle run does not inflate a rate it never used.

``call.concurrency.ConcurrencyController`` sizes the in-flight cap beside it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal, Protocol

from batchrek.call.answers import Answers
from batchrek.clock import Clock

__all__ = ["KEEPING_UP", "AdaptiveRate", "RateSnapshot", "RateTarget"]

log = logging.getLogger("batchrek.call.rate")

Phase = Literal["startup", "recover", "probe"]

# A pause needs a pile-up, not one or two unlucky calls at a low rate.
_PAUSE_MIN_THROTTLES = 3
# Throttles arriving this share of a window after a decrease were sent after it;
# this many of them mean the decrease fell short.
_AFTER_DECREASE_S = 0.4
_LATE_THROTTLES = 3
# The accepted rate is measured over >= this many calls' worth of time: 1 s of a
# shard at 25/s is ~25 answers, +-20 % (simulated: shards 16 % apart, 7 % with 100).
_ACCEPTED_CALLS = 100
# Later decreases start from the rate sent, which carries no sampling noise, unless
# the service accepted less than this share of it: the quota really fell.
_FELL_SHARE = 0.8
# The cubic's scale is kept while the ceiling stays within this factor of it.
_RESCALE = 2.0
KEEPING_UP = 0.7  # answers at this share of the rate: the caller keeps up (call.peers: busy)


class RateTarget(Protocol):
    """What the controller drives: a ``batchrek.call.ratelimit.TokenBucket``."""

    @property
    def rate(self) -> float | None: ...

    @rate.setter
    def rate(self, value: float | None) -> None: ...

    def pause_until(self, t: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """The controller's state for metrics and the run summary."""

    rate: float
    settled: float
    ceiling: float | None
    phase: Phase
    successes: int
    throttles: int
    decreases: int
    paused_until: float | None


class AdaptiveRate:
    """A per-operation request rate that converges on the service's quota.

    ``recover_s``: how long the rate takes to climb back to the ceiling after a
    decrease (how often it probes, and pays a throttle). ``pause_s``: the pause when
    throttles pile up (>= 3, ``pause_threshold`` of the window's answers), as after a
    quota drop; short, as pauses >= 0.25 s let a deep service bucket refill, which
    hides the new quota (simulated: a drop followed in 3-15 s instead of ~1.5 s).
    """

    def __init__(
        self,
        initial: float,
        *,
        clock: Clock,
        min_rate: float = 0.5,
        max_rate: float = math.inf,
        target: RateTarget | None = None,
        decrease: float = 0.9,
        window_s: float = 1.0,
        recover_s: float = 10.0,
        recover_requests: float = 200.0,
        startup_growth: float = 0.2,
        startup_decrease: float = 0.75,
        pause_s: float = 0.1,
        pause_threshold: float = 0.05,
        soft_threshold: float = 0.05,
        settle_s: float = 30.0,
    ) -> None:
        if not 0 < min_rate <= max_rate:
            raise ValueError("need 0 < min_rate <= max_rate")
        if not 0 < decrease < 1 or not 0 < startup_decrease < 1:
            raise ValueError("decrease and startup_decrease must be in (0, 1)")
        if initial <= 0 or window_s <= 0 or recover_s <= 0 or startup_growth < 0:
            raise ValueError("initial, window_s and recover_s must be > 0")
        self._clock = clock
        self.min_rate = min_rate
        self.max_rate = max_rate
        self._target = target
        self._decrease = decrease
        self._window_s = window_s
        self._startup_growth = startup_growth
        self._pause_s = pause_s
        self._pause_threshold = pause_threshold
        self._soft_threshold = soft_threshold
        self._settle_s = settle_s
        self._recover_s = recover_s
        self._recover_requests = recover_requests
        self._startup_decrease = startup_decrease
        # Cubic shape: C * K**3 == (1 - decrease) * scale, so a decrease of exactly
        # ``decrease`` from a ceiling at the scale climbs back in K seconds.
        self._cubic_c = (1.0 - decrease) * initial / recover_s**3

        now = clock.monotonic()
        self._started = now
        self._rate = self._clamp(initial)
        self._epoch_rate = self._rate  # the rate where the current growth began
        self._ceiling: float | None = None
        # The cubic's growth in req/s per s**3 is set from this rate (the first
        # ceiling), not from each new ceiling: see _decrease_at.
        self._scale: float | None = None
        self._k = 0.0  # growth seconds from the epoch to the ceiling
        self._growth_t = 0.0  # growth seconds since the epoch (frozen while idle)
        self._updated = now
        self._settled = self._rate
        self._last_decrease = -math.inf
        self._late_throttles = 0
        self._fair: tuple[float, float] | None = None  # (req/s, until when it holds)
        self._answers = Answers()
        self.successes = 0
        self.throttles = 0
        self.decreases = 0
        self._pushed = 0.0
        self._push(force=True)

    # -- inputs ---------------------------------------------------------------

    def on_success(self) -> None:
        """A call was accepted (whatever its result): evidence the rate is fine."""
        now = self._clock.monotonic()
        self._update(now)
        self.successes += 1
        self._answers.accepted(now)
        self._push()

    def on_throttle(self, *, soft: bool = False) -> None:
        """The service said "too fast": decrease, at most once per window.

        ``soft`` marks load shedding rather than the quota (Rekognition's
        ThrottlingException "Slow down", as opposed to
        ProvisionedThroughputExceededException): it shows up at any rate, so a
        trickle of them only counts, and only a sustained share
        (``soft_threshold`` of the window) decreases the rate.
        """
        now = self._clock.monotonic()
        self._update(now)
        self.throttles += 1
        self._answers.throttled(now)
        bad, share = self._throttled(now)
        # Within a window, more throttles are the same overshoot reported by calls
        # already in flight: they count, but do not decrease again.
        since = now - self._last_decrease
        if since >= _AFTER_DECREASE_S * self._window_s and not soft:
            # Sent after the last decrease (answers take well under this), and still
            # throttled: that decrease was too small (a service's burst allowance
            # inflated the rate it measured). Do not wait out the window to fix it.
            self._late_throttles += 1
        if (since >= self._window_s or self._late_throttles >= _LATE_THROTTLES) and (
            not soft or share >= self._soft_threshold
        ):
            self._decrease_at(now)
        # A pause only when throttles pile up (a quota drop), at most once per window.
        if (
            self._pause_s > 0
            and bad >= _PAUSE_MIN_THROTTLES
            and share >= self._pause_threshold
            and now - self._answers.pause[0] >= self._window_s
        ):
            self._answers.pause = (now, now + self._pause_s)
            if self._target is not None:
                self._target.pause_until(now + self._pause_s)
            log.debug("rate: %d throttles in the last window: pausing %.2f s", bad, self._pause_s)

    def share(self, fair: float, *, peers: int, fresh_s: float) -> None:
        """``peers`` processes (this one included) share the quota, and the busy ones
        send ``fair`` req/s each on average (``call.peers``). Until ``fresh_s`` from
        now, the ceiling at a throttle is that fair share, not this process's own
        rate, so after one throttle they all send the same, whatever start, split or
        luck gave them before."""
        now = self._clock.monotonic()
        self._fair = (fair, now + fresh_s) if peers > 1 and fair > 0 else None

    def take_up(self, extra: float) -> None:
        """A peer left (ended, or its notes stopped): add ``extra`` req/s, this
        process's part of the rate it was sending, now rather than after a probe."""
        now = self._clock.monotonic()
        self._update(now)
        if extra <= 0 or self._rate >= self.max_rate:
            return
        before = self._rate
        self._rate = self._clamp(self._rate + extra)
        added = self._rate - before
        self._epoch_rate = self._rate
        self._growth_t = 0.0
        if self._ceiling is not None:
            # The same gap below a raised ceiling: the cubic restarts from here.
            self._ceiling += added
            self._k = (max(0.0, self._ceiling - self._rate) / self._cubic_c) ** (1 / 3)
        self._push(force=True)
        log.debug("rate: a peer left; taking up %.1f req/s (now %.1f)", added, self._rate)

    # -- outputs --------------------------------------------------------------

    @property
    def rate(self) -> float:
        """The rate to send at now (it grows with time between events)."""
        self._update(self._clock.monotonic())
        return self._rate

    @property
    def ceiling(self) -> float | None:
        """The largest rate the service accepted at the last throttle, if any."""
        return self._ceiling

    @property
    def pause_until(self) -> float | None:
        """When the current global pause ends (clock time), or ``None`` if none is on.

        For callers that drive the bucket themselves instead of passing ``target``.
        """
        end = self._answers.pause[1]
        return end if end > self._clock.monotonic() else None

    def settled_rate(self) -> float:
        """The rate averaged over about ``settle_s``: what the run actually held."""
        self._update(self._clock.monotonic())
        return self._settled

    @property
    def phase(self) -> Phase:
        if self._ceiling is None:
            return "startup"
        return "recover" if self._growth_t < self._k else "probe"

    def snapshot(self) -> RateSnapshot:
        rate = self.rate
        return RateSnapshot(
            rate=rate,
            settled=self._settled,
            ceiling=self._ceiling,
            phase=self.phase,
            successes=self.successes,
            throttles=self.throttles,
            decreases=self.decreases,
            paused_until=self.pause_until,
        )

    # -- internals ------------------------------------------------------------

    def _clamp(self, rate: float) -> float:
        return min(self.max_rate, max(self.min_rate, rate))

    def _demand_window(self) -> float:
        # Long enough to expect a handful of responses even at very low rates.
        return max(self._window_s, 5.0 / self._rate)

    def used(self, now: float | None = None) -> float | None:
        """Answers per second lately (what this process really sends, which an idle
        one does not), or None too early to tell."""
        now = self._clock.monotonic() if now is None else now
        span = min(self._demand_window(), now - self._started)
        return self._answers.per_second(now - span, now) if span >= self._window_s else None

    def _keeping_up(self, now: float) -> bool:
        """Whether responses arrive at (most of) the rate: growth is then earned."""
        used = self.used(now)
        return used is None or used >= KEEPING_UP * self._rate

    def _update(self, now: float) -> None:
        dt = now - self._updated
        if dt <= 0:
            return
        self._answers.forget_before(now - max(self._demand_window(), self._accepted_window()))
        # Growth is earned only while calls keep up, and stops at max_rate (otherwise
        # hours pinned at the cap would grow the exponential past float range).
        if self._rate < self.max_rate and self._keeping_up(now):
            self._growth_t += dt
            self._rate = self._clamp(self._curve(self._growth_t))
        self._updated = now
        if self._settle_s > 0:
            alpha = 1.0 - math.exp(-dt / self._settle_s)
            self._settled += (self._rate - self._settled) * alpha

    def _curve(self, t: float) -> float:
        if self._ceiling is None:
            return self._epoch_rate * math.exp(t * math.log1p(self._startup_growth))
        w = self._ceiling
        past = t - self._k  # seconds past the old ceiling
        cubic = w + self._cubic_c * past**3
        if past <= self._k:
            return cubic
        # As long again past the old ceiling with no throttle: the quota was raised
        # (or freed up). Probe like at startup instead of creeping up the cubic, so a
        # quota that doubles mid-run is found in seconds, not minutes.
        edge = w + self._cubic_c * self._k**3
        return max(cubic, edge * math.exp((past - self._k) * math.log1p(self._startup_growth)))

    def _accepted_rate(self, now: float) -> float | None:
        """Successes per second over the last window (None: too few to measure)."""
        return self._answers.accepted_rate(max(now - self._accepted_window(), self._started), now)

    def _fair_share(self, now: float) -> float | None:
        return self._fair[0] if self._fair is not None and now <= self._fair[1] else None

    def _accepted_window(self) -> float:
        return max(self._window_s, _ACCEPTED_CALLS / self._rate)

    def _throttled(self, now: float) -> tuple[int, float]:
        """Throttles in the last window, and their share of its responses."""
        ok, bad = self._answers.since(now - self._window_s)
        return bad, bad / (bad + ok)

    def _decrease_at(self, now: float) -> None:
        accepted = self._accepted_rate(now)
        if self._ceiling is None or (accepted is not None and accepted < _FELL_SHARE * self._rate):
            # Leaving startup (the rate sent overshot), or the quota fell: what the
            # service accepted is the evidence.
            base = self._rate if accepted is None else min(self._rate, accepted)
        else:
            # A probe past the ceiling: the rate sent is what was too much. The
            # accepted rate says the same with the sampling noise of a few dozen
            # answers, and taking the smaller of the two walks a shard down.
            base = self._rate
        fair = self._fair_share(now)
        if fair is not None:
            # The busy peers' mean rate, times the share of its own rate the service
            # accepted (the same for all: it admits calls whoever sends them). E.g.
            # leaving startup at 40/s with 30/s accepted, peers averaging 36/s: 27.
            base = fair * base / self._rate
        # Leaving startup, the accepted rate is inflated: the service's burst allowance
        # absorbed the overshoot until it ran dry. Cut deeper once, as CUBIC does on its
        # first loss (simulated at a 100 TPS quota with a 1 s burst: throttled 0.98 % ->
        # 0.53 % of requests, goodput 98.1 % either way).
        factor = self._startup_decrease if self._ceiling is None else self._decrease
        self._ceiling = base
        self._rate = self._clamp(base * factor)
        self._epoch_rate = self._rate
        self._growth_t = 0.0
        # The cubic grows in absolute req/s (as TCP CUBIC in packets) from a fixed
        # scale: a shard below its fair share regains its ceiling and probes past it
        # sooner. Scaled by each one's own ceiling, shards keep whatever split luck
        # gave them (simulated 4 shards, 100 TPS, 30 seeds: they ended 20 % apart on
        # average, 45 % at worst; 6.7 % and 15 % with this and the two rules above).
        if self._scale is None or not 1 / _RESCALE <= base / self._scale <= _RESCALE:
            self._scale = base
        # Recover over at least ``recover_requests`` calls: each probe past the quota
        # costs about one throttle, so at low rates probes must be rarer in time.
        k_target = max(self._recover_s, self._recover_requests / self._scale)
        self._cubic_c = (1.0 - self._decrease) * self._scale / k_target**3
        gap = max(0.0, base - self._rate)
        self._k = (gap / self._cubic_c) ** (1 / 3)
        self._last_decrease = now
        self._late_throttles = 0
        self.decreases += 1
        self._push(force=True)
        msg = "rate: throttled; ceiling %.1f req/s, so the rate drops to %.1f (decrease %d)"
        log.debug(msg, base, self._rate, self.decreases)

    def _push(self, *, force: bool = False) -> None:
        """Hand the rate to the bucket when it moved enough to matter (>0.2%)."""
        if self._target is None:
            return
        if force or abs(self._rate - self._pushed) > 0.002 * self._pushed:
            self._target.rate = self._rate
            self._pushed = self._rate

    def __repr__(self) -> str:
        ceiling = "?" if self._ceiling is None else f"{self._ceiling:.2f}"
        return (
            f"<AdaptiveRate rate={self._rate:.2f}/s ceiling={ceiling} phase={self.phase} "
            f"ok={self.successes} throttled={self.throttles} decreases={self.decreases}>"
        )

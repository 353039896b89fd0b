"""Client-side limits: a token bucket for requests per second, a live in-flight cap.

Rekognition enforces a TPS quota per operation; pacing on the client spends the
quota evenly instead of hitting it in bursts and paying for throttled calls. Both
limits can be changed while tasks wait on them, because the adaptive controller
(``batchrek.call.adaptive``) retunes them during a run.
"""

from __future__ import annotations

import math
from collections import deque
from types import TracebackType

import anyio

from batchrek.clock import Clock

__all__ = ["ConcurrencyLimit", "TokenBucket"]

# With no explicit burst the bucket holds this many seconds of tokens: enough to
# absorb event-loop lateness (a late waiter would otherwise lose tokens and the
# achieved rate would sag below the set rate), small enough not to burst at a quota.
DEFAULT_BURST_S = 0.05
_WAKE_ABOVE = 0.01
_EPSILON = 1e-9


class TokenBucket:
    """Requests per second, acquired fairly in arrival order.

    Tokens accrue at ``rate`` up to ``burst``. Waiters queue on a FIFO lock and only
    the head of the line sleeps, so a changed rate or a pause takes effect for
    everyone already waiting. ``rate=None`` (or ``inf``) means unlimited; a pause
    still applies.
    """

    def __init__(self, rate: float | None, *, burst: float | None = None, clock: Clock) -> None:
        if burst is not None and burst < 1:
            raise ValueError("burst must be >= 1 token")
        self._clock = clock
        self._fixed_burst = burst
        self._rate = self._check_rate(rate)
        self._burst = self._burst_for(self._rate)
        self._level = self._burst
        self._stamp = clock.monotonic()
        self._paused_until = -math.inf
        self._lock = anyio.Lock()
        self._waiting = 0
        self._sleeper: anyio.CancelScope | None = None

    @staticmethod
    def _check_rate(rate: float | None) -> float:
        if rate is None:
            return math.inf
        if not rate > 0:
            raise ValueError("rate must be > 0 (or None for unlimited)")
        return float(rate)

    def _burst_for(self, rate: float) -> float:
        if self._fixed_burst is not None:
            return self._fixed_burst
        return 1.0 if math.isinf(rate) else max(1.0, rate * DEFAULT_BURST_S)

    @property
    def rate(self) -> float | None:
        """Tokens per second; ``None`` when unlimited."""
        return None if math.isinf(self._rate) else self._rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        new = self._check_rate(value)
        self._refill(self._clock.monotonic())  # tokens so far accrued at the old rate
        faster = new > self._rate * (1 + _WAKE_ABOVE)
        self._rate = new
        self._burst = self._burst_for(new)
        self._level = min(self._level, self._burst)
        # Only a clearly faster rate wakes the head waiter early: a slower one (or a
        # controller's tiny steps) is picked up when the waiter re-checks on waking.
        if faster and self._sleeper is not None:
            self._sleeper.cancel()

    @property
    def burst(self) -> float:
        return self._burst

    @property
    def paused_until(self) -> float:
        return self._paused_until

    @property
    def waiting(self) -> int:
        """Tasks inside ``acquire`` right now."""
        return self._waiting

    def pause_until(self, t: float) -> None:
        """Let nobody acquire before clock time ``t`` (a global pause after a throttle).

        The bucket is emptied too, so the restart is paced from zero rather than a
        burst into a service that just said "slow down". Pauses only ever extend.
        """
        now = self._clock.monotonic()
        if t <= max(now, self._paused_until):
            return
        self._refill(now)
        self._paused_until = t
        self._level = 0.0
        self._stamp = t

    def _refill(self, now: float) -> None:
        if now <= self._stamp:
            return
        self._level = min(self._burst, self._level + (now - self._stamp) * self._rate)
        self._stamp = now

    def _delay(self, now: float) -> float:
        """Seconds until one token can be taken (0 when it can be taken now)."""
        if now < self._paused_until:
            return self._paused_until - now + self._deficit() / self._rate
        if math.isinf(self._rate):
            return 0.0
        self._refill(now)
        return self._deficit() / self._rate

    def _deficit(self) -> float:
        # A waiter woken after exactly the computed delay can find 0.9999999 tokens;
        # without the tolerance it would sleep ~1e-17 s, which a clock cannot express.
        missing = 1.0 - self._level
        return missing if missing > _EPSILON else 0.0

    def _take(self) -> None:
        if not math.isinf(self._rate):
            self._level -= 1.0

    def delay(self) -> float:
        """Seconds until a token would be free for a caller arriving now."""
        return self._delay(self._clock.monotonic())

    def try_acquire(self) -> bool:
        """Take a token without waiting; never jumps the queue of waiting tasks."""
        if self._waiting or self._delay(self._clock.monotonic()) > 0:
            return False
        self._take()
        return True

    async def acquire(self) -> float:
        """Wait for a token in arrival order; return the seconds waited."""
        start = self._clock.monotonic()
        # Nobody queued and a token free: take it without the lock. Each lock
        # hand-off costs an event-loop iteration, so a bucket whose callers always
        # queue serves at most one token per iteration (~300/s on a busy loop),
        # whatever its rate. Same condition as try_acquire: never jumps the queue.
        if not self._waiting and self._delay(start) <= 0:
            self._take()
            return 0.0
        self._waiting += 1
        try:
            async with self._lock:
                while (delay := self._delay(self._clock.monotonic())) > 0:
                    with anyio.CancelScope() as scope:
                        self._sleeper = scope
                        try:
                            await self._clock.sleep(delay)
                        finally:
                            self._sleeper = None
                self._take()
        finally:
            self._waiting -= 1
        return self._clock.monotonic() - start

    def __repr__(self) -> str:
        now = self._clock.monotonic()
        rate = "unlimited" if math.isinf(self._rate) else f"{self._rate:.3f}/s"
        level = self._level
        if not math.isinf(self._rate) and now > self._stamp:
            level = min(self._burst, level + (now - self._stamp) * self._rate)
        paused = max(0.0, self._paused_until - now)
        return (
            f"<TokenBucket rate={rate} burst={self._burst:.2f} level={level:.2f} "
            f"waiting={self._waiting} paused_for={paused:.3f}s>"
        )


class ConcurrencyLimit:
    """An in-flight cap whose limit can be raised or lowered while tasks hold it.

    A counter and a FIFO of waiting tasks: raising the limit admits waiters at once;
    lowering it lets current holders finish and admits nobody new until the count
    falls below the new limit. A released slot is handed straight to the next waiter.
    (``anyio.CapacityLimiter`` did the same with a borrower set keyed by the current
    task, ~10 us per request at hundreds of requests a second; nothing here needs
    to know which task holds a slot.)
    """

    def __init__(self, limit: int) -> None:
        self._limit = self._check(limit)
        self._held = 0
        self._waiters: deque[anyio.Event] = deque()

    @staticmethod
    def _check(limit: int) -> int:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        return int(limit)

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = self._check(value)
        self._admit()

    @property
    def in_flight(self) -> int:
        return self._held

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def saturated(self) -> bool:
        """Whether every slot is taken: the signal that the cap, not the rate, binds."""
        return self._held >= self._limit

    def _admit(self) -> None:
        """Hand free slots to waiters, first come first served."""
        while self._waiters and self._held < self._limit:
            self._held += 1
            self._waiters.popleft().set()

    async def __aenter__(self) -> None:
        # A free slot and nobody queued: take it without a scheduling round trip.
        if self._held < self._limit and not self._waiters:
            self._held += 1
            return
        admitted = anyio.Event()
        self._waiters.append(admitted)
        try:
            await admitted.wait()
        except BaseException:
            if admitted.is_set():  # the slot was handed over as we were cancelled
                self._release()
            else:
                self._waiters.remove(admitted)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        self._held -= 1
        if self._waiters:
            self._admit()

    def __repr__(self) -> str:
        return (
            f"<ConcurrencyLimit limit={self.limit} in_flight={self.in_flight} "
            f"waiting={self.waiting}>"
        )

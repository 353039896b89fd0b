"""ImageInput -> response: one Rekognition call, paced, bounded and retried.

    rate token (RateControl: TokenBucket, AdaptiveRate) ─▶ in-flight slot
    (ConcurrencyLimit, ConcurrencyController) ─▶ the aiobotocore call
    ─▶ classify (the one place botocore errors are read) ─▶ call_with_retry (tenacity)

``operations`` knows each operation's parameters (checked against botocore's model)
and trims responses; ``breaker`` waits out an endpoint that fails for many calls at
once; ``guard`` decides which failures stop the whole run and says what to fix;
``preflight`` checks, before the first billed call, that the run can work;
``transient`` puts a call behind a breaker and retries other stages' downloads and
uploads; ``credentials`` forces a refresh after an expired token;
``clientspeed`` trims botocore's per-request work that a stream of identical calls
does not need. Other packages import from here, not from the modules.
"""

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from batchrek.call.adaptive import AdaptiveRate
from batchrek.call.breaker import Breakers, BreakerSettings, CircuitBreaker
from batchrek.call.clientspeed import freeze_user_agent
from batchrek.call.concurrency import ConcurrencyController
from batchrek.call.control import RateControl
from batchrek.call.credentials import force_refresh
from batchrek.call.guard import RunGuard, expired_token_stop
from batchrek.call.operations import (
    RUNNABLE,
    Operation,
    build_operations,
    operation_hint,
    trim_response,
)
from batchrek.call.peers import PeerNote, PeerShare
from batchrek.call.preflight import preflight
from batchrek.call.ratelimit import ConcurrencyLimit, TokenBucket
from batchrek.call.retry import (
    Outcome,
    RetryPolicy,
    botocore_config_kwargs,
    call_with_retry,
    classify,
    is_outage,
    is_quota_throttle,
    is_throttle,
    needs_credential_refresh,
    stops_run,
)
from batchrek.call.transient import TransientRetry, guarded

if TYPE_CHECKING:
    from batchrek.call.lean import LeanClient


async def open_lean_client(client: Any, stack: AsyncExitStack, *, concurrency: int) -> "LeanClient":
    """The lean request path over an open aiobotocore client (``call.lean``), imported
    only when a run chooses it: ``request_path = "sdk"`` never loads it."""
    from batchrek.call.lean import open_lean_client as _open

    return await _open(client, stack, concurrency=concurrency)


__all__ = [
    "RUNNABLE",
    "AdaptiveRate",
    "BreakerSettings",
    "Breakers",
    "CircuitBreaker",
    "ConcurrencyController",
    "ConcurrencyLimit",
    "Operation",
    "Outcome",
    "PeerNote",
    "PeerShare",
    "RateControl",
    "RetryPolicy",
    "RunGuard",
    "TokenBucket",
    "TransientRetry",
    "botocore_config_kwargs",
    "build_operations",
    "call_with_retry",
    "classify",
    "expired_token_stop",
    "force_refresh",
    "freeze_user_agent",
    "guarded",
    "is_outage",
    "is_quota_throttle",
    "is_throttle",
    "needs_credential_refresh",
    "open_lean_client",
    "operation_hint",
    "preflight",
    "stops_run",
    "trim_response",
]

"""ImageInput -> response: one Rekognition call, paced, bounded and retried.

    rate token (RateControl: TokenBucket, AdaptiveRate) ─▶ in-flight slot
    (ConcurrencyLimit, ConcurrencyController) ─▶ the aiobotocore call
    ─▶ classify (the one place botocore errors are read) ─▶ call_with_retry (tenacity)

``operations`` knows each operation's parameters (checked against botocore's model)
and trims responses; ``credentials`` forces a refresh after an expired token;
``clientspeed`` trims botocore's per-request work that a stream of identical calls
does not need. Other packages import from here, not from the modules.
"""

from batchrek.call.adaptive import AdaptiveRate
from batchrek.call.clientspeed import freeze_user_agent
from batchrek.call.concurrency import ConcurrencyController
from batchrek.call.control import RateControl
from batchrek.call.credentials import force_refresh
from batchrek.call.operations import (
    RUNNABLE,
    Operation,
    build_operations,
    operation_hint,
    trim_response,
)
from batchrek.call.ratelimit import ConcurrencyLimit, TokenBucket
from batchrek.call.retry import (
    Outcome,
    RetryPolicy,
    botocore_config_kwargs,
    call_with_retry,
    classify,
    is_quota_throttle,
    is_throttle,
    needs_credential_refresh,
)

__all__ = [
    "RUNNABLE",
    "AdaptiveRate",
    "ConcurrencyController",
    "ConcurrencyLimit",
    "Operation",
    "Outcome",
    "RateControl",
    "RetryPolicy",
    "TokenBucket",
    "botocore_config_kwargs",
    "build_operations",
    "call_with_retry",
    "classify",
    "force_refresh",
    "freeze_user_agent",
    "is_quota_throttle",
    "is_throttle",
    "needs_credential_refresh",
    "operation_hint",
    "trim_response",
]

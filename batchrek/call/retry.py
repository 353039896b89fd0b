"""Error classification and the per-call retry policy.

This is the one boundary where botocore, aiohttp and OS errors become ``ErrorInfo``;
nothing else in batchrek inspects them. ``classify`` says whether an error is worth
retrying; two predicates place it further:

- ``is_outage``: the endpoint is failing (connection errors, timeouts, 5xx), not
  the request. The circuit breaker (``call.breaker``) counts these per endpoint and
  pauses calls when many fail at once. Throttles are not outages: the rate
  controller answers them.
- ``stops_run``: the answer would be the same for every image of the run, so the
  run stops (``errors.RunStopped``, exit 2) and the pair is never recorded as done.
  This is our reading of the service's errors (see ``RUN_CODES``):

  * credentials: none found (botocore's NoCredentialsError, PartialCredentialsError,
    a failed credential provider), UnrecognizedClientException /
    InvalidClientTokenId (the key is unknown), InvalidSignatureException (a wrong
    secret, or a clock far off), a missing or incomplete signature. An expired
    token is retryable once a refresh succeeded; one that cannot be refreshed stops
    the run (``run.work``).
  * AccessDeniedException from Rekognition itself: the role lacks the operation's
    permission. Image operations have no per-object IAM resource (an S3 object the
    service cannot read is InvalidS3ObjectException, per image), so the same answer
    comes for every call; but IAM is eventually consistent and policies can carry
    conditions, so ``call.guard.RunGuard`` stops only after a streak of them for one
    operation with no success in between (one alone is a retryable record).
  * ResourceNotFoundException / ResourceNotReadyException: the collection (index_faces,
    search_faces_by_image) or Custom Labels model (detect_custom_labels) named in
    the parameters does not exist or is not running. The preflight checks both
    before the first billed call; during the run one of them means it went away.
  * LimitExceededException, ServiceQuotaExceededException,
    HumanLoopQuotaExceededException: an account limit, not a fault of the image.

  InvalidS3ObjectException stays per image (one key missing or unreadable); the
  same code for every object of one bucket is reported once, with the bucket
  (``run.work``).

The retry loop is tenacity's ``AsyncRetrying`` with three batchrek choices:

- full-jitter exponential back-off (AWS's recommendation: it spreads a herd of
  throttled callers instead of synchronising them),
- a per-item deadline measured on the injected ``Clock``: no back-off sleep starts
  that would end past it,
- permanent errors end the loop after one attempt; the loop never raises for an
  ``Exception``, it returns an ``Outcome`` (cancellation and a run-stopping error,
  ``errors.STOPS_THE_RUN``, which ends the whole run rather than this call, still
  propagate).

botocore must not retry underneath it (see ``botocore_config_kwargs``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp
import botocore.exceptions as bex
from tenacity import AsyncRetrying, RetryCallState, retry_if_result

from batchrek.clock import Clock
from batchrek.errors import STOPS_THE_RUN, ItemError
from batchrek.models import ErrorInfo

__all__ = [
    "CREDENTIAL_CODES",
    "PERMANENT_CODES",
    "RETRYABLE_CODES",
    "RUN_CODES",
    "THROTTLE_CODES",
    "Outcome",
    "RetryPolicy",
    "botocore_config_kwargs",
    "call_with_retry",
    "classify",
    "is_outage",
    "is_quota_throttle",
    "is_throttle",
    "needs_credential_refresh",
    "stops_run",
]

T = TypeVar("T")

# Over the quota: the rate controller must slow down, not just this call.
THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",  # S3, when sources are downloaded
    }
)
# Expired session credentials (IRSA tokens last about an hour): retry after refresh.
CREDENTIAL_CODES = frozenset({"ExpiredTokenException", "ExpiredToken", "RequestExpired"})
RETRYABLE_CODES = (
    THROTTLE_CODES
    | CREDENTIAL_CODES
    | frozenset(
        {
            "InternalServerError",
            "InternalFailure",
            "InternalError",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "RequestTimeout",
            "RequestTimeoutException",
        }
    )
)
# Credentials the service does not accept, and answers about the whole account or
# resource: both permanent for an image and the same for every image of the run.
_REFUSED_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    }
)
_ACCOUNT_WIDE = frozenset(
    {
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ResourceNotReadyException",
        "LimitExceededException",
        "ServiceQuotaExceededException",
        "HumanLoopQuotaExceededException",
    }
)
# Listed so that a 5xx status can never turn one of these into a retry.
PERMANENT_CODES = (
    frozenset(
        {
            "InvalidImageFormatException",
            "ImageTooLargeException",
            "InvalidS3ObjectException",
            "InvalidParameterException",
            "ValidationException",
        }
    )
    | _ACCOUNT_WIDE
    | _REFUSED_CREDENTIALS
)
# The same answer would come for every image of the run: stop it (see the module doc).
RUN_CODES = (
    frozenset({"NoCredentials", "CredentialsUnavailable"}) | _REFUSED_CREDENTIALS | _ACCOUNT_WIDE
)
# Retryable, but about the request rate or a timeout the client chose, not the endpoint.
_NOT_OUTAGE = frozenset({"HTTP429", "HTTP408"})


def classify(exc: BaseException) -> ErrorInfo:
    """Translate any error from a call into the code/message/retryable triple."""
    if isinstance(exc, ItemError):
        return exc.info()
    if isinstance(exc, bex.ClientError):
        return _classify_client_error(exc)
    # Timeouts first: several timeout classes are also connection errors.
    if isinstance(exc, bex.ReadTimeoutError | bex.ConnectTimeoutError | TimeoutError):
        return ErrorInfo("Timeout", _describe(exc), retryable=True)
    if isinstance(
        exc,
        bex.ConnectionError  # EndpointConnectionError, SSLError, proxy errors
        | bex.HTTPClientError  # ConnectionClosedError, ResponseStreamingError
        | aiohttp.ClientConnectionError  # ServerDisconnectedError, ...
        | aiohttp.ClientPayloadError  # body cut short
        | ConnectionError,  # ConnectionResetError, BrokenPipeError, ...
    ):
        return ErrorInfo("ConnectionError", _describe(exc), retryable=True)
    if isinstance(exc, aiohttp.ClientResponseError):  # https sources
        status = exc.status
        retryable = status >= 500 or status in (408, 429)
        return ErrorInfo(f"HTTP{status}", _describe(exc), retryable=retryable)
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return ErrorInfo("NoCredentials", _describe(exc), retryable=False)
    if isinstance(exc, bex.CredentialRetrievalError | bex.TokenRetrievalError):
        return ErrorInfo("CredentialsUnavailable", _describe(exc), retryable=False)
    return ErrorInfo("InternalClientError", _describe(exc), retryable=False)


def _classify_client_error(exc: bex.ClientError) -> ErrorInfo:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    code = str(error.get("Code") or (f"HTTP{status}" if status else "Unknown"))
    message = str(error.get("Message") or exc)
    if code in PERMANENT_CODES:
        retryable = False
    else:
        retryable = code in RETRYABLE_CODES or status >= 500 or status == 429
    return ErrorInfo(code, message, retryable=retryable)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def is_throttle(info: ErrorInfo) -> bool:
    """Whether the service said "too fast": the signal the rate controller reacts to."""
    return info.code in THROTTLE_CODES


def is_quota_throttle(info: ErrorInfo) -> bool:
    """Whether the throttle is the TPS quota itself, not the service shedding load.

    The rate controller decreases on the first quota throttle but tolerates a trickle
    of load-shedding ones (``AdaptiveRate.on_throttle(soft=True)``).
    """
    return info.code == "ProvisionedThroughputExceededException"


def is_outage(info: ErrorInfo) -> bool:
    """Whether the endpoint itself is failing (connection errors, timeouts, 5xx):
    what the circuit breaker counts. Throttles and expired tokens are not."""
    return (
        info.retryable
        and info.code not in THROTTLE_CODES
        and info.code not in CREDENTIAL_CODES
        and info.code not in _NOT_OUTAGE
    )


def stops_run(info: ErrorInfo) -> bool:
    """Whether this answer would be the same for every image of the run (see the
    module doc); AccessDeniedException stops it only after a streak (``RunGuard``)."""
    return info.code in RUN_CODES


def needs_credential_refresh(info: ErrorInfo) -> bool:
    """Whether the caller should refresh credentials before retrying."""
    return info.code in CREDENTIAL_CODES


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one call is retried: attempts, back-off bounds and a deadline.

    ``deadline_s`` bounds one item's total time so a stuck item cannot hold a worker
    for ever; ``None`` means attempts alone bound it.
    """

    max_attempts: int = 8
    base_s: float = 0.1
    cap_s: float = 20.0
    deadline_s: float | None = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("back-off bounds must be >= 0")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError("deadline_s must be > 0 or None")

    def backoff_bound(self, failures: int) -> float:
        """The upper bound of the jittered sleep after ``failures`` failed attempts."""
        return float(min(self.cap_s, self.base_s * 2 ** (failures - 1)))


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The end of one retried call: a value or the last error, and attempts made."""

    value: T | None
    error: ErrorInfo | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class _Failed:
    info: ErrorInfo


@dataclass(frozen=True, slots=True)
class _Ok(Generic[T]):
    value: T


def _retryable(result: object) -> bool:
    return isinstance(result, _Failed) and result.info.retryable


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    clock: Clock,
    on_retry: Callable[[int, ErrorInfo, float], None] | None = None,
    before_retry: Callable[[ErrorInfo], Awaitable[None]] | None = None,
    rng: random.Random | None = None,
) -> Outcome[T]:
    """Call ``fn`` until it succeeds, fails for good, or the policy gives up.

    ``on_retry(attempt, info, sleep_s)`` is told about each failed attempt that will
    be retried (for metrics and logs). ``before_retry(info)`` is awaited after the
    back-off and before the next attempt, so the pipeline can hold retries behind a
    global throttle pause or refresh credentials.
    """
    rand = rng if rng is not None else random
    started = clock.monotonic()
    deadline = started + policy.deadline_s if policy.deadline_s is not None else None
    attempts = 0
    last: ErrorInfo | None = None

    async def attempt() -> _Ok[T] | _Failed:
        nonlocal attempts, last
        if attempts and before_retry is not None and last is not None:
            await before_retry(last)
        attempts += 1
        try:
            return _Ok(await fn())
        # The whole run stops (a run-level answer, or the output failed and the halt
        # refuses new attempts): not this call's outcome, so never a record.
        except STOPS_THE_RUN:
            raise
        except Exception as exc:  # cancellation is a BaseException and propagates
            last = classify(exc)
            return _Failed(last)

    # Most calls succeed (or fail for good) the first time: make that attempt
    # directly, and build the tenacity machinery only when a retry is due. The loop
    # below is handed the first result instead of making the call again.
    first = await attempt()
    if isinstance(first, _Ok):
        return Outcome(value=first.value, error=None, attempts=1)
    if not _retryable(first) or policy.max_attempts <= 1:
        return Outcome(value=None, error=first.info, attempts=1)
    already: list[_Ok[T] | _Failed] = [first]

    async def first_then_attempt() -> _Ok[T] | _Failed:
        return already.pop() if already else await attempt()

    def wait(state: RetryCallState) -> float:
        return rand.uniform(0.0, policy.backoff_bound(state.attempt_number))

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        # Do not start a sleep that would end past the deadline.
        return deadline is not None and clock.monotonic() + state.upcoming_sleep > deadline

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and last is not None:
            on_retry(state.attempt_number, last, state.upcoming_sleep)

    retrying = AsyncRetrying(
        sleep=clock.sleep,
        wait=wait,
        stop=stop,
        retry=retry_if_result(_retryable),
        before_sleep=before_sleep,
        # When attempts or time run out, hand back the last result, never RetryError.
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    result: _Ok[T] | _Failed = await retrying(first_then_attempt)
    if isinstance(result, _Ok):
        return Outcome(value=result.value, error=None, attempts=attempts)
    return Outcome(value=None, error=result.info, attempts=attempts)


# Connections beyond --concurrency: a closing connection still counts against the
# pool while its replacement opens, and a retry may overlap its predecessor's close.
_POOL_HEADROOM = 8


def botocore_config_kwargs(concurrency: int) -> dict[str, Any]:
    """Keyword arguments for aiobotocore's ``AioConfig`` that suit a batch run.

    - botocore's own retries off (``total_max_attempts`` 1): two retry layers
      multiply (8 x 3 attempts), and botocore's back-off would not see the global
      throttle pause or the item deadline.
    - ``max_pool_connections`` at least ``concurrency``: the default 10 silently caps
      concurrency at 10, whatever --concurrency says.
    - short connect timeout (a dead endpoint should fail fast and be retried); a read
      timeout well above Rekognition's seconds-long worst case, so a slow call is not
      cancelled and paid for twice.
    - TCP keep-alive so idle pooled connections are not silently dropped by NATs.
    - no per-request parameter validation: the operation's parameters from the config
      are validated against the same botocore model once, before the first call
      (``batchrek.call.operations``), and the rest (Image, Bucket, Key) is built here.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    return {
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "max_pool_connections": concurrency + _POOL_HEADROOM,
        "connect_timeout": 5.0,
        "read_timeout": 60.0,
        "tcp_keepalive": True,
        "parameter_validation": False,
    }

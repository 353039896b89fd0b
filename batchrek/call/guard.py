"""Which failed calls stop the whole run, and the one line that says what to fix.

``call.stops_run`` names the answers that would be the same for every image (see
``call.retry``). ``RunGuard`` turns one of them into ``RunStopped`` with a message
for the operator. Every code stops the run on the first answer, except
AccessDeniedException: IAM is eventually consistent (a policy attached a few seconds
ago can still be denied) and policies can carry conditions, so one denial among
successes is recorded as a retryable error (a rerun redoes it) and the run stops
only after ``access_denied_streak`` denials of one operation with no success of it
in between. A role that lacks the permission meets that streak within its first
calls (they are not billed); a run whose other operation is allowed still stops,
because the count is per operation.
"""

from __future__ import annotations

from dataclasses import replace

from batchrek.call.operations import Operation
from batchrek.call.retry import stops_run
from batchrek.errors import RunStopped
from batchrek.models import ErrorInfo

__all__ = ["ACCESS_DENIED_STREAK", "RunGuard", "expired_token_stop", "run_stop"]

ACCESS_DENIED_STREAK = 5

_CREDENTIALS_MISSING = frozenset({"NoCredentials", "CredentialsUnavailable"})
_CREDENTIALS_UNKNOWN = frozenset({"UnrecognizedClientException", "InvalidClientTokenId"})
_SIGNATURE = frozenset(
    {
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    }
)
_LIMITS = frozenset(
    {
        "LimitExceededException",
        "ServiceQuotaExceededException",
        "HumanLoopQuotaExceededException",
    }
)


def _resource(op: Operation | None) -> tuple[str, str] | None:
    """(what, setting) of the resource an operation names in its parameters."""
    if op is None:
        return None
    if "CollectionId" in op.params:
        return f"collection {op.params['CollectionId']!r}", f"[params.{op.method}] CollectionId"
    if "ProjectVersionArn" in op.params:
        arn = op.params["ProjectVersionArn"]
        return f"Custom Labels model {arn}", f"[params.{op.method}] ProjectVersionArn"
    if "ProjectVersion" in op.params:
        return f"adapter {op.params['ProjectVersion']}", f"[params.{op.method}] ProjectVersion"
    return None


def run_stop(info: ErrorInfo, op: Operation | None, *, region: str, endpoint: str) -> RunStopped:
    """The ``RunStopped`` for a run-level answer: one line naming the fix."""
    said = f"{info.code}: {info.message}"
    code = info.code
    if code in _CREDENTIALS_MISSING:
        text = (
            f"no AWS credentials found ({said}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, pick a profile with --profile, or give the pod a role "
            "(IRSA / pod identity)"
        )
    elif code in _CREDENTIALS_UNKNOWN:
        text = (
            f"the AWS credentials are not valid at {endpoint} ({said}): check the access "
            f"key, its account and the region ({region})"
        )
    elif code in _SIGNATURE:
        text = (
            f"requests to {endpoint} are refused as wrongly signed ({said}): check the secret "
            "access key and this machine's clock"
        )
    elif code == "AccessDeniedException":
        action = f"rekognition:{op.api_name}" if op is not None else "the Rekognition action"
        text = f"access denied for {action} ({said}): grant the role {action}"
    elif code in ("ResourceNotFoundException", "ResourceNotReadyException"):
        text = _resource_text(code, said, op, region)
    elif code in _LIMITS:
        text = (
            f"an account limit was reached ({said}): raise the quota (Service Quotas) or "
            "free capacity"
        )
    else:
        text = f"the service refuses every call ({said})"
    # What a rerun does after the fix is the stop reason's to say (``run.stop``).
    return RunStopped(text)


def _resource_text(code: str, said: str, op: Operation | None, region: str) -> str:
    named = _resource(op)
    what, setting = named if named is not None else ("the resource", "the parameters")
    if code == "ResourceNotReadyException":
        fix = "start it"
        if what.startswith("Custom Labels model"):
            arn = what.removeprefix("Custom Labels model ")
            fix = (
                "start it (aws rekognition start-project-version --project-version-arn "
                f"{arn} --min-inference-units 1) and wait for RUNNING"
            )
        return f"{what} is not running ({said}): {fix}"
    fix = f"fix {setting}"
    if what.startswith("collection "):
        name = op.params["CollectionId"] if op is not None else ""
        fix = f"create it (aws rekognition create-collection --collection-id {name}) or {fix}"
    return f"{what} does not exist in {region} ({said}): {fix}"


def expired_token_stop(info: ErrorInfo) -> RunStopped:
    return RunStopped(
        f"the session credentials expired and cannot be refreshed ({info.code}: "
        f"{info.message}): renew them (a new token or role session)"
    )


class RunGuard:
    """Decides, per failed call, between an error record and stopping the run."""

    def __init__(
        self, *, region: str, endpoint: str, access_denied_streak: int = ACCESS_DENIED_STREAK
    ) -> None:
        if access_denied_streak < 1:
            raise ValueError("access_denied_streak must be >= 1")
        self.region = region
        self.endpoint = endpoint
        self._streak_needed = access_denied_streak
        self._denied: dict[str, int] = {}  # operation -> denials in a row

    def succeeded(self, op: Operation) -> None:
        if self._denied:
            self._denied.pop(op.method, None)

    def check(self, op: Operation, info: ErrorInfo) -> ErrorInfo:
        """The error to record for this failed call, or ``RunStopped`` raised."""
        if not stops_run(info):
            return info
        if info.code == "AccessDeniedException":
            denied = self._denied[op.method] = self._denied.get(op.method, 0) + 1
            if denied < self._streak_needed:
                return replace(info, retryable=True)  # not done: a rerun redoes it
        raise run_stop(info, op, region=self.region, endpoint=self.endpoint)

    def __repr__(self) -> str:
        return f"RunGuard(denied={self._denied})"

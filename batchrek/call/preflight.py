"""Before the first billed call: can this run work at all?

Checked with calls Rekognition does not bill (it bills image analyses; these are
management reads), once per run:

- the endpoint answers and the credentials are valid: ``DescribeCollection`` of the
  run's collection, ``DescribeProjects`` + ``DescribeProjectVersions`` of its Custom
  Labels model, or else ``ListCollections(MaxResults=1)``. ListCollections is the
  generic probe because it reads nothing, needs no made-up name, and answers 200 to
  an allowed role; a role without that permission gets AccessDeniedException, which
  still proves the credentials (the service authenticates before it authorises), so
  a denial here is never fatal. botocore raises NoCredentialsError before sending
  when no credentials resolve at all.
- the collection exists (index_faces, search_faces_by_image);
- the Custom Labels model exists and is RUNNING (detect_custom_labels).

Outcomes: a run-level answer (``call.stops_run``) is ``RunStopped`` (exit 2) with the
fix; an endpoint that cannot be reached (connection refused, DNS, TLS) is retried for
``connect_timeout_s`` and then ``RunStopped`` naming the endpoint; an endpoint that
answers with 5xx or throttles is waited out for ``outage_timeout_s`` and then
``ServiceOutage`` (exit 3).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from batchrek.call.credentials import force_refresh
from batchrek.call.guard import expired_token_stop, run_stop
from batchrek.call.operations import Operation
from batchrek.call.retry import classify, needs_credential_refresh, stops_run
from batchrek.clock import Clock
from batchrek.errors import RunStopped, ServiceOutage
from batchrek.models import ErrorInfo

__all__ = ["preflight"]

log = logging.getLogger("batchrek")

_VERSION_ARN = re.compile(
    r"arn:[^:]+:rekognition:[^:]*:\d*:project/(?P<project>[^/]+)/version/(?P<version>[^/]+)/\d+"
)
_FIRST_WAIT_S = 0.2
_MAX_WAIT_S = 2.0


class _Check:
    """One preflight call, retried as the module doc says."""

    def __init__(
        self,
        client: Any,
        *,
        region: str,
        endpoint: str,
        connect_timeout_s: float,
        outage_timeout_s: float,
        clock: Clock,
    ) -> None:
        self.client = client
        self.region = region
        self.endpoint = endpoint
        self.connect_timeout_s = connect_timeout_s
        self.outage_timeout_s = outage_timeout_s
        self.clock = clock

    async def __call__(
        self, what: str, call: Callable[[], Awaitable[Any]], op: Operation | None
    ) -> dict[str, Any] | None:
        """The answer, or None when the check could not be made (denied, unexpected)."""
        started = self.clock.monotonic()
        wait = _FIRST_WAIT_S
        refreshed = False
        while True:
            try:
                answer: dict[str, Any] = await call()
                return answer
            except Exception as exc:
                info = classify(exc)
            if needs_credential_refresh(info):
                if refreshed or not await _refreshed(self.client):
                    raise expired_token_stop(info)
                refreshed = True
                continue
            if info.code == "AccessDeniedException":
                log.warning("preflight: cannot check %s (%s); going on", what, info.message)
                return None
            if stops_run(info):
                raise run_stop(info, op, region=self.region, endpoint=self.endpoint)
            if not info.retryable:
                log.warning(
                    "preflight: %s answered %s: %s; going on", what, info.code, info.message
                )
                return None
            waited = self.clock.monotonic() - started
            if info.code == "ConnectionError" and waited >= self.connect_timeout_s:
                raise RunStopped(
                    f"cannot reach the Rekognition endpoint {self.endpoint} ({info.message}): "
                    "check --endpoint-url, the region and the network. Nothing was called"
                )
            if waited >= self.outage_timeout_s:
                raise ServiceOutage(
                    f"the Rekognition endpoint {self.endpoint} has failed for {waited:.0f} s "
                    f"({info.code}: {info.message}); rerun later. Nothing was called"
                )
            log.info("preflight: %s: %s, trying again", what, info.code)
            await self.clock.sleep(wait)
            wait = min(wait * 2, _MAX_WAIT_S)


async def _refreshed(client: Any) -> bool:
    try:
        return await force_refresh(client)
    except Exception as exc:  # the provider itself failed (STS down, token file gone)
        log.warning("credential refresh failed: %s", exc)
        return False


async def preflight(
    client: Any,
    ops: Sequence[Operation],
    *,
    region: str,
    connect_timeout_s: float,
    outage_timeout_s: float,
    clock: Clock,
) -> None:
    """Raise ``RunStopped`` / ``ServiceOutage`` when the run cannot work (module doc)."""
    endpoint = str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "Rekognition")
    check = _Check(
        client,
        region=region,
        endpoint=endpoint,
        connect_timeout_s=connect_timeout_s,
        outage_timeout_s=outage_timeout_s,
        clock=clock,
    )
    checked = False
    collections: set[str] = set()
    for op in ops:
        collection = op.params.get("CollectionId")
        if isinstance(collection, str) and collection not in collections:
            collections.add(collection)
            await check(
                f"collection {collection!r}",
                partial(client.describe_collection, CollectionId=collection),
                op,
            )
            checked = True
        arn = op.params.get("ProjectVersionArn")
        if isinstance(arn, str):
            await _check_model(check, client, op, arn)
            checked = True
    if not checked:
        await check("the endpoint", lambda: client.list_collections(MaxResults=1), None)


async def _check_model(check: _Check, client: Any, op: Operation, arn: str) -> None:
    match = _VERSION_ARN.fullmatch(arn)
    if match is None:
        log.warning("preflight: cannot read %s as a model version ARN; not checked", arn)
        return
    what = f"Custom Labels model {arn}"
    project, version = match["project"], match["version"]
    projects = await check(what, partial(client.describe_projects, ProjectNames=[project]), op)
    if projects is None:
        return
    found = [p for p in projects.get("ProjectDescriptions", ()) if "ProjectArn" in p]
    if not found:
        raise _not_found(check, op, f"no project named {project!r}")
    versions = await check(
        what,
        partial(
            client.describe_project_versions,
            ProjectArn=found[0]["ProjectArn"],
            VersionNames=[version],
        ),
        op,
    )
    if versions is None:
        return
    described = [
        v
        for v in versions.get("ProjectVersionDescriptions", ())
        if v.get("ProjectVersionArn") == arn
    ]
    if not described:
        raise _not_found(check, op, f"project {project!r} has no version {version!r}")
    status = str(described[0].get("Status", "UNKNOWN"))
    if status != "RUNNING":
        info = ErrorInfo("ResourceNotReadyException", f"the model is {status}, not RUNNING")
        raise run_stop(info, op, region=check.region, endpoint=check.endpoint)


def _not_found(check: _Check, op: Operation, message: str) -> RunStopped:
    info = ErrorInfo("ResourceNotFoundException", message)
    return run_stop(info, op, region=check.region, endpoint=check.endpoint)

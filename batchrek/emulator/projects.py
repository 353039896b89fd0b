"""Custom Labels models: which exist, and whether they run.

``EmulatorSettings.project_versions`` declares them: a map from a model version ARN
(``arn:aws:rekognition:<region>:<account>:project/<name>/version/<version>/<n>``)
to its status (``RUNNING``, ``STOPPED``, ``TRAINING_COMPLETED`` ...). Left unset
(``None``), every well-formed version ARN is a running model, as the emulator always
behaved. Declared, DetectCustomLabels answers ResourceNotFoundException for any other
ARN and ResourceNotReadyException for a model that is not RUNNING, as the service
does; DescribeProjects and DescribeProjectVersions describe them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from batchrek.emulator.apierrors import ServiceError, invalid_parameter
from batchrek.emulator.facestore import ACCOUNT_ID

__all__ = [
    "STATUSES",
    "ModelStore",
    "describe_project_versions",
    "describe_projects",
    "version_arn",
]

_VERSION_ARN = re.compile(
    r"arn:[a-z\d-]+:rekognition:[a-z\d-]+:\d{12}:project/(?P<project>[a-zA-Z0-9_.\-]{1,255})"
    r"/version/(?P<version>[a-zA-Z0-9_.\-]{1,255})/[0-9]+"
)
_CREATED = 1_700_000_000  # a fixed creation time: answers stay deterministic
STATUSES = frozenset(
    {
        "TRAINING_IN_PROGRESS",
        "TRAINING_COMPLETED",
        "TRAINING_FAILED",
        "STARTING",
        "RUNNING",
        "FAILED",
        "STOPPING",
        "STOPPED",
        "DELETING",
        "DEPRECATED",
        "EXPIRED",
    }
)


def version_arn(project: str, version: str, *, region: str = "us-east-1") -> str:
    """A model version ARN as the service spells it (for tests and declarations)."""
    return f"arn:aws:rekognition:{region}:{ACCOUNT_ID}:project/{project}/version/{version}/1"


def _project_arn(region: str, project: str) -> str:
    return f"arn:aws:rekognition:{region}:{ACCOUNT_ID}:project/{project}/{_CREATED}000"


class ModelStore:
    """The declared models (see the module doc); replaced on each settings change."""

    def __init__(self, region: str, versions: Mapping[str, str] | None) -> None:
        self.region = region
        self.versions: dict[str, str] | None = None
        self.declare(versions)

    def declare(self, versions: Mapping[str, str] | None) -> None:
        self.versions = dict(versions) if versions is not None else None

    def require_running(self, arn: str) -> None:
        """DetectCustomLabels' check of its ProjectVersionArn."""
        if self.versions is None:
            return
        status = self.versions.get(arn)
        if status is None:
            raise ServiceError("ResourceNotFoundException", "The requested resource doesn't exist.")
        if status != "RUNNING":
            raise ServiceError(
                "ResourceNotReadyException",
                f"ProjectVersion {arn} is not ready (status {status}).",
            )

    def projects(self, names: list[str] | None) -> list[dict[str, Any]]:
        if self.versions is None:
            known = set(names or ())
        else:
            known = {m["project"] for arn in self.versions if (m := _VERSION_ARN.fullmatch(arn))}
            if names is not None:
                known &= set(names)
        return [
            {
                "ProjectArn": _project_arn(self.region, name),
                "CreationTimestamp": _CREATED,
                "Status": "CREATED",
            }
            for name in sorted(known)
        ]

    def versions_of(self, project_arn: str, names: list[str] | None) -> list[dict[str, Any]]:
        project = project_arn.split(":project/", 1)[-1].split("/", 1)[0]
        if project_arn != _project_arn(self.region, project):
            raise ServiceError("ResourceNotFoundException", "The requested resource doesn't exist.")
        if self.versions is None:
            found = {version_arn(project, n, region=self.region): "RUNNING" for n in names or ()}
        else:
            found = {}
            for arn, status in self.versions.items():
                m = _VERSION_ARN.fullmatch(arn)
                if m and m["project"] == project and (names is None or m["version"] in names):
                    found[arn] = status
        return [
            {
                "ProjectVersionArn": arn,
                "CreationTimestamp": _CREATED,
                "Status": status,
                "StatusMessage": f"The model is {status.lower()}.",
                "MinInferenceUnits": 1,
            }
            for arn, status in sorted(found.items())
        ]


def _names(params: dict[str, Any], name: str) -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_parameter(f"{name} must be a list of names")
    return value


async def describe_projects(models: ModelStore, params: dict[str, Any]) -> dict[str, Any]:
    return {"ProjectDescriptions": models.projects(_names(params, "ProjectNames"))}


async def describe_project_versions(models: ModelStore, params: dict[str, Any]) -> dict[str, Any]:
    arn = params.get("ProjectArn")
    if not isinstance(arn, str) or ":project/" not in arn:
        raise invalid_parameter("Missing required parameter: ProjectArn")
    versions = models.versions_of(arn, _names(params, "VersionNames"))
    return {"ProjectVersionDescriptions": versions}

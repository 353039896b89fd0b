"""The Rekognition image operations batchrek runs: names, parameters, responses.

Parameters are checked against botocore's own service model before the first call,
so a typo in the config file (``MaxLabel``) or a missing required parameter
(``CollectionId`` for index_faces) is a configuration error, not ten million failed
requests.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from batchrek.errors import ConfigError
from batchrek.limits import OPERATIONS, ImageLimits, limits_for

__all__ = ["RUNNABLE", "Operation", "build_operations", "operation_hint", "trim_response"]

# Operations that take one Image and can run over a manifest (CompareFaces takes two).
RUNNABLE: tuple[str, ...] = tuple(m for m in OPERATIONS if m != "compare_faces")

_EXTERNAL_ID_BAD = re.compile(r"[^a-zA-Z0-9_.\-:]")


@cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("rekognition")


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation as configured for a run."""

    method: str  # boto3 method name, e.g. "detect_labels"
    api_name: str  # e.g. "DetectLabels"
    params: Mapping[str, Any]
    limits: ImageLimits

    def request(self, image: Mapping[str, Any], *, item_id: str) -> dict[str, Any]:
        """The keyword arguments for one call."""
        kwargs: dict[str, Any] = {**self.params, "Image": dict(image)}
        if self.method == "index_faces" and "ExternalImageId" not in kwargs:
            # IndexFaces ties each face to the image that held it; the item id is the
            # natural key, made to fit the API's pattern and length.
            kwargs["ExternalImageId"] = _EXTERNAL_ID_BAD.sub("_", item_id)[-255:]
        return kwargs


def _check_params(method: str, api_name: str, params: Mapping[str, Any]) -> None:
    from botocore.validate import ParamValidator

    shape = _service_model().operation_model(api_name).input_shape
    unknown = sorted(set(params) - set(shape.members))
    if unknown:
        allowed = ", ".join(m for m in shape.members if m != "Image")
        raise ConfigError(
            f"[params.{method}] has unknown parameter(s) {', '.join(unknown)}; "
            f"{api_name} takes: {allowed}"
        )
    if "Image" in params:
        raise ConfigError(f"[params.{method}] must not set Image: batchrek sends each image")
    missing = [m for m in shape.required_members if m != "Image" and m not in params]
    if missing:
        raise ConfigError(
            f"{method} needs {', '.join(missing)}: set it under [params.{method}] in the "
            f'config file (for example {missing[0]} = "...")'
        )
    probe = {**params, "Image": {"Bytes": b"x"}}
    report = ParamValidator().validate(probe, shape)
    if report.has_errors():
        raise ConfigError(f"[params.{method}] is invalid: {report.generate_report()}")


def build_operations(
    methods: list[str] | tuple[str, ...], params: Mapping[str, Mapping[str, Any]]
) -> tuple[Operation, ...]:
    """Validate the chosen operations and their parameters; raise ConfigError early."""
    if not methods:
        raise ConfigError("no operation chosen: pass --operation detect_labels (or another)")
    seen: list[str] = []
    for method in methods:
        if method not in RUNNABLE:
            raise ConfigError(f"unknown operation {method!r}{operation_hint(method)}")
        if method not in seen:
            seen.append(method)
    stray = sorted(set(params) - set(RUNNABLE))
    if stray:
        raise ConfigError(f"[params] names unknown operation(s): {', '.join(stray)}")
    ops = []
    for method in seen:
        api_name = OPERATIONS[method]
        op_params = dict(params.get(method, {}))
        _check_params(method, api_name, op_params)
        ops.append(Operation(method, api_name, op_params, limits_for(api_name)))
    return tuple(ops)


def operation_hint(name: str) -> str:
    """What to say after "unknown operation": the snake_case name of an API name
    (``DetectLabels`` -> detect_labels), a close match, or the whole list."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip()).lower().replace("-", "_")
    if snake in RUNNABLE:
        return f"; did you mean {snake}?"
    close = difflib.get_close_matches(snake, RUNNABLE, n=1)
    if close:
        return f"; did you mean {close[0]}?"
    return f"; choose from: {', '.join(RUNNABLE)}"


def trim_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """The service's answer without transport details (ResponseMetadata)."""
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}

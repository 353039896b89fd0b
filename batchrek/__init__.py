"""batchrek: asynchronous, high-throughput batch processing for Amazon Rekognition Image.

    from batchrek import load_settings, run_batch
    settings = load_settings({"manifest": "images.jsonl", "output": "results.jsonl"})
    outcome = anyio.run(run_batch, settings)

The public API is what ``__all__`` lists; every other module is an implementation
detail and may change.
"""

from importlib.metadata import version as _version

from batchrek.config import Settings, load_settings
from batchrek.errors import (
    BatchrekError,
    ConfigError,
    ItemError,
    ManifestUnreadable,
    OutputFailed,
    OutputRefused,
    RunStopped,
    ServiceOutage,
)
from batchrek.models import ErrorInfo, HttpUrl, ImageInput, Item, LocalPath, Result, S3Ref
from batchrek.run import RunOutcome, run_batch

__all__ = [
    "BatchrekError",
    "ConfigError",
    "ErrorInfo",
    "HttpUrl",
    "ImageInput",
    "Item",
    "ItemError",
    "LocalPath",
    "ManifestUnreadable",
    "OutputFailed",
    "OutputRefused",
    "Result",
    "RunOutcome",
    "RunStopped",
    "S3Ref",
    "ServiceOutage",
    "Settings",
    "load_settings",
    "run_batch",
]

# One place for the version: the package metadata (pyproject.toml).
__version__ = _version("batchrek")

"""batchrek's exception tree.

    BatchrekError
    ├── ConfigError          unusable configuration: the run stops, exit 2
    ├── ManifestUnreadable   the manifest itself cannot be opened or read: exit 2
    └── ItemError            one image cannot be processed: becomes one error record

Errors raised by botocore are translated into ``ErrorInfo`` in exactly one place,
``batchrek.retry.classify``; nothing else inspects botocore exceptions.
"""

from __future__ import annotations

from batchrek.models import ErrorInfo

__all__ = [
    "BatchrekError",
    "ConfigError",
    "ItemError",
    "ManifestUnreadable",
]


class BatchrekError(Exception):
    """Base of every error batchrek raises on purpose."""


class ConfigError(BatchrekError):
    """The configuration cannot work; the message says what to fix."""


class ManifestUnreadable(BatchrekError):
    """The manifest cannot be opened or read at all (one bad line is not this)."""


class ItemError(BatchrekError):
    """One image failed in a way that has a precise code (ImageTooLarge, ...)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable

    def info(self) -> ErrorInfo:
        return ErrorInfo(self.code, self.message, self.retryable)

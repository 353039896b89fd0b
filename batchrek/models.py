"""The frozen values that flow through a run.

    manifest ──Item | ManifestProblem──▶ prepare ──ImageInput──▶ call ──Result──▶ sink

Every value here is immutable and cheap; nothing holds image bytes except
``ImageInput``, which lives only while its item is in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from batchrek.redact import redact_url, scrub

__all__ = [
    "DuplicateId",
    "ErrorInfo",
    "HttpUrl",
    "ImageInput",
    "ImageStats",
    "InputMode",
    "Item",
    "LocalPath",
    "ManifestProblem",
    "Notice",
    "Oversize",
    "Result",
    "S3Ref",
    "Source",
    "Status",
]

InputMode = Literal["bytes", "s3object", "none"]
Status = Literal["ok", "error"]
# What to do with an image over an operation's limits (the ``oversize`` setting).
Oversize = Literal["resize", "stage", "fail"]


@dataclass(frozen=True, slots=True)
class LocalPath:
    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class S3Ref:
    bucket: str
    key: str
    version: str | None = None

    def __str__(self) -> str:
        uri = f"s3://{self.bucket}/{self.key}"
        return f"{uri}?versionId={self.version}" if self.version else uri


@dataclass(frozen=True, slots=True)
class HttpUrl:
    url: str

    def __str__(self) -> str:
        """As shown in records and messages: without credentials (``redact_url``);
        ``url`` is what is fetched."""
        return redact_url(self.url)


Source = LocalPath | S3Ref | HttpUrl


@dataclass(frozen=True, slots=True)
class Item:
    """One image named by the manifest.

    ``size`` and ``etag`` are what the manifest already knows (S3 Inventory gives
    both), so routing can skip a HEAD request. ``meta`` is carried, untouched, into
    every result of the item.
    """

    id: str
    source: Source
    size: int | None = None
    etag: str | None = None
    meta: Mapping[str, Any] | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class DuplicateId:
    """A manifest line repeated the id of an earlier line (``first_line``, None when
    not known)."""

    id: str
    first_line: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "first_line": self.first_line}


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """A manifest line that could not become an Item; it becomes one error record.
    ``duplicate`` is set when the line is whole but repeats an earlier line's id."""

    line: int
    reason: str
    raw: str = ""
    duplicate: DuplicateId | None = None

    @property
    def id(self) -> str:
        return f"manifest-line-{self.line}"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure's code, message and whether a rerun should try again. The message is
    scrubbed (``batchrek.redact.scrub``) however it was built: no credentials, no
    memory addresses, bounded length."""

    code: str
    message: str
    retryable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", scrub(self.message))

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the record should say although the image went through: e.g. an EXIF
    block that could not be read (``ExifUnreadable``), so orientation 1 was assumed."""

    code: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", scrub(self.message))

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class ImageStats:
    """What an image is: its container format, byte size, displayed dimensions and the
    EXIF orientation that turns its stored pixels into the displayed ones."""

    format: str
    bytes: int
    width: int
    height: int
    orientation: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "bytes": self.bytes,
            "width": self.width,
            "height": self.height,
            "orientation": self.orientation,
        }

    def displayed(self) -> dict[str, int]:
        """The record's ``image``: what a box's ratios are relative to, and how to
        map them onto the stored pixels."""
        return {"width": self.width, "height": self.height, "orientation": self.orientation}


@dataclass(frozen=True, slots=True)
class ImageInput:
    """The ``Image`` parameter to send, and how it was made."""

    image: Mapping[str, Any]
    mode: InputMode
    original: ImageStats | None = None
    sent: ImageStats | None = None
    transcoded: bool = False
    prepare_s: float = 0.0
    warnings: tuple[Notice, ...] = ()

    def transcode_record(self) -> dict[str, Any] | None:
        if not self.transcoded or self.original is None or self.sent is None:
            return None
        return {"from": self.original.as_dict(), "to": self.sent.as_dict()}

    def image_record(self) -> dict[str, int] | None:
        """What was sent, as displayed (None: an S3Object batchrek never read)."""
        return None if self.sent is None else self.sent.displayed()


@dataclass(frozen=True, slots=True)
class Result:
    """One (item, operation) outcome: exactly one JSON line of output."""

    id: str
    source: str
    operation: str
    status: Status
    input: InputMode
    attempts: int
    latency_ms: float
    response: Mapping[str, Any] | None = None
    error: ErrorInfo | None = None
    meta: Mapping[str, Any] | None = None
    transcode: Mapping[str, Any] | None = None
    warnings: tuple[Notice, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The sent image as displayed ({width, height, orientation}); None when batchrek
    # sent an S3Object it never read. Only for records whose request was sent.
    image: Mapping[str, int] | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "operation": self.operation,
            "status": self.status,
            "input": self.input,
            "attempts": self.attempts,
            "latency_ms": round(self.latency_ms, 3),
            "response": dict(self.response) if self.response is not None else None,
            "error": self.error.as_dict() if self.error is not None else None,
        }
        if self.meta:
            record["meta"] = dict(self.meta)
        if self.input != "none":
            record["image"] = dict(self.image) if self.image is not None else None
        if self.transcode:
            record["transcode"] = dict(self.transcode)
        if self.warnings:
            record["warnings"] = [w.as_dict() for w in self.warnings]
        record.update(self.extra)
        return record

    @property
    def done(self) -> bool:
        """Whether a rerun should skip this pair: ok, or failed for good."""
        return self.status == "ok" or (self.error is not None and not self.error.retryable)

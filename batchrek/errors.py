"""batchrek's exception tree.

    BatchrekError
    ├── ConfigError          unusable configuration: the run stops, exit 2
    │   └── OutputRefused    the output (or a metrics path) is the manifest, is not
    │                        batchrek's, or cannot be written: found before anything
    │                        is billed, exit 2
    ├── ManifestUnreadable   the manifest itself cannot be opened or read: exit 2
    ├── OutputFailed         a write of the output failed during the run (disk full,
    │                        I/O error, permission): billing stops at once, exit 74
    └── ItemError            one image cannot be processed: becomes one error record

Foreign errors (botocore, aiohttp, Pillow, the OS) are translated at these named
boundaries, and nowhere else; each failure is classified once there: retry,
permanent for the image, or permanent for the run.

    Rekognition calls   batchrek.call.retry.classify: any exception -> ErrorInfo
                        (code, message, retryable); the only reader of botocore
                        errors from the service.
    S3 source reads     batchrek.prepare.fetch (GetObject: NoSuchKey, AccessDenied ...
                        -> ItemError) and batchrek.prepare.regions (HeadBucket: only
                        the region header is read, the error itself is not judged).
    HTTP sources        batchrek.prepare.httpget (aiohttp errors, timeouts, statuses,
                        refused addresses and redirects -> ItemError).
    Local sources       batchrek.prepare.localread (OSError, a NUL in the path ->
                        SourceNotFound, SpecialFile, SymlinkLoop, InvalidPath ...).
    Images              batchrek.prepare.imaging._inspect.pillow_errors (any error of
                        Pillow on untrusted bytes -> CorruptImage, UnsupportedFormat,
                        DecompressionBomb), used by the header read and the transcode.
    Manifest streams    batchrek.manifest._streams (botocore, aiohttp, OSError, zlib
                        -> StreamBroken / ManifestUnreadable); a folder manifest's
                        walk in batchrek.manifest._localdir (OSError).
    Output writes       batchrek.output (OSError of the file sink, S3 part uploads
                        -> OutputFailed); the paths checked before a run in
                        batchrek.output.guard (OSError, S3 errors -> OutputRefused).
    `batchrek draw`     batchrek.draw (reading the results and the image, local or
                        S3: OSError, botocore -> ConfigError).
    Output records      batchrek.run.records.record_line (a record orjson refuses is
                        written with valid text, then without its meta: never a crash).

Every ``ErrorInfo`` message passes ``batchrek.redact.scrub`` (no URL credentials, no
memory addresses), and so does every log line (``observe.logs.ScrubFilter``).
"""

from __future__ import annotations

from batchrek.models import ErrorInfo

__all__ = [
    "EXIT_OUTPUT_FAILED",
    "STOPS_A_RUN",
    "BatchrekError",
    "ConfigError",
    "ItemError",
    "ManifestUnreadable",
    "OutputFailed",
    "OutputRefused",
    "forget_frames",
    "stopping_error",
]

# sysexits.h EX_IOERR: "an error occurred while doing I/O on some file".
EXIT_OUTPUT_FAILED = 74


class BatchrekError(Exception):
    """Base of every error batchrek raises on purpose. ``exit_code``: the process's
    exit code when this error ends a run."""

    exit_code = 2


class ConfigError(BatchrekError):
    """The configuration cannot work; the message says what to fix."""


class OutputRefused(ConfigError):
    """The output, or a metrics file, cannot be used: it is the manifest, an existing
    file that is not batchrek's records, or a path that cannot be written. Raised
    before anything is billed; the file is left exactly as it was."""


class ManifestUnreadable(BatchrekError):
    """The manifest cannot be opened or read at all (one bad line is not this)."""


class OutputFailed(BatchrekError):
    """Writing the output failed during the run (disk full, I/O error, permission
    changed). Billing stops at once: every further result could not be written. The
    records already handed to the OS stay; a rerun with the same ``-o`` finishes."""

    exit_code = EXIT_OUTPUT_FAILED

    def __init__(self, where: str, exc: BaseException) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        super().__init__(f"cannot write the output {where}: {reason}")
        self.where = where
        self.reason = reason


class ItemError(BatchrekError):
    """One image failed in a way that has a precise code (ImageTooLarge, ...)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only ``retryable`` would be lost by the default pickling, and
        # ItemErrors cross process boundaries (the image pool's workers).
        return (_rebuild_item_error, (self.code, self.message, self.retryable))

    def info(self) -> ErrorInfo:
        return ErrorInfo(self.code, self.message, self.retryable)


def _rebuild_item_error(code: str, message: str, retryable: bool) -> ItemError:
    return ItemError(code, message, retryable=retryable)


STOPS_A_RUN = (ConfigError, ManifestUnreadable, OutputFailed)


def stopping_error(group: BaseExceptionGroup[BaseException]) -> BatchrekError | None:
    """The run-stopping error inside a task group's ExceptionGroup, if there is one,
    so that it can surface as itself (exit 2 with its message), not as a traceback."""
    matched, _ = group.split(STOPS_A_RUN)
    while matched is not None:
        first = matched.exceptions[0]
        if isinstance(first, BaseExceptionGroup):
            matched = first
            continue
        return first if isinstance(first, BatchrekError) else None
    return None


def forget_frames(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and the errors chained to it, once it has been
    turned into a record.

    A traceback holds every frame it passed through, and those frames hold an item's
    image bytes. An error that came back from a thread or a worker process is also
    held by the future it was delivered through, which a frame in that traceback
    holds: a reference cycle, so the bytes live until a full garbage collection, not
    until the item is done (measured: 3 GB held against a 512 MiB byte budget).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__

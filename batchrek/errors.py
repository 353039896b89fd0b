"""batchrek's exception tree.

    BatchrekError
    ├── ConfigError          unusable configuration: the run stops, exit 2
    │   └── OutputRefused    the output (or a metrics path) is the manifest, is not
    │                        batchrek's, or cannot be written: found before anything
    │                        is billed, exit 2
    ├── ManifestUnreadable   the manifest itself cannot be opened or read: exit 2
    │   └── NotAManifest     the file turned out not to be a manifest (too many
    │                        malformed entries): exit 2, with a summary if it
    │                        was found mid-run
    ├── OutputFailed         a write of the output failed during the run (disk full,
    │                        I/O error, permission): billing stops at once, exit 74
    ├── RunStopped           the whole run cannot go on (credentials, access, the
    │   │                    collection or model, an account limit): stop, record
    │   │                    nothing it concerns, exit 2
    │   └── ServiceOutage    an endpoint failed for longer than outage_timeout_s:
    │                        exit 3, which a rerun (a Kubernetes Job's retry) resumes
    └── ItemError            one image cannot be processed: becomes one error record

Each failure is one of three scopes. Retryable (throttles, 5xx, connection errors,
timeouts) is retried, and when many calls to one endpoint fail at once a circuit
breaker pauses them instead (``batchrek.call.breaker``). Permanent for the image
(InvalidImageFormatException, NoSuchKey, CorruptImage ...) becomes one error record
and the run goes on. Permanent for the run (``batchrek.call.stops_run``: no or
invalid credentials, AccessDeniedException from Rekognition, ResourceNotFound /
ResourceNotReady for the collection or model, an account limit) would be the same
answer for every image: the run stops with ``RunStopped`` and those pairs are never
recorded as done, so a rerun after the fix does the work.

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
                        -> OutputFailed; S3 part uploads are first retried by the
                        injected ``call.TransientRetry``, and with the local spool a
                        part that never uploads keeps its records there); the paths
                        checked before a run in batchrek.output.guard (OSError, S3
                        errors -> OutputRefused).
    Transient retries   batchrek.call.transient: downloads (S3 GetObject, URL GET)
                        and part uploads are retried on what ``call.classify`` calls
                        retryable; the last exception is re-raised unchanged for the
                        boundary above it to translate.
    `batchrek draw`     batchrek.draw (reading the results and the image, local or
                        S3: OSError, botocore -> ConfigError).
    Output records      batchrek.run.records.record_line (a record orjson refuses is
                        written with valid text, then without its meta: never a crash).

Every ``ErrorInfo`` message passes ``batchrek.redact.scrub`` (no URL credentials, no
memory addresses), and so does every log line (``observe.logs.ScrubFilter``).
"""

from __future__ import annotations

from typing import get_args

from batchrek.models import ErrorInfo

__all__ = [
    "EXIT_OUTAGE",
    "EXIT_OUTPUT_FAILED",
    "EXIT_USAGE",
    "STOPS_A_RUN",
    "STOPS_THE_RUN",
    "BatchrekError",
    "ConfigError",
    "ItemError",
    "ManifestUnreadable",
    "NotAManifest",
    "OutputFailed",
    "OutputRefused",
    "RunStopped",
    "ServiceOutage",
    "StopsTheRun",
    "exit_code_of",
    "forget_frames",
    "stopping_error",
]

EXIT_USAGE = 2  # nothing useful can run until the user fixes something
EXIT_OUTAGE = 3  # an endpoint was down for longer than outage_timeout_s: retry later
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


class NotAManifest(ManifestUnreadable):
    """The file is not a manifest: its entries are malformed beyond the settings'
    thresholds (``max_leading_bad_lines``, ``max_bad_line_share``). Found mid-run, it
    stops the run after the calls in flight are written."""


class OutputFailed(BatchrekError):
    """Writing the output failed during the run (disk full, I/O error, permission
    changed). Billing stops at once: every further result could not be written. The
    records already handed to the OS stay; a rerun with the same ``-o`` finishes."""

    exit_code = EXIT_OUTPUT_FAILED

    def __init__(self, where: str, exc: BaseException, *, note: str = "") -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        said = f"cannot write the output {where}: {reason}"
        super().__init__(f"{said}. {note}" if note else said)
        self.where = where
        self.reason = reason


class RunStopped(BatchrekError):
    """The whole run cannot go on: every further call would fail the same way.

    Raised before the first billed call by the preflight checks, or reported by a
    worker or the breaker during the run; the run then stops gracefully (in-flight
    calls finish and are written) and exits with ``exit_code``. The pairs it concerns
    are never recorded as done: a rerun after the fix does them.
    """

    exit_code = EXIT_USAGE


class ServiceOutage(RunStopped):
    """An endpoint (Rekognition, S3 or a URL host) failed for longer than
    ``outage_timeout_s``. Nothing is wrong with the run itself: rerun later."""

    exit_code = EXIT_OUTAGE


# What stops a run on its own, with its exit code: a run-level failure or the output.
StopsTheRun = RunStopped | OutputFailed
# The same as a tuple, for ``except``: a call or an item that meets one of these is
# not done (no record); the run stops instead. (``STOPS_A_RUN`` below is wider: what
# the CLI turns into a one-line message and an exit code.)
STOPS_THE_RUN: tuple[type[RunStopped | OutputFailed], ...] = get_args(StopsTheRun)


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


STOPS_A_RUN = (ConfigError, ManifestUnreadable, OutputFailed, RunStopped)


def exit_code_of(error: BatchrekError) -> int:
    """The process exit code for a run-stopping error: 3 for an outage, 74 for the
    output, else 2."""
    return error.exit_code if isinstance(error, RunStopped | OutputFailed) else EXIT_USAGE


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

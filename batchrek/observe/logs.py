"""Logging: human text on a terminal, one JSON object per line for log collectors.

With ``--log-format json`` every line batchrek writes to stderr is a JSON object,
terminal or not: log records, progress lines, Python warnings (captured into
logging), errors and the end-of-run summary (``log_summary``). Reports meant to be
piped (``--dry-run``) go to stdout.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from batchrek.redact import scrub

__all__ = ["JsonFormatter", "ScrubFilter", "log_summary", "setup_logging"]

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}``: fields given with ``extra=``
    become keys, so Kubernetes log pipelines can index them."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class ScrubFilter(logging.Filter):
    """Every log line through ``batchrek.redact.scrub``: no password or signature of
    a URL (a Pushgateway's, a source's) and no memory address reaches the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(fmt: str, *, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ScrubFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("batchrek")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    warnings = logging.getLogger("py.warnings")
    if fmt == "json":  # a library's warning must not be the one plain-text line
        logging.captureWarnings(True)
        warnings.handlers[:] = [handler]
        warnings.propagate = False
    else:
        logging.captureWarnings(False)
        warnings.handlers[:] = []


def log_summary(summary: Mapping[str, Any], text: str, *, as_json: bool) -> None:
    """The end-of-run summary: ``text`` on stderr, or with JSON logs one JSON line
    carrying the summary (without the per-second timeline, which is in
    ``--metrics-out``)."""
    if not as_json:
        print(text, file=sys.stderr, flush=True)
        return
    compact = {k: v for k, v in summary.items() if k != "timeline"}
    logging.getLogger("batchrek.summary").info("summary", extra={"summary": compact})

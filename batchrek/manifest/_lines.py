"""Bytes chunks to numbered text lines, in batches.

A 10-million-line manifest must not cost one await (or one thread hop) per line, so
lines travel in batches: one ``LineBatch`` per chunk, split and decoded in C
(``bytes.decode`` and ``str.split`` over the whole chunk) and walked by a parser in a
plain loop. Only a chunk holding invalid UTF-8 falls back to line-by-line decoding.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from typing import Final, Protocol

from batchrek.manifest._streams import StreamBroken
from batchrek.models import Item, ManifestProblem

__all__ = [
    "MAX_LINE_BYTES",
    "RAW_CHARS",
    "LineBatch",
    "LineParser",
    "RecordBatches",
    "Records",
    "problem",
    "split_lines",
]

MAX_LINE_BYTES: Final = 16 * 1024 * 1024
"""A longer "line" means the file is not a text manifest; reading stops there."""

_BOM: Final = b"\xef\xbb\xbf"
_NO_BAD: Final[Mapping[int, str]] = {}


@dataclass(frozen=True, slots=True)
class LineBatch:
    """Consecutive lines, without their line ends, starting at line number ``first``.

    ``bad`` maps an index in ``lines`` to why that line is unusable; its text in
    ``lines`` is then a lossy decoding, good only for a problem record.
    """

    first: int
    lines: list[str]
    bad: Mapping[int, str]


async def split_lines(chunks: AsyncIterable[bytes], *, first: int = 1) -> AsyncIterator[LineBatch]:
    """Split ``chunks`` into lines; CRLF, a UTF-8 BOM and a last line without EOL are fine.

    Raises ``StreamBroken`` when a line exceeds ``MAX_LINE_BYTES``.
    """
    tail = b""
    at_start = True
    lineno = first
    async for chunk in chunks:
        if not chunk:
            continue
        buf = tail + chunk if tail else chunk
        cut = buf.rfind(b"\n")
        if cut < 0:
            if len(buf) > MAX_LINE_BYTES:
                raise StreamBroken(
                    f"line {lineno} is longer than {MAX_LINE_BYTES} bytes; is this a manifest?"
                )
            tail = buf
            continue
        # Keep the newline in the body so a CRLF ending the body is normalised too.
        body, tail = buf[: cut + 1], buf[cut + 1 :]
        if at_start:
            body = body.removeprefix(_BOM)
            at_start = False
        batch = _decode(body, lineno)
        lineno += len(batch.lines)
        yield batch
    if at_start:
        tail = tail.removeprefix(_BOM)
    if tail:
        yield _decode(tail + b"\n", lineno)


def _decode(body: bytes, first: int) -> LineBatch:
    """``body`` ends with b"\\n"; every line in it is complete."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _decode_slowly(body, first)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    lines.pop()  # the empty string after the final newline
    return LineBatch(first, lines, _NO_BAD)


def _decode_slowly(body: bytes, first: int) -> LineBatch:
    raw_lines = body.split(b"\n")
    raw_lines.pop()
    lines: list[str] = []
    bad: dict[int, str] = {}
    for index, raw in enumerate(raw_lines):
        raw = raw.removesuffix(b"\r")
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(raw.decode("utf-8", "replace"))
            bad[index] = f"not valid UTF-8 (byte {exc.start})"
    return LineBatch(first, lines, bad)


Records = Iterable[Item | ManifestProblem]
RecordBatches = AsyncGenerator[Records, None]
"""What every reader produces: batches, consumed one after the other, each fully."""


class LineParser(Protocol):
    """Turns batches of lines into Items and problems; may keep state across batches.

    ``feed`` is a generator, not a list: an Item handed on at once dies young, while a
    chunk's worth held in a list survives into older GC generations (measured: ~20%
    of the time for a plain list).
    """

    def feed(self, batch: LineBatch) -> Iterator[Item | ManifestProblem]: ...


RAW_CHARS: Final = 200


def problem(line: int, reason: str, raw: str) -> ManifestProblem:
    """A problem record keeping only the start of the offending line."""
    return ManifestProblem(line=line, reason=reason, raw=raw[:RAW_CHARS])

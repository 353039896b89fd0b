"""Bytes chunks to numbered text lines, in batches.

A 10-million-line manifest must not cost one await (or one thread hop) per line, so
lines travel in batches: one ``LineBatch`` per chunk, split and decoded in C
(``bytes.decode`` and ``str.split`` over the whole chunk) and walked by a parser in a
plain loop. Only a chunk holding invalid UTF-8 falls back to line-by-line decoding.

``LineParser.feed`` is that loop, the one for every line format: it numbers the
lines, reports the undecodable ones, and turns a line its format rejects
(``LineRejected`` or ``SourceSyntaxError``) into a ``ManifestProblem`` and goes on.
A format only says what one line means (``parse_line``).
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
from typing import Final

from batchrek.manifest._sources import SourceSyntaxError
from batchrek.models import Item, ManifestProblem

__all__ = [
    "MAX_LINE_BYTES",
    "RAW_CHARS",
    "LineBatch",
    "LineParser",
    "LineRejected",
    "RecordBatches",
    "Records",
    "problem",
    "split_lines",
]

RAW_CHARS: Final = 200

MAX_LINE_BYTES: Final = 16 * 1024 * 1024
"""A longer line is one problem record ("longer than ..."), and reading goes on at the
next line: memory never holds more than about this much of one line."""

_BOM: Final = b"\xef\xbb\xbf"
_KEEP: Final = 800  # bytes of an over-long line kept for its problem record
_NO_BAD: Final[Mapping[int, str]] = {}


@dataclass(frozen=True, slots=True)
class LineBatch:
    """Consecutive lines, without their line ends, starting at line number ``first``.

    ``bad`` maps an index in ``lines`` to why that line is unusable; its text in
    ``lines`` is then a lossy decoding (or only the start of the line), good only for
    a problem record.
    """

    first: int
    lines: list[str]
    bad: Mapping[int, str]


async def split_lines(
    chunks: AsyncIterable[bytes], *, first: int = 1, max_line: int = MAX_LINE_BYTES
) -> AsyncIterator[LineBatch]:
    """Split ``chunks`` into lines; CRLF, a UTF-8 BOM and a last line without EOL are fine.

    A line over ``max_line`` bytes becomes a batch of its own whose one line is bad
    (its first bytes kept for the record); the rest of it is skipped unread. (A
    line wholly inside one chunk is not measured: readers' chunks are 1 MiB.)
    """
    parts: list[bytes] = []  # the unfinished line, in pieces (no quadratic joins)
    pending = 0  # its length
    at_start = True
    lineno = first
    skipping: bytes | None = None  # the start of an over-long line being skipped
    async for chunk in chunks:
        if not chunk:
            continue
        if skipping is not None:
            cut = chunk.find(b"\n")
            if cut < 0:
                continue
            yield _too_long(skipping, lineno, max_line)
            lineno += 1
            skipping = None
            chunk = chunk[cut + 1 :]
        elif parts:
            cut = chunk.find(b"\n")
            if pending + (len(chunk) if cut < 0 else cut) > max_line:
                head, parts, pending = _head(parts), [], 0
                if cut < 0:
                    skipping = head
                    continue
                yield _too_long(head, lineno, max_line)
                lineno += 1
                chunk = chunk[cut + 1 :]
        if not chunk:
            continue
        cut = chunk.rfind(b"\n")
        if cut < 0:
            parts.append(chunk)
            pending += len(chunk)
            if pending > max_line:
                skipping, parts, pending = _head(parts), [], 0
            continue
        # Keep the newline in the body so a CRLF ending the body is normalised too.
        body = b"".join([*parts, chunk[: cut + 1]]) if parts else chunk[: cut + 1]
        rest = chunk[cut + 1 :]
        parts, pending = ([rest], len(rest)) if rest else ([], 0)
        if at_start:
            body = body.removeprefix(_BOM)
            at_start = False
        batch = _decode(body, lineno)
        lineno += len(batch.lines)
        yield batch
        if pending > max_line:
            skipping, parts, pending = _head(parts), [], 0
    if skipping is not None:
        yield _too_long(skipping, lineno, max_line)
        return
    tail = b"".join(parts)
    if at_start:
        tail = tail.removeprefix(_BOM)
    if tail:
        yield _decode(tail + b"\n", lineno)


def _head(parts: list[bytes]) -> bytes:
    return parts[0][:_KEEP] if len(parts[0]) >= _KEEP else b"".join(parts)[:_KEEP]


def _too_long(head: bytes, lineno: int, max_line: int) -> LineBatch:
    text = head.decode("utf-8", "replace")
    return LineBatch(lineno, [text], {0: f"longer than {max_line:,} bytes; skipped"})


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


class LineRejected(Exception):
    """Raised by ``LineParser.parse_line``: the line is unusable; the message says why."""


class LineParser:
    """Turns batches of lines into Items and problems; may keep state across batches.

    A format subclasses this and writes ``parse_line``; ``feed`` is the loop every
    format shares, and the only one: no generator is stacked per line on top of it.
    ``feed`` is a generator, not a list: an Item handed on at once dies young, while a
    chunk's worth held in a list survives into older GC generations (measured: ~20%
    of the time for a plain list).
    """

    def parse_line(self, line: str, number: int) -> Item | None:
        """The Item line ``number`` names, or ``None`` for a line to skip (a blank, a
        header). Raises ``LineRejected`` or ``SourceSyntaxError`` for a bad line."""
        raise NotImplementedError

    def skips_undecodable(self, line: str) -> bool:
        """Whether a line that is not valid UTF-8 (``line`` is its lossy decoding) is
        skipped, not reported; only a format with comments skips one."""
        return False

    def feed(self, batch: LineBatch) -> Iterator[Item | ManifestProblem]:
        parse_line = self.parse_line
        bad = batch.bad
        first = batch.first
        for number, line in enumerate(batch.lines, first):
            if bad and number - first in bad:
                if not self.skips_undecodable(line):
                    yield problem(number, bad[number - first], line)
                continue
            try:
                item = parse_line(line, number)
            except (LineRejected, SourceSyntaxError) as exc:
                yield problem(number, str(exc), line)
                continue
            if item is not None:
                yield item


def problem(line: int, reason: str, raw: str) -> ManifestProblem:
    """A problem record keeping only the start of the offending line."""
    return ManifestProblem(line=line, reason=reason, raw=raw[:RAW_CHARS])

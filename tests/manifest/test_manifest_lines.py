"""Chunks to lines and gzip streaming: the layer every line-based manifest rides on."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterable

import pytest

from batchrek.manifest._lines import MAX_LINE_BYTES, split_lines
from batchrek.manifest._streams import StreamBroken, gunzip

pytestmark = pytest.mark.anyio


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _from(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _lines(data: bytes, size: int = 1 << 20) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    async for batch in split_lines(_chunks(data, size)):
        out.extend(enumerate(batch.lines, batch.first))
    return out


async def _gunzip(parts: Iterable[bytes], max_out: int = 1 << 20) -> bytes:
    return b"".join([piece async for piece in gunzip(_from(parts), name="t", max_out=max_out)])


async def test_lines_split_across_chunk_boundaries_are_rejoined() -> None:
    data = "s3://b/é-1.jpg\nsecond line\nthird\n".encode()
    assert await _lines(data, size=1) == [(1, "s3://b/é-1.jpg"), (2, "second line"), (3, "third")]


async def test_final_line_without_newline_is_kept() -> None:
    assert await _lines(b"a\nb") == [(1, "a"), (2, "b")]


async def test_trailing_newline_adds_no_empty_line() -> None:
    assert await _lines(b"a\nb\n") == [(1, "a"), (2, "b")]


async def test_crlf_line_ends_are_removed_even_when_split_by_chunks() -> None:
    assert await _lines(b"a\r\nb\r\nc\r", size=2) == [(1, "a"), (2, "b"), (3, "c")]


async def test_utf8_bom_is_dropped() -> None:
    assert await _lines(b"\xef\xbb\xbfa\nb\n", size=1) == [(1, "a"), (2, "b")]


async def test_blank_lines_keep_their_numbers() -> None:
    assert await _lines(b"a\n\nb\n") == [(1, "a"), (2, ""), (3, "b")]


async def test_invalid_utf8_marks_only_that_line_bad() -> None:
    bad = {}
    async for batch in split_lines(_chunks(b"ok\n\xff\xfe\nok2\n", 1 << 20)):
        bad.update({batch.first + index: reason for index, reason in batch.bad.items()})
    assert list(bad) == [2]


async def test_an_endless_line_is_one_bad_line_and_reading_goes_on() -> None:
    data = b"first\n" + b"x" * (MAX_LINE_BYTES + 2) + b"\nlast\n"
    batches = [b async for b in split_lines(_chunks(data, 1 << 22))]
    lines = [
        (n, line[:5], b.bad.get(n - b.first))
        for b in batches
        for n, line in enumerate(b.lines, b.first)
    ]
    assert lines == [
        (1, "first", None),
        (2, "xxxxx", f"longer than {MAX_LINE_BYTES:,} bytes; skipped"),
        (3, "last", None),
    ]


async def test_gunzip_streams_concatenated_members() -> None:
    assert await _gunzip([gzip.compress(b"one\n") + gzip.compress(b"two\n")]) == b"one\ntwo\n"


async def test_gunzip_handles_input_split_into_tiny_chunks() -> None:
    data = gzip.compress(b"line\n" * 1000)
    parts = [data[i : i + 3] for i in range(0, len(data), 3)]
    assert await _gunzip(parts) == b"line\n" * 1000


async def test_gunzip_output_is_bounded_per_piece() -> None:
    pieces = [
        len(piece)
        async for piece in gunzip(_from([gzip.compress(b"0" * 100_000)]), name="t", max_out=4096)
    ]
    assert max(pieces) <= 4096
    assert sum(pieces) == 100_000


async def test_gunzip_reports_truncated_data() -> None:
    with pytest.raises(StreamBroken, match="truncated"):
        await _gunzip([gzip.compress(b"a\n" * 1000)[:-12]])


async def test_gunzip_reports_corrupt_data() -> None:
    with pytest.raises(StreamBroken, match="not valid gzip"):
        await _gunzip([b"\x1f\x8b\x08\x00garbage-garbage-garbage"])

"""Routing decisions, with in-process fakes for the network behind the same methods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from batchrek.clock import FakeClock
from batchrek.errors import ItemError
from batchrek.limits import limits_for
from batchrek.models import HttpUrl, Item, LocalPath, S3Ref
from batchrek.prepare import ImagePool, Preparer, Stager, content_key
from batchrek.testing import corpus

LABELS = limits_for("detect_labels")
JPEG = corpus.photo(320, 240)


class FakeRegions:
    def __init__(self, regions: dict[str, str]) -> None:
        self.regions = regions

    async def region_of(self, bucket: str) -> str:
        return self.regions[bucket]


class FakeFetcher:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = 0

    def lease(self) -> None:
        return None

    async def local(self, src: Any, lease: Any = None) -> bytes:
        self.reads += 1
        return self.data

    async def s3(
        self, src: Any, *, region: str, known_size: int | None, lease: Any = None
    ) -> bytes:
        self.reads += 1
        return self.data

    async def http(self, src: Any, lease: Any = None) -> bytes:
        self.reads += 1
        return self.data


@pytest.fixture
def pool() -> Iterator[ImagePool]:
    p = ImagePool(processes=False)
    yield p
    p.close()


def _preparer(pool: ImagePool, data: bytes = JPEG, oversize: Any = "resize") -> Preparer:
    return Preparer(
        region="us-east-1",
        fetcher=FakeFetcher(data),  # type: ignore[arg-type]
        regions=FakeRegions({"home": "us-east-1", "away": "eu-west-1"}),  # type: ignore[arg-type]
        pool=pool,
        oversize=oversize,
    )


@pytest.mark.anyio
async def test_same_region_jpeg_goes_as_s3object_without_a_read(pool: ImagePool) -> None:
    p = _preparer(pool)
    inp = await p.for_item(Item("i", S3Ref("home", "a.jpg", "v2"))).input_for(LABELS)
    assert inp.image == {"S3Object": {"Bucket": "home", "Name": "a.jpg", "Version": "v2"}}
    assert p.fetcher.reads == 0  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_other_region_is_downloaded_and_sent_as_bytes(pool: ImagePool) -> None:
    inp = await _preparer(pool).for_item(Item("i", S3Ref("away", "a.jpg"))).input_for(LABELS)
    assert (inp.mode, inp.image["Bytes"]) == ("bytes", JPEG)


@pytest.mark.anyio
async def test_known_size_over_15mb_is_downloaded(pool: ImagePool) -> None:
    item = Item("i", S3Ref("home", "a.jpg"), size=16 * 1024 * 1024)
    assert (await _preparer(pool).for_item(item).input_for(LABELS)).mode == "bytes"


@pytest.mark.anyio
async def test_webp_in_s3_is_downloaded_and_transcoded(pool: ImagePool) -> None:
    p = _preparer(pool, corpus.photo(320, 240, fmt="WEBP"))
    inp = await p.for_item(Item("i", S3Ref("home", "a.webp"))).input_for(LABELS)
    assert (inp.mode, inp.transcoded, inp.sent.format if inp.sent else None) == (
        "bytes",
        True,
        "JPEG",
    )


@pytest.mark.anyio
async def test_fitting_local_jpeg_is_sent_byte_for_byte(pool: ImagePool) -> None:
    inp = await _preparer(pool).for_item(Item("i", LocalPath("/x.jpg"))).input_for(LABELS)
    assert (inp.image["Bytes"], inp.transcoded) == (JPEG, False)


@pytest.mark.anyio
async def test_bytes_fallback_after_a_refused_s3object(pool: ImagePool) -> None:
    prep = _preparer(pool).for_item(Item("i", S3Ref("home", "a.jpg")))
    assert (await prep.input_for(LABELS)).mode == "s3object"
    assert (await prep.bytes_for(LABELS)).mode == "bytes"


@pytest.mark.anyio
async def test_two_operations_read_the_image_once(pool: ImagePool) -> None:
    p = _preparer(pool)
    prep = p.for_item(Item("i", HttpUrl("https://x/a.jpg")))
    await prep.input_for(LABELS)
    await prep.input_for(limits_for("detect_protective_equipment"))
    assert p.fetcher.reads == 1  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_oversize_fail_refuses_instead_of_transcoding(pool: ImagePool) -> None:
    p = _preparer(pool, corpus.photo(300, 200, fmt="WEBP"), oversize="fail")
    with pytest.raises(ItemError, match="UnsupportedFormat"):
        await p.for_item(Item("i", LocalPath("/x.webp"))).input_for(LABELS)


class SlowFetcher(FakeFetcher):
    """A read that takes ``seconds`` on ``clock``."""

    def __init__(self, data: bytes, clock: FakeClock, seconds: float) -> None:
        super().__init__(data)
        self.clock, self.seconds = clock, seconds

    async def local(self, src: Any, lease: Any = None) -> bytes:
        self.clock.advance(self.seconds)
        return await super().local(src)


@pytest.mark.anyio
async def test_prepare_time_is_read_from_the_clock(pool: ImagePool) -> None:
    clock = FakeClock(100.0)
    p = Preparer(
        region="us-east-1",
        fetcher=SlowFetcher(JPEG, clock, 0.25),  # type: ignore[arg-type]
        regions=FakeRegions({}),  # type: ignore[arg-type]
        pool=pool,
        clock=clock,
    )
    inp = await p.for_item(Item("i", LocalPath("/x.jpg"))).input_for(LABELS)
    assert inp.prepare_s == 0.25


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://b", "b", ""),
        ("s3://b/", "b", ""),
        ("s3://b/p", "b", "p/"),
        ("s3://b/p/q/", "b", "p/q/"),
    ],
)
def test_stager_reads_bucket_and_prefix(uri: str, bucket: str, prefix: str) -> None:
    stager = Stager(None, uri)
    assert (stager.bucket, stager.prefix) == (bucket, prefix)


def test_stager_refuses_a_uri_without_a_bucket() -> None:
    with pytest.raises(ValueError, match="bucket"):
        Stager(None, "s3:///p/")


def test_content_key_prefers_etag_and_size() -> None:
    a = Item("a", S3Ref("b", "one.jpg"), size=10, etag='"abc"')
    b = Item("b", S3Ref("b", "two.jpg"), size=10, etag="abc")
    assert content_key(a) == content_key(b)


def test_content_key_normalises_local_paths() -> None:
    assert content_key(Item("a", LocalPath("/d/./x.jpg"))) == content_key(
        Item("b", LocalPath("/d/x.jpg"))
    )


@pytest.mark.anyio
async def test_an_unreadable_exif_block_is_a_warning_on_the_input(pool: ImagePool) -> None:
    from batchrek.testing import oddfiles

    p = _preparer(pool, oddfiles.malformed_exif_jpeg("not-tiff"))
    inp = await p.for_item(Item("i", LocalPath("/x.jpg"))).input_for(LABELS)
    assert (inp.mode, inp.transcoded) == ("bytes", False)
    assert [w.code for w in inp.warnings] == ["ExifUnreadable"]

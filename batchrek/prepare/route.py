"""The per-image decision: inline Bytes, an S3Object reference, or a transcode.

    local file ──────────────────────┐
    https URL ──download (capped)────┤
    S3, other region ──download──────┼─▶ inspect ─ fits? ─▶ Bytes, byte for byte
    S3, same region, not JPEG/PNG    │             └ no ──▶ --oversize resize: transcode ─▶ Bytes
        or over 15 MB ───────────────┘                      stage: upload ─▶ S3Object
                                                            fail: ImageTooLarge
    S3, same region, JPEG/PNG name, ≤15 MB ─▶ S3Object (never downloaded)

Only the key's extension and the manifest's size are known before a call, so the
S3Object route is optimistic: when the service answers InvalidImageFormatException or
ImageTooLargeException for it, the pipeline asks ``ItemPrep.bytes_for`` and retries
the image downloaded and transcoded (a refused call is not billed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from typing import Any, Final

from batchrek.clock import Clock, SystemClock
from batchrek.errors import ItemError
from batchrek.limits import ImageLimits
from batchrek.models import HttpUrl, ImageInput, Item, LocalPath, Notice, Oversize, S3Ref
from batchrek.prepare.budget import Lease
from batchrek.prepare.fetch import Fetcher
from batchrek.prepare.imaging import ImageHeader, accepted_formats, extensions_for, fits
from batchrek.prepare.pool import ImagePool
from batchrek.prepare.regions import BucketRegions
from batchrek.s3uri import parse_s3_prefix

__all__ = ["ItemPrep", "Preparer", "Stager", "content_key"]

log = logging.getLogger("batchrek.prepare")

_SERVICE_FORMATS = (".jpg", ".jpeg", ".png")
# Keys with these extensions are some other image format: downloaded and transcoded,
# never sent as an S3Object (the service would refuse it: a wasted round trip).
_OTHER_IMAGE_EXT: Final = tuple(
    f".{ext}"
    for ext in sorted(
        extensions_for(accepted_formats()) - extensions_for(frozenset({"JPEG", "PNG"}))
    )
)


def content_key(item: Item) -> str:
    """What makes two manifest entries the same image (for in-run dedupe).

    Same local file, or the same S3 object by key+version, or by ETag+size when the
    manifest knows both (the same content under two keys is one image to bill).
    """
    src = item.source
    if isinstance(src, LocalPath):
        return "file:" + os.path.normpath(os.path.abspath(src.path))
    if isinstance(src, S3Ref):
        if item.etag and item.size is not None:
            return f"etag:{item.etag.strip(chr(34))}:{item.size}"
        return f"s3:{src.bucket}/{src.key}?{src.version or ''}"
    return "url:" + src.url


class Stager:
    """Uploads images the service can't take inline to a bucket in its region.

    ``uri`` is ``s3://bucket/prefix``; a malformed one raises ``S3UriError``.
    """

    def __init__(self, s3: Any, uri: str) -> None:
        self._s3 = s3
        self.bucket, self.prefix = parse_s3_prefix(uri)

    async def put(self, data: bytes, ext: str) -> dict[str, str]:
        key = f"{self.prefix}{hashlib.sha256(data).hexdigest()}{ext}"
        await self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return {"Bucket": self.bucket, "Name": key}

    async def delete(self, obj: dict[str, str]) -> None:
        await self._s3.delete_object(Bucket=obj["Bucket"], Key=obj["Name"])


class Preparer:
    """Shared, per-run routing state: clients, the bucket-region cache, the image pool.

    ``clock`` times each item's preparation (``ImageInput.prepare_s``).
    """

    def __init__(
        self,
        *,
        region: str,
        fetcher: Fetcher,
        regions: BucketRegions,
        pool: ImagePool,
        oversize: Oversize = "resize",
        stager: Stager | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.region = region
        self.fetcher = fetcher
        self.regions = regions
        self.pool = pool
        self.oversize = oversize
        self.stager = stager
        self.clock = clock or SystemClock()

    def for_item(self, item: Item) -> ItemPrep:
        return ItemPrep(self, item)


class ItemPrep:
    """One item's inputs, made at most once per set of limits and read at most once."""

    def __init__(self, preparer: Preparer, item: Item) -> None:
        self._p = preparer
        self.item = item
        self._data: bytes | None = None
        self._lease: Lease | None = None
        self._inputs: dict[tuple[ImageLimits, bool], ImageInput] = {}
        self._staged: list[dict[str, str]] = []

    async def input_for(self, limits: ImageLimits) -> ImageInput:
        return await self._cached(limits, force_bytes=False)

    async def bytes_for(self, limits: ImageLimits) -> ImageInput:
        """The downloaded route, after the service refused the S3Object."""
        return await self._cached(limits, force_bytes=True)

    async def source_bytes(self) -> bytes:
        """The image as stored, read once and kept for the calls (the ledger hashes it)."""
        return await self._read()

    async def plan(self, limits: ImageLimits) -> str:
        """The route a real run would take, without transcoding or downloading
        anything that is not local (for --dry-run)."""
        src = self.item.source
        if isinstance(src, S3Ref):
            region = await self._p.regions.region_of(src.bucket)
            if region == self._p.region and self._s3_object_fits(src, limits):
                return "s3object"
            return "bytes (download)"
        if isinstance(src, HttpUrl):
            return "bytes (download)"
        header = await self._p.pool.inspect(await self._read())
        if fits(header, limits):
            return "bytes"
        if self._p.oversize == "fail":
            return "error (oversize)"
        return "s3object (staged)" if self._p.oversize == "stage" else "bytes (transcode)"

    @property
    def needs_cleanup(self) -> bool:
        """Whether ``cleanup`` has a staged copy to delete."""
        return bool(self._staged)

    async def cleanup(self) -> None:
        """Delete what was staged for this item; its calls are done."""
        stager = self._p.stager
        while self._staged and stager is not None:
            await stager.delete(self._staged.pop())
        self.release()

    def release(self) -> None:
        """Drop the bytes held for this item, and give back their share of the budget."""
        self._data = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    async def _cached(self, limits: ImageLimits, *, force_bytes: bool) -> ImageInput:
        key = (limits, force_bytes)
        if key not in self._inputs:
            clock = self._p.clock
            started = clock.monotonic()
            made = await self._route(limits, force_bytes=force_bytes)
            self._inputs[key] = dataclasses.replace(made, prepare_s=clock.monotonic() - started)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "route %s: %s%s%s",
                    self.item.id,
                    made.mode,
                    " (transcoded)" if made.transcoded else "",
                    " (after the service refused the S3Object)" if force_bytes else "",
                )
        return self._inputs[key]

    async def _route(self, limits: ImageLimits, *, force_bytes: bool) -> ImageInput:
        src = self.item.source
        if isinstance(src, S3Ref) and not force_bytes:
            region = await self._p.regions.region_of(src.bucket)
            if region == self._p.region and self._s3_object_fits(src, limits):
                image: dict[str, Any] = {"Bucket": src.bucket, "Name": src.key}
                if src.version:
                    image["Version"] = src.version
                return ImageInput(image={"S3Object": image}, mode="s3object")
        return await self._from_bytes(await self._read(), limits)

    def _s3_object_fits(self, src: S3Ref, limits: ImageLimits) -> bool:
        if self.item.size is not None and self.item.size > limits.s3_object_cap:
            return False
        return not src.key.lower().endswith(_OTHER_IMAGE_EXT)

    async def _read(self) -> bytes:
        if self._data is None:
            src = self.item.source
            f = self._p.fetcher
            if self._lease is None:
                self._lease = f.lease()
            lease = self._lease
            if isinstance(src, LocalPath):
                self._data = await f.local(src, lease)
            elif isinstance(src, HttpUrl):
                self._data = await f.http(src, lease)
            else:
                region = await self._p.regions.region_of(src.bucket)
                self._data = await f.s3(src, region=region, known_size=self.item.size, lease=lease)
        return self._data

    async def _from_bytes(self, data: bytes, limits: ImageLimits) -> ImageInput:
        pool = self._p.pool
        header = await pool.inspect(data)
        made = await self._made_from(data, header, limits)
        if header.exif_error is None:
            return made
        notice = Notice(
            "ExifUnreadable",
            f"the EXIF block cannot be read ({header.exif_error}); orientation 1 was assumed",
        )
        return dataclasses.replace(made, warnings=(*made.warnings, notice))

    async def _made_from(self, data: bytes, header: ImageHeader, limits: ImageLimits) -> ImageInput:
        pool = self._p.pool
        stats = header.stats()
        if fits(header, limits):
            return ImageInput(image={"Bytes": data}, mode="bytes", original=stats, sent=stats)
        oversize = self._p.oversize
        if oversize == "fail":
            if header.format not in ("JPEG", "PNG"):
                raise ItemError(
                    "UnsupportedFormat",
                    f"{header.format} is not JPEG or PNG and --oversize is fail",
                )
            raise ItemError(
                "ImageTooLarge",
                f"{stats.bytes:,} bytes, {stats.width}x{stats.height} px is over the "
                f"operation's limits ({limits.bytes_cap:,} bytes, {limits.max_side} px a side) "
                "and --oversize is fail",
            )
        if oversize == "stage" and self._p.stager is not None:
            return await self._staged_input(data, header, limits)
        done = await pool.transcode(data, header, limits)
        return ImageInput(
            image={"Bytes": done.data},
            mode="bytes",
            original=done.original,
            sent=done.sent,
            transcoded=True,
        )

    async def _staged_input(
        self, data: bytes, header: ImageHeader, limits: ImageLimits
    ) -> ImageInput:
        stager = self._p.stager
        assert stager is not None
        stats = header.stats()
        in_s3_limits = (
            header.format in ("JPEG", "PNG")
            and stats.bytes <= limits.s3_object_cap
            and max(header.width, header.height) <= limits.max_side
        )
        if in_s3_limits:
            body, sent, transcoded = data, stats, False
            ext = ".png" if header.format == "PNG" else ".jpg"
        else:
            done = await self._p.pool.transcode(data, header, limits, cap=limits.s3_object_cap)
            body, sent, transcoded = done.data, done.sent, True
            ext = ".png" if done.sent.format == "PNG" else ".jpg"
        obj = await stager.put(body, ext)
        self._staged.append(obj)
        return ImageInput(
            image={"S3Object": obj},
            mode="s3object",
            original=stats,
            sent=sent,
            transcoded=transcoded,
        )

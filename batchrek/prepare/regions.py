"""Which region each bucket lives in, looked up once per bucket and cached.

Rekognition refuses an S3Object whose bucket is in another region (with the same
InvalidS3ObjectException as a missing key), so routing must know the bucket's region
before it chooses S3Object. HeadBucket answers with ``x-amz-bucket-region`` even when
it answers 403, so a bucket we may read objects from but not list still resolves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from batchrek.errors import ItemError

__all__ = ["BucketRegions"]


def _region_header(response: Mapping[str, Any]) -> str | None:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region")
    return str(region) if region else None


class BucketRegions:
    """A per-run cache; concurrent lookups of one bucket make a single request."""

    def __init__(
        self, s3: Any, *, default_region: str, pinned: Mapping[str, str] | None = None
    ) -> None:
        self._s3 = s3
        self._default = default_region
        self._known: dict[str, str] = dict(pinned or {})
        self._pending: dict[str, anyio.Event] = {}
        self._failed: dict[str, ItemError] = {}
        self.lookups = 0

    async def region_of(self, bucket: str) -> str:
        while True:
            if bucket in self._known:
                return self._known[bucket]
            if bucket in self._failed:
                raise self._failed[bucket]
            pending = self._pending.get(bucket)
            if pending is None:
                break
            await pending.wait()
        event = self._pending[bucket] = anyio.Event()
        try:
            region = await self._lookup(bucket)
            self._known[bucket] = region
            return region
        finally:
            del self._pending[bucket]
            event.set()

    async def _lookup(self, bucket: str) -> str:
        self.lookups += 1
        try:
            response = await self._s3.head_bucket(Bucket=bucket)
        except Exception as exc:  # botocore ClientError: read only the transport header
            error_response = getattr(exc, "response", None)
            region = _region_header(error_response) if isinstance(error_response, dict) else None
            if region:
                return region
            status = (
                error_response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if isinstance(error_response, dict)
                else None
            )
            if status == 404:
                err = ItemError("NoSuchBucket", f"bucket {bucket!r} does not exist")
                self._failed[bucket] = err
                raise err from None
            raise
        region = _region_header(response)
        # S3-compatible stores may not send the header; they are single-region, so
        # the bucket is taken to be where Rekognition is.
        return region or self._default

    def __repr__(self) -> str:
        return f"BucketRegions(known={len(self._known)}, lookups={self.lookups})"

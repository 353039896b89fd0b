"""Read S3Object images as the service does: same-region buckets only.

One shared aiobotocore client serves every request. A bucket's region comes from
HeadBucket's ``x-amz-bucket-region`` header and is cached; a bucket in another
region, a missing bucket or key and a refused read all become the same
InvalidS3ObjectException, as they do on the real service.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from batchrek.emulator.apierrors import image_too_large, invalid_s3_object
from batchrek.emulator.validation import S3Location

__all__ = ["ObjectHead", "S3Access"]


@dataclass(frozen=True, slots=True)
class ObjectHead:
    size: int
    etag: str


class S3Access:
    """Wraps the client: ``async with S3Access(...)`` opens it once for the server's life."""

    def __init__(self, region: str, endpoint_url: str | None) -> None:
        self.region = region
        self._endpoint_url = endpoint_url
        self._regions: dict[str, str] = {}
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> S3Access:
        config = AioConfig(
            max_pool_connections=128,
            retries={"mode": "standard", "total_max_attempts": 2},
            s3={"addressing_style": "path"} if self._endpoint_url else None,
        )
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3", region_name=self.region, endpoint_url=self._endpoint_url, config=config
            )
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def forget(self) -> None:
        self._regions.clear()

    async def head(self, loc: S3Location, cap: int) -> ObjectHead:
        """Size and ETag of a same-region object; InvalidS3Object or ImageTooLarge if not usable."""
        if await self._bucket_region(loc.bucket) != self.region:
            raise invalid_s3_object()
        extra = {"VersionId": loc.version} if loc.version else {}
        try:
            head = await self._client.head_object(Bucket=loc.bucket, Key=loc.key, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise invalid_s3_object() from exc
        if head["ContentLength"] > cap:
            raise image_too_large("S3 object size exceeds the maximum size.")
        return ObjectHead(int(head["ContentLength"]), str(head.get("ETag", "")))

    async def get(self, loc: S3Location) -> bytes:
        extra = {"VersionId": loc.version} if loc.version else {}
        try:
            response = await self._client.get_object(Bucket=loc.bucket, Key=loc.key, **extra)
            async with response["Body"] as body:
                data: bytes = await body.read()
        except (ClientError, BotoCoreError) as exc:
            raise invalid_s3_object() from exc
        return data

    async def _bucket_region(self, bucket: str) -> str | None:
        found = self._regions.get(bucket)
        if found is not None:
            return found
        try:
            response = await self._client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            response = exc.response  # a 301 from another region still names it
        except BotoCoreError:
            return None
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        region = headers.get("x-amz-bucket-region")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if region and status in (200, 301, 403):
            self._regions[bucket] = region
        return region if isinstance(region, str) else None

    def __repr__(self) -> str:
        return f"S3Access(region={self.region!r}, buckets_known={len(self._regions)})"

"""Upload what a killed (or stalled) run left in the spool, before anything else.

See ``output.spool`` for why the spool exists. For each leftover spool file of this
output and shard: when its part object exists, the part was completed before the
kill and the file is only deleted; otherwise the file is uploaded as that part
object (streamed: one PutObject, or a multipart upload in ``PART_BYTES`` parts when
bigger) and then deleted. A torn last line is uploaded as it is: resume, which reads
the prefix next, cuts it as it would in any part.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, BinaryIO

import anyio

from batchrek.output.s3parts import PART_BYTES, S3Client
from batchrek.output.spool import Spool
from batchrek.retrying import Retrier, once
from batchrek.s3uri import parse_s3_prefix

__all__ = ["recover_spool"]

log = logging.getLogger("batchrek")

_CONTENT_TYPE = "application/x-ndjson"


async def recover_spool(
    client: S3Client,
    uri: str,
    spool: Spool,
    *,
    retry: Retrier = once,
    endpoint: str | None = None,
) -> int:
    """Upload the shard's leftover spool files as their part objects (module doc);
    returns how many were uploaded. ``endpoint`` names the S3 endpoint's breaker."""
    bucket, prefix = parse_s3_prefix(uri)
    endpoint = endpoint or "s3"

    async def s3(method: Any, **kwargs: Any) -> Any:
        return await retry(
            partial(method, **kwargs),
            endpoint=f"s3 {endpoint}",
            name=f"the S3 endpoint {endpoint}",
        )

    uploaded = 0
    for name in await anyio.to_thread.run_sync(spool.leftovers):
        path, key = spool.path(name), prefix + name
        size = await anyio.to_thread.run_sync(os.path.getsize, path)
        if size and not await _exists(s3, client, bucket, key):
            await _upload(s3, client, bucket, key, path, size)
            uploaded += 1
            log.warning("uploaded %s from the spool (%d bytes a stopped run left)", key, size)
        await anyio.to_thread.run_sync(os.unlink, path)
    return uploaded


async def _exists(s3: Any, client: S3Client, bucket: str, key: str) -> bool:
    try:
        await s3(client.head_object, Bucket=bucket, Key=key)
    except Exception as exc:
        status = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {})
        if status.get("HTTPStatusCode") == 404:
            return False
        raise
    return True


async def _chunks(path: str, size: int) -> AsyncIterator[bytes]:
    fh = await anyio.to_thread.run_sync(_open, path)
    try:
        while chunk := await anyio.to_thread.run_sync(fh.read, size):
            yield chunk
    finally:
        fh.close()


async def _upload(s3: Any, client: S3Client, bucket: str, key: str, path: str, size: int) -> None:
    if size <= PART_BYTES:
        data = await anyio.to_thread.run_sync(_read, path)
        await s3(client.put_object, Bucket=bucket, Key=key, Body=data, ContentType=_CONTENT_TYPE)
        return
    created = await s3(
        client.create_multipart_upload, Bucket=bucket, Key=key, ContentType=_CONTENT_TYPE
    )
    upload_id = created["UploadId"]
    parts: list[dict[str, Any]] = []
    try:
        async for chunk in _chunks(path, PART_BYTES):
            number = len(parts) + 1
            sent = await s3(
                client.upload_part,
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=chunk,
            )
            parts.append({"PartNumber": number, "ETag": sent["ETag"]})
        await s3(
            client.complete_multipart_upload,
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            try:
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception as exc:  # the next resume aborts it anyway
                log.warning("could not abort the upload of %s: %s", key, exc)
        raise


def _open(path: str) -> BinaryIO:
    return open(path, "rb")  # closed by the caller, _chunks


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()

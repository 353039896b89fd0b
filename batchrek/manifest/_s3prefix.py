"""Every image under ``s3://bucket/prefix/``, streamed page by page from ListObjectsV2."""

from __future__ import annotations

from batchrek.errors import ManifestUnreadable
from batchrek.manifest._images import SKIP_EXTENSION, has_image_extension
from batchrek.manifest._lines import RecordBatches
from batchrek.manifest._options import ReadOptions
from batchrek.manifest._streams import S3ClientLike, StreamBroken, s3_listing
from batchrek.models import Item, ManifestProblem, S3Ref

__all__ = ["list_prefix"]


async def list_prefix(
    s3: S3ClientLike, bucket: str, prefix: str, options: ReadOptions | None = None
) -> RecordBatches:
    """Keys with an image extension, in S3's (lexicographic) order; ``line`` counts them.
    Other keys are skipped and counted (``options.on_skip``).

    A listing that fails on its first page is unreadable; one that fails later has
    already handed out items, so it ends with a problem record instead.
    """
    options = options or ReadOptions()
    extensions = options.extensions
    where = f"s3://{bucket}/{prefix}"
    count = 0
    pages = 0
    try:
        async for page in s3_listing(s3, bucket, prefix):
            pages += 1
            items: list[Item | ManifestProblem] = []
            others = 0
            for entry in page.get("Contents", ()):
                key: str = entry["Key"]
                if not has_image_extension(key, extensions):
                    others += 1
                else:
                    count += 1
                    etag = entry.get("ETag")
                    items.append(
                        Item(
                            f"s3://{bucket}/{key}",
                            S3Ref(bucket, key),
                            entry.get("Size"),
                            etag.strip('"') if etag else None,
                            None,
                            count,
                        )
                    )
            options.skipped(SKIP_EXTENSION, others)
            yield items
    except StreamBroken as exc:
        if pages == 0:
            raise ManifestUnreadable(
                f"cannot list {where}: {exc}; check the bucket name and that your "
                "credentials may s3:ListBucket it"
            ) from exc
        yield [
            ManifestProblem(
                line=count + 1, reason=f"listing {where} failed after {count} images: {exc}"
            )
        ]

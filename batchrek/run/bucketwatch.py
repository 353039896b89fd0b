"""InvalidS3ObjectException, said once per bucket.

The service answers InvalidS3ObjectException for one missing or unreadable key, and
also for every key of a bucket the role cannot read or that lives in another region
(REKOGNITION.md). Each answer stays one error record for its image, but when a
bucket's S3Object calls have all failed so, ``STREAK`` times with no success, the
run says it once, naming the bucket and the likely causes, in the log and the summary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["S3ObjectWatch"]

log = logging.getLogger("batchrek")

STREAK = 5
_MAX_BUCKETS = 1000  # counters kept at most (a manifest can name any number of buckets)


class S3ObjectWatch:
    def __init__(self, *, region: str, warn: Callable[[str], None], streak: int = STREAK) -> None:
        self.region = region
        self._warn = warn
        self._streak = streak
        self._failed: dict[str, int] = {}  # bucket -> InvalidS3Object answers, no success yet
        self._settled: set[str] = set()  # buckets that answered once, or were reported

    def observe(self, bucket: str, code: str | None) -> None:
        """One S3Object call's end: ``code`` is its error code, or None when ok."""
        if bucket in self._settled:
            return
        if code != "InvalidS3ObjectException":
            if code is None:  # the bucket is readable: its failures are per image
                self._failed.pop(bucket, None)
                if len(self._settled) < _MAX_BUCKETS:
                    self._settled.add(bucket)
            return
        if bucket not in self._failed and len(self._failed) + len(self._settled) >= _MAX_BUCKETS:
            return  # memory stays bounded; buckets past the cap are not watched
        failed = self._failed[bucket] = self._failed.get(bucket, 0) + 1
        if failed >= self._streak:
            self._settled.add(bucket)
            del self._failed[bucket]
            text = (
                f"every S3Object call for bucket {bucket} failed with "
                f"InvalidS3ObjectException ({failed} so far): the role may lack s3:GetObject "
                f"on it, or it is not in {self.region} (set [bucket_regions] or check the keys)"
            )
            log.warning("%s", text)
            self._warn(text)

    def __repr__(self) -> str:
        return f"S3ObjectWatch(pending={len(self._failed)}, settled={len(self._settled)})"

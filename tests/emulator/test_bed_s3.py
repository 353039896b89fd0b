from __future__ import annotations

from tests.conftest import S3Bed


def test_eu_bucket_reports_its_region(s3: S3Bed) -> None:
    head = s3.client().head_bucket(Bucket=s3.bucket_euw1)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-west-1"

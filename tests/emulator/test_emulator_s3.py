"""S3Object images: read from the test bed's S3, same-region buckets only."""

from __future__ import annotations

from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.limits import S3_OBJECT_CAP
from batchrek.testing import corpus
from tests.conftest import S3Bed, aio_rekognition_client
from tests.emulator.test_emulator_operations import corners

VERSIONED = "emu-versioned"
S3_MESSAGE = (
    "Unable to get object metadata from S3. Check object key, region and/or access permissions."
)


def _canvas(response: dict[str, Any]) -> str:
    (canvas,) = [x for x in response["Labels"] if x["Name"] == "Canvas"]
    name: str = canvas["Aliases"][0]["Name"]
    return name


@pytest.fixture(scope="module")
def versioned(s3: S3Bed) -> str:
    client = s3.client()
    client.create_bucket(Bucket=VERSIONED)
    client.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
    return VERSIONED


def test_s3object_is_analysed(s3: S3Bed, rekognition: Any) -> None:
    s3.put(s3.bucket_use1, "emu/photo.jpg", corpus.photo(640, 480))
    response = rekognition.detect_faces(
        Image={"S3Object": {"Bucket": s3.bucket_use1, "Name": "emu/photo.jpg"}}
    )
    box = corners(response["FaceDetails"][0]["BoundingBox"])
    assert box == pytest.approx(corpus.DEFAULT_BOX, abs=0.01)


@pytest.mark.anyio
async def test_aioboto3_s3object_is_analysed(s3: S3Bed, emu: EmulatorHandle) -> None:
    s3.put(s3.bucket_use1, "emu/aio.jpg", corpus.photo(320, 240))
    async with aio_rekognition_client(emu.endpoint_url) as client:
        response = await client.detect_labels(
            Image={"S3Object": {"Bucket": s3.bucket_use1, "Name": "emu/aio.jpg"}}
        )
    assert _canvas(response) == "320x240"


def test_s3object_is_accounted_by_uri(s3: S3Bed, emu: EmulatorHandle, rekognition: Any) -> None:
    s3.put(s3.bucket_use1, "emu/counted.jpg", corpus.photo())
    rekognition.detect_labels(
        Image={"S3Object": {"Bucket": s3.bucket_use1, "Name": "emu/counted.jpg"}}
    )
    assert emu.analyses("DetectLabels") == {f"s3://{s3.bucket_use1}/emu/counted.jpg": 1}


def test_bucket_in_another_region_is_an_invalid_s3_object(s3: S3Bed, rekognition: Any) -> None:
    s3.put(s3.bucket_euw1, "emu/photo.jpg", corpus.photo())
    with pytest.raises(rekognition.exceptions.InvalidS3ObjectException) as caught:
        rekognition.detect_labels(
            Image={"S3Object": {"Bucket": s3.bucket_euw1, "Name": "emu/photo.jpg"}}
        )
    assert caught.value.response["Error"]["Message"] == S3_MESSAGE


def test_missing_key_is_an_invalid_s3_object(s3: S3Bed, rekognition: Any) -> None:
    with pytest.raises(rekognition.exceptions.InvalidS3ObjectException):
        rekognition.detect_labels(
            Image={"S3Object": {"Bucket": s3.bucket_use1, "Name": "emu/no-such-key.jpg"}}
        )


def test_missing_bucket_is_an_invalid_s3_object(rekognition: Any) -> None:
    with pytest.raises(rekognition.exceptions.InvalidS3ObjectException):
        rekognition.detect_labels(Image={"S3Object": {"Bucket": "no-such-bucket", "Name": "k"}})


def test_object_over_15_mib_is_too_large(s3: S3Bed, rekognition: Any) -> None:
    s3.put(s3.bucket_use1, "emu/huge.jpg", corpus.photo() + b"\0" * S3_OBJECT_CAP)
    with pytest.raises(rekognition.exceptions.ImageTooLargeException):
        rekognition.detect_labels(
            Image={"S3Object": {"Bucket": s3.bucket_use1, "Name": "emu/huge.jpg"}}
        )


def test_s3_text_file_is_an_invalid_format(s3: S3Bed, rekognition: Any) -> None:
    s3.put(s3.bucket_use1, "emu/text.jpg", corpus.text_named_jpg())
    with pytest.raises(rekognition.exceptions.InvalidImageFormatException):
        rekognition.detect_labels(
            Image={"S3Object": {"Bucket": s3.bucket_use1, "Name": "emu/text.jpg"}}
        )


def test_version_is_honoured(s3: S3Bed, versioned: str, rekognition: Any) -> None:
    client = s3.client()
    first = client.put_object(Bucket=versioned, Key="v.jpg", Body=corpus.photo(300, 200))
    client.put_object(Bucket=versioned, Key="v.jpg", Body=corpus.photo(500, 400))
    image = {"S3Object": {"Bucket": versioned, "Name": "v.jpg", "Version": first["VersionId"]}}
    assert _canvas(rekognition.detect_labels(Image=image)) == "300x200"


def test_overwritten_object_is_analysed_again(s3: S3Bed, rekognition: Any) -> None:
    image = {"S3Object": {"Bucket": s3.bucket_use1, "Name": "emu/changing.jpg"}}
    s3.put(s3.bucket_use1, "emu/changing.jpg", corpus.photo(300, 200))
    rekognition.detect_labels(Image=image)
    s3.put(s3.bucket_use1, "emu/changing.jpg", corpus.photo(500, 400))
    assert _canvas(rekognition.detect_labels(Image=image)) == "500x400"

"""The emulator refuses images exactly where the service does, with its error codes."""

from __future__ import annotations

import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.limits import BYTES_CAP, BYTES_CAP_SMALL
from batchrek.testing import corpus
from tests.conftest import aio_rekognition_client, rekognition_client

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/bed/version/bed.1/1700000000000"


def _padded_jpeg(size: int) -> bytes:
    """A valid JPEG of exactly ``size`` bytes (padding after the end marker)."""
    data = corpus.photo(320, 240)
    return data + b"\0" * (size - len(data))


BAD_IMAGES = {
    "truncated": (corpus.truncated(corpus.photo(640, 480)), "InvalidImageFormatException"),
    "text named .jpg": (corpus.text_named_jpg(), "InvalidImageFormatException"),
    "webp": (corpus.photo(200, 200, fmt="WEBP"), "InvalidImageFormatException"),
    "gif": (corpus.animated_gif(), "InvalidImageFormatException"),
    "tiny 40x40": (corpus.photo(40, 40), "InvalidParameterException"),
    "bomb png": (corpus.bomb_png(), "ImageTooLargeException"),
    "over the bytes cap": (_padded_jpeg(BYTES_CAP + 1), "ImageTooLargeException"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_boto3_gets_the_modelled_exception(emu: EmulatorHandle, case: str) -> None:
    data, code = BAD_IMAGES[case]
    client = rekognition_client(emu.endpoint_url)
    with pytest.raises(getattr(client.exceptions, code)):
        client.detect_labels(Image={"Bytes": data})


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
async def test_aioboto3_gets_the_modelled_exception(emu: EmulatorHandle, case: str) -> None:
    data, code = BAD_IMAGES[case]
    async with aio_rekognition_client(emu.endpoint_url) as client:
        with pytest.raises(getattr(client.exceptions, code)):
            await client.detect_labels(Image={"Bytes": data})


def test_exactly_the_bytes_cap_is_accepted(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url)
    response = client.detect_labels(Image={"Bytes": _padded_jpeg(BYTES_CAP)})
    assert response["Labels"]


def test_zero_bytes_is_an_invalid_parameter(emu: EmulatorHandle) -> None:
    # botocore refuses an empty blob itself unless told not to validate.
    client = rekognition_client(emu.endpoint_url, parameter_validation=False)
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.detect_labels(Image={"Bytes": b""})


def test_both_bytes_and_s3object_is_invalid(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url)
    image = {"Bytes": corpus.photo(), "S3Object": {"Bucket": "bed-use1", "Name": "k"}}
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.detect_labels(Image=image)


def test_neither_bytes_nor_s3object_is_invalid(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url, parameter_validation=False)
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.detect_labels(Image={})


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("detect_custom_labels", {}),
        ("index_faces", {}),
        ("search_faces_by_image", {}),
    ],
)
def test_missing_required_parameter_is_invalid(
    emu: EmulatorHandle, method: str, kwargs: dict[str, str]
) -> None:
    client = rekognition_client(emu.endpoint_url, parameter_validation=False)
    with pytest.raises(client.exceptions.InvalidParameterException):
        getattr(client, method)(Image={"Bytes": corpus.photo()}, **kwargs)


def test_custom_labels_cap_is_four_megabytes(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url)
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_custom_labels(
            Image={"Bytes": _padded_jpeg(BYTES_CAP_SMALL + 1)}, ProjectVersionArn=ARN
        )


def test_ppe_cap_is_four_megabytes(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url)
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_protective_equipment(Image={"Bytes": _padded_jpeg(BYTES_CAP_SMALL + 1)})


def test_ppe_refuses_sides_over_4096(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url)
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_protective_equipment(Image={"Bytes": corpus.photo(4097, 100, quality=30)})


def test_ppe_accepts_64_pixel_sides(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url)
    response = client.detect_protective_equipment(Image={"Bytes": corpus.photo(64, 64)})
    assert "Persons" in response


def test_labels_refuse_64_pixel_sides(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url)
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.detect_labels(Image={"Bytes": corpus.photo(64, 64)})


def test_errors_are_not_billed(emu: EmulatorHandle) -> None:
    client = rekognition_client(emu.endpoint_url)
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        client.detect_labels(Image={"Bytes": corpus.text_named_jpg()})
    assert emu.stats()["analyses"] == {}

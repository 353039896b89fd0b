"""Check requests the way the service does, before any pixel is decoded.

The image's container format comes from its magic bytes and its size from its
header alone (a hand-read PNG IHDR or JPEG SOF), so a file declaring 40000x40000
pixels is refused in microseconds and never reaches a decoder. The side limits are
symmetric, so stored dimensions decide them whatever the EXIF orientation.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import Any, Literal

from batchrek.emulator.apierrors import (
    image_too_large,
    invalid_format,
    invalid_parameter,
)
from batchrek.limits import ImageLimits

__all__ = [
    "Header",
    "S3Location",
    "check_header",
    "optional_number",
    "parse_image",
    "read_header",
    "require_string",
]

ImageFormat = Literal["JPEG", "PNG"]
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers: every SOFn except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


@dataclass(frozen=True, slots=True)
class S3Location:
    """An ``S3Object`` parameter; ``uri`` is its accounting key."""

    bucket: str
    key: str
    version: str | None = None

    @property
    def uri(self) -> str:
        uri = f"s3://{self.bucket}/{self.key}"
        return f"{uri}?versionId={self.version}" if self.version else uri


@dataclass(frozen=True, slots=True)
class Header:
    """What the header says: container format and stored pixel size."""

    format: ImageFormat
    width: int
    height: int


def require_string(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_parameter(f"Missing required parameter: {name}")
    return value


def optional_number(
    params: dict[str, Any], name: str, default: float, low: float, high: float
) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid_parameter(f"{name} must be a number between {low} and {high}")
    return float(value)


def parse_image(param: Any, bytes_cap: int) -> bytes | S3Location:
    """The ``Image`` parameter as raw bytes or an S3 location, size-checked."""
    if not isinstance(param, dict):
        raise invalid_parameter("Missing required parameter: Image")
    has_bytes, has_s3 = "Bytes" in param, "S3Object" in param
    if has_bytes == has_s3:
        raise invalid_parameter("Image must have exactly one of Bytes or S3Object")
    if has_bytes:
        return _decode_bytes(param["Bytes"], bytes_cap)
    s3 = param["S3Object"]
    if not isinstance(s3, dict):
        raise invalid_parameter("S3Object must be a structure")
    bucket, key, version = s3.get("Bucket"), s3.get("Name"), s3.get("Version")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise invalid_parameter("S3Object needs Bucket and Name")
    if version is not None and not isinstance(version, str):
        raise invalid_parameter("S3Object.Version must be a string")
    return S3Location(bucket, key, version or None)


def _decode_bytes(blob: Any, bytes_cap: int) -> bytes:
    if not isinstance(blob, str):
        raise invalid_parameter("Image.Bytes must be base64 text")
    # base64 grows 4/3: reject clearly oversized payloads before decoding them.
    if len(blob) > (bytes_cap + 2) // 3 * 4:
        raise image_too_large()
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid_parameter("Image.Bytes is not valid base64") from exc
    if not data:
        raise invalid_parameter("Image.Bytes must not be empty")
    if len(data) > bytes_cap:
        raise image_too_large()
    return data


def read_header(data: bytes) -> Header:
    """Format and stored size from the first bytes; never decodes pixels."""
    if data.startswith(_PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise invalid_format()
        width, height = struct.unpack(">II", data[16:24])
        return _header("PNG", width, height)
    if data.startswith(b"\xff\xd8\xff"):
        width, height = _jpeg_size(data)
        return _header("JPEG", width, height)
    raise invalid_format()


def _header(fmt: ImageFormat, width: int, height: int) -> Header:
    if width <= 0 or height <= 0:
        raise invalid_format()
    return Header(fmt, width, height)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise invalid_format()
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF:
            if pos + 9 > end:
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise invalid_format()


def check_header(header: Header, limits: ImageLimits) -> None:
    """The operation's side limits (symmetric, so orientation cannot matter)."""
    if max(header.width, header.height) > limits.max_side:
        raise image_too_large(
            f"Image dimensions exceed the maximum of {limits.max_side} pixels per side."
        )
    if min(header.width, header.height) < limits.min_side:
        raise invalid_parameter(
            f"Image dimensions must be at least {limits.min_side} pixels per side."
        )

"""Service errors as the real API sends them: an HTTP status, a code, a message.

Every module of the emulator raises ``ServiceError``; only the server turns it into
an HTTP response, so the wire format lives in exactly one place.
"""

from __future__ import annotations

__all__ = [
    "S3_OBJECT_MESSAGE",
    "ServiceError",
    "image_too_large",
    "invalid_format",
    "invalid_parameter",
    "invalid_s3_object",
]

S3_OBJECT_MESSAGE = (
    "Unable to get object metadata from S3. Check object key, region and/or access permissions."
)


class ServiceError(Exception):
    """One error response: ``code`` becomes ``__type``, botocore's exception name."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def invalid_parameter(message: str = "Request has invalid parameters") -> ServiceError:
    return ServiceError("InvalidParameterException", message)


def image_too_large(message: str = "Image size is too large.") -> ServiceError:
    return ServiceError("ImageTooLargeException", message)


def invalid_format(message: str = "Request has invalid image format") -> ServiceError:
    return ServiceError("InvalidImageFormatException", message)


def invalid_s3_object() -> ServiceError:
    return ServiceError("InvalidS3ObjectException", S3_OBJECT_MESSAGE)

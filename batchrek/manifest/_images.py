"""Which names look like images when a listing, not a manifest, says what to process."""

from __future__ import annotations

from typing import Final

__all__ = ["IMAGE_EXTENSIONS", "has_image_extension"]

IMAGE_EXTENSIONS: Final = frozenset(
    {"jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp", "heic", "heif", "avif"}
)


def has_image_extension(name: str) -> bool:
    """By extension, case-insensitive; a dot inside a folder name does not count."""
    dot = name.rfind(".")
    return dot > name.rfind("/") and name[dot + 1 :].lower() in IMAGE_EXTENSIONS

"""Which names look like images when a listing, not a manifest, says what to process,
and the reasons a listing skips an entry (counted in the summary and metrics)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "IMAGE_EXTENSIONS",
    "SKIP_BROKEN_LINK",
    "SKIP_DELETE_MARKER",
    "SKIP_EXTENSION",
    "SKIP_HIDDEN",
    "SKIP_NONCURRENT",
    "SKIP_OUTSIDE_ROOT",
    "SKIP_SPECIAL",
    "SKIP_UNREADABLE",
    "has_image_extension",
]

# The default when no run says otherwise; a run passes the extensions of the formats
# it accepts (``prepare.extensions_for``: every extension Pillow registers for them).
IMAGE_EXTENSIONS: Final = frozenset(
    {
        "jpg", "jpeg", "jpe", "jfif", "mpo", "png", "apng", "webp", "gif", "tif", "tiff",
        "bmp", "dib", "heic", "heics", "heif", "heifs", "hif", "avif", "avifs", "jp2", "j2k",
        "jpx", "jpf", "psd", "tga", "ppm", "pgm", "pbm", "pnm", "sgi", "dds", "ico", "qoi",
        "pcx",
    }
)  # fmt: skip

# Why a listing skipped an entry: the keys of the summary's "listing_skipped".
SKIP_HIDDEN: Final = "hidden"
SKIP_EXTENSION: Final = "not_an_image_extension"
SKIP_SPECIAL: Final = "not_a_regular_file"
SKIP_OUTSIDE_ROOT: Final = "symlink_outside_root"
SKIP_BROKEN_LINK: Final = "broken_symlink"
SKIP_UNREADABLE: Final = "unreadable_entry"
SKIP_DELETE_MARKER: Final = "delete_marker"
SKIP_NONCURRENT: Final = "noncurrent_version"


def has_image_extension(name: str, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> bool:
    """By extension, case-insensitive; a dot inside a folder name does not count."""
    dot = name.rfind(".")
    return dot > name.rfind("/") and name[dot + 1 :].lower() in extensions

"""A JPEG's size, components and EXIF orientation from its markers, in pure Python.

Most images in a batch are JPEGs that go to the service unchanged, and for those the
header is all the client needs. Pillow's ``Image.open`` reads it too, but costs
~60-120 us per image (plugin set-up, every APP segment parsed into ``info``, an EXIF
object); this walk costs ~10 us. Anything it does not fully understand (12-bit
samples, an odd component count, a malformed EXIF block, no frame header) returns
None and the caller falls back to Pillow, so it can be stricter than it is fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["ORIENTATION_TAG", "JpegHead", "read_jpeg_head"]

_SOF: Final = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_MODES: Final = {1: "L", 3: "RGB", 4: "CMYK"}
ORIENTATION_TAG: Final = 0x0112  # EXIF Orientation
_XMP: Final = b"http://ns.adobe.com/xap/1.0/\x00"


@dataclass(frozen=True, slots=True)
class JpegHead:
    width: int
    height: int
    mode: str
    orientation: int  # 1 when there is no (valid) tag
    complete: bool  # an end-of-image marker follows the first scan


def read_jpeg_head(data: bytes) -> JpegHead | None:
    """The header of a JPEG, or None where Pillow should judge it."""
    if not data.startswith(b"\xff\xd8"):
        return None
    i, n = 2, len(data)
    frame: tuple[int, int, str] | None = None
    orientation = 1
    exif_seen = xmp_seen = False
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # no length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > n:
            return None
        if marker == 0xDA:  # start of scan: the header is over
            if frame is None or (xmp_seen and not exif_seen):
                return None  # XMP may hold the orientation: Pillow reads it
            width, height, mode = frame
            complete = data.rfind(b"\xff\xd9") > i  # entropy data never holds FFD9
            return JpegHead(width, height, mode, orientation, complete)
        if marker in _SOF and frame is None:
            body = data[i + 4 : i + 2 + length]
            if len(body) < 6 or body[0] != 8 or body[5] not in _MODES:
                return None  # 12/16-bit or unusual components: Pillow decides
            height = int.from_bytes(body[1:3], "big")
            width = int.from_bytes(body[3:5], "big")
            if not width or not height:
                return None
            frame = (width, height, _MODES[body[5]])
        elif marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
            if not exif_seen:  # the first EXIF block counts, as in Pillow
                found = _exif_orientation(data[i + 10 : i + 2 + length])
                if found is None:
                    return None
                orientation, exif_seen = found, True
        elif marker == 0xE1 and data[i + 4 : i + 33] == _XMP:
            xmp_seen = True
        i += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 (1 if absent or out of range); None if the block is malformed."""
    if len(tiff) < 8:
        return None
    order = tiff[:2]
    endian: Literal["little", "big"]
    if order == b"II":
        endian = "little"
    elif order == b"MM":
        endian = "big"
    else:
        return None
    if int.from_bytes(tiff[2:4], endian) != 42:
        return None
    ifd = int.from_bytes(tiff[4:8], endian)
    if ifd + 2 > len(tiff):
        return None
    count = int.from_bytes(tiff[ifd : ifd + 2], endian)
    end = ifd + 2 + 12 * count
    if end > len(tiff):
        return None
    for entry in range(ifd + 2, end, 12):
        if int.from_bytes(tiff[entry : entry + 2], endian) != ORIENTATION_TAG:
            continue
        kind = int.from_bytes(tiff[entry + 2 : entry + 4], endian)
        if kind != 3:  # SHORT, as the standard says
            return None
        value = int.from_bytes(tiff[entry + 8 : entry + 10], endian)
        return value if 1 <= value <= 8 else 1
    return 1

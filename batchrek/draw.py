"""``batchrek draw``: one result's boxes drawn onto its image, for a person to check.

Rekognition returns every box (``BoundingBox``: Left, Top, Width, Height) as ratios
of the image *as displayed*: a JPEG's EXIF orientation applied. So the picture is
drawn on the displayed image (Pillow's ``exif_transpose`` of the stored file), and
the boxes land where a viewer shows the thing. ``box_on_stored`` maps a box onto
the stored pixels instead (the README shows it), from the record's ``image``:
``{width, height, orientation}`` of what was sent.

The image is read from where the record's ``source`` says: a local file, or
``s3://`` through the configured S3 endpoint. An https source is not fetched here.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from PIL import Image, ImageDraw, ImageFont, ImageOps

from batchrek.errors import ConfigError
from batchrek.s3uri import S3UriError, is_s3_uri, parse_s3_object
from batchrek.safefile import atomic_write, same_file

__all__ = ["BOX_COLOR", "box_on_stored", "boxes", "draw_boxes", "draw_result", "find_record"]

BOX_COLOR = (0, 255, 0)  # far from the red a test image (or a warning sign) is drawn in
_DRAW_EXTENSIONS = (".png", ".jpg", ".jpeg")


def box_on_stored(
    box: Mapping[str, float], width: int, height: int, orientation: int
) -> tuple[float, float, float, float]:
    """A BoundingBox (ratios of the displayed ``width`` x ``height``) as (left, top,
    right, bottom) in the stored pixels of an image with that EXIF ``orientation``."""
    w, h = width, height

    def to_stored(x: float, y: float) -> tuple[float, float]:
        return {
            1: (x, y),
            2: (w - x, y),
            3: (w - x, h - y),
            4: (x, h - y),
            5: (y, x),
            6: (y, w - x),
            7: (h - y, w - x),
            8: (h - y, x),
        }[orientation]

    x0, y0 = to_stored(box["Left"] * w, box["Top"] * h)
    x1, y1 = to_stored((box["Left"] + box["Width"]) * w, (box["Top"] + box["Height"]) * h)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def boxes(response: Any, label: str = "") -> Iterator[tuple[str, Mapping[str, float]]]:
    """Every box in a response, whatever the operation: (label, BoundingBox)."""
    if isinstance(response, Mapping):
        name = response.get("Name") or response.get("DetectedText") or response.get("Type")
        here = str(name) if isinstance(name, str) else label
        for key, value in response.items():
            if key.endswith("BoundingBox") and isinstance(value, Mapping) and "Width" in value:
                yield here or key, value
            else:
                yield from boxes(value, here)
    elif isinstance(response, list):
        for value in response:
            yield from boxes(value, label)


def find_record(path: str, item_id: str, operation: str | None) -> dict[str, Any]:
    """The first record of ``item_id`` (and ``operation``); streamed, any file size."""
    needle = orjson.dumps(item_id)
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if needle not in line:
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if record.get("id") == item_id and operation in (None, record.get("operation")):
                    return dict(record)
    except OSError as exc:
        raise ConfigError(f"cannot read results {path}: {exc.strerror}") from None
    which = f" and operation {operation}" if operation else ""
    raise ConfigError(f"no record with id {item_id!r}{which} in {path}")


def draw_boxes(stored: bytes, record: Mapping[str, Any]) -> Image.Image:
    """The displayed image with the record's boxes and their labels drawn on it."""
    with Image.open(io.BytesIO(stored)) as opened:
        shown = ImageOps.exif_transpose(opened).convert("RGB")
    draw = ImageDraw.Draw(shown)
    w, h = shown.size
    thick = max(2, round(min(w, h) / 250))
    font = _font(max(12, round(min(w, h) / 40)))
    for label, box in boxes(record.get("response") or {}):
        left, top = box["Left"] * w, box["Top"] * h
        right, bottom = left + box["Width"] * w, top + box["Height"] * h
        draw.rectangle((left, top, right - 1, bottom - 1), outline=BOX_COLOR, width=thick)
        draw.text((left + thick + 2, top + thick + 1), label, fill=BOX_COLOR, font=font)
    return shown


def draw_result(
    results: str,
    *,
    item_id: str,
    operation: str | None,
    out_path: str,
    s3_endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> None:
    if not out_path.lower().endswith(_DRAW_EXTENSIONS):
        raise ConfigError(f"cannot draw to {out_path!r}: name it .png or .jpg")
    record = find_record(results, item_id, operation)
    if record.get("status") != "ok":
        raise ConfigError(f"the record of {item_id!r} is an error, it has no boxes to draw")
    source = str(record.get("source") or "")
    stored = _read(source, s3_endpoint_url=s3_endpoint_url, region=region, profile=profile)
    picture = draw_boxes(stored, record)
    sent = record.get("image")
    if isinstance(sent, Mapping) and _aspect_differs(picture, sent):
        raise ConfigError(
            f"{source} is {picture.width}x{picture.height} as displayed, but the image "
            f"sent was {sent['width']}x{sent['height']}: the file changed since the run"
        )
    if not is_s3_uri(source) and same_file(source, out_path):
        raise ConfigError(
            f"-o {out_path} is the image itself ({source}): drawing there would destroy "
            "it; name another file"
        )
    buf = io.BytesIO()
    picture.save(buf, format="PNG" if out_path.lower().endswith(".png") else "JPEG")
    atomic_write(out_path, buf.getvalue())  # never half a picture, never through a link


def _aspect_differs(picture: Image.Image, sent: Mapping[str, Any]) -> bool:
    """Whether the file is not the image that was sent (same shape, any scale)."""
    if not sent.get("width") or not sent.get("height"):
        return False
    return bool(abs(picture.width / picture.height - sent["width"] / sent["height"]) > 0.02)


def _read(
    source: str, *, s3_endpoint_url: str | None, region: str | None, profile: str | None
) -> bytes:
    if is_s3_uri(source):
        return _read_s3(source, endpoint_url=s3_endpoint_url, region=region, profile=profile)
    if source.lower().startswith(("http://", "https://")):
        raise ConfigError(f"{source}: download it first; draw reads local files and s3://")
    try:
        with open(os.path.expanduser(source), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the image {source}: {exc.strerror}") from None


def _read_s3(
    source: str, *, endpoint_url: str | None, region: str | None, profile: str | None
) -> bytes:
    import aioboto3
    import anyio
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ref = parse_s3_object(source)
    except S3UriError as exc:
        raise ConfigError(str(exc)) from None

    async def get() -> bytes:
        session = aioboto3.Session(profile_name=profile, region_name=region)
        async with session.client("s3", endpoint_url=endpoint_url) as s3:
            extra = {"VersionId": ref.version} if ref.version else {}
            response = await s3.get_object(Bucket=ref.bucket, Key=ref.key, **extra)
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data

    try:
        return anyio.run(get)
    except (BotoCoreError, ClientError) as exc:  # the draw command's own S3 boundary
        raise ConfigError(f"cannot read the image {source}: {exc}") from None


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):
        return ImageFont.load_default()

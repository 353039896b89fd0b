"""transcode(): everything the service would refuse is made to fit, as the user sees it."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageOps

from batchrek.errors import ItemError
from batchrek.limits import ImageLimits, limits_for
from batchrek.prepare.imaging import Transcoded, fits, inspect, transcode
from batchrek.testing import corpus
from batchrek.testing.corpus import DEFAULT_BOX, Box

LABELS = limits_for("detect_labels")
PPE = limits_for("detect_protective_equipment")


def _transcode(data: bytes, limits: ImageLimits = LABELS, cap: int | None = None) -> Transcoded:
    return transcode(data, inspect(data), limits, cap=cap)


def _decoded(data: bytes) -> Image.Image:
    """The image as displayed: as the service does, a JPEG's EXIF orientation applied."""
    img = Image.open(io.BytesIO(data))
    img.load()
    if img.format == "JPEG" and img.getexif().get(0x0112, 1) != 1:
        return ImageOps.exif_transpose(img)
    return img


def _red_box(data: bytes) -> Box:
    """Where the red rectangle is, as ratios of the image's pixels."""
    img = _decoded(data).convert("RGB")
    r, g, b = img.split()
    red = ImageChops.multiply(
        r.point(lambda v: 255 if v > 170 else 0),
        ImageChops.multiply(
            g.point(lambda v: 255 if v < 100 else 0), b.point(lambda v: 255 if v < 100 else 0)
        ),
    )
    box = red.getbbox()
    assert box is not None, "no red box in the image"
    w, h = img.size
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


def _close(a: Box, b: Box, tolerance: float = 0.02) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def _limits(max_side: int, bytes_cap: int = LABELS.bytes_cap) -> ImageLimits:
    return ImageLimits(bytes_cap=bytes_cap, min_side=80, max_side=max_side)


# ------------------------------------------------------------------ orientation

ORIENTATIONS = range(1, 9)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_box_stays_where_the_user_sees_it(orientation: int) -> None:
    out = _transcode(corpus.photo(640, 480, orientation=orientation))
    assert _close(_red_box(out.data), DEFAULT_BOX)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_box_stays_where_the_user_sees_it_after_a_downscale(orientation: int) -> None:
    out = _transcode(corpus.photo(640, 480, orientation=orientation), _limits(320))
    assert _close(_red_box(out.data), DEFAULT_BOX)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_pixels_have_the_displayed_size(orientation: int) -> None:
    out = _transcode(corpus.photo(640, 480, orientation=orientation))
    assert _decoded(out.data).size == (640, 480)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_downscaled_pixels_have_the_displayed_shape(orientation: int) -> None:
    out = _transcode(corpus.photo(640, 480, orientation=orientation), _limits(320))
    assert _decoded(out.data).size == (320, 240)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_jpeg_keeps_stored_pixels_and_only_the_orientation_tag(orientation: int) -> None:
    """The service rotates a JPEG by its tag, so the transcode need not (45 ms at 24 MP)."""
    data = corpus.photo(640, 480, orientation=orientation)
    stored = Image.open(io.BytesIO(data)).size
    img = Image.open(io.BytesIO(_transcode(data).data))
    exif = dict(img.getexif())
    assert img.size == stored
    assert exif == ({} if orientation == 1 else {0x0112: orientation})


def test_png_output_is_upright_with_no_tag() -> None:
    """The service ignores orientation in PNG, so a PNG transcode turns the pixels."""
    out = _transcode(corpus.photo(640, 480, fmt="PNG", orientation=6))
    assert out.sent.format == "PNG"
    png = Image.open(io.BytesIO(out.data))
    assert png.size == (640, 480)
    assert png.getexif().get(0x0112) is None
    assert _close(_red_box(out.data), DEFAULT_BOX)


def test_tiff_orientation_is_applied_once() -> None:
    out = _transcode(corpus.photo(640, 480, fmt="TIFF", orientation=6))
    assert _close(_red_box(out.data), DEFAULT_BOX)


# ----------------------------------------------------------------------- formats


def test_cmyk_becomes_rgb() -> None:
    assert _decoded(_transcode(corpus.cmyk_jpeg()).data).mode == "RGB"


def test_cmyk_keeps_its_colours() -> None:
    assert _close(_red_box(_transcode(corpus.cmyk_jpeg()).data), DEFAULT_BOX)


def test_16_bit_png_becomes_8_bit() -> None:
    assert _decoded(_transcode(corpus.png16()).data).mode == "L"


def test_16_bit_png_keeps_its_tones() -> None:
    low, high = _decoded(_transcode(corpus.png16()).data).getextrema()
    assert (low, high) == (0, 255)


def test_webp_becomes_jpeg() -> None:
    out = _transcode(corpus.photo(fmt="WEBP"))
    assert (out.sent.format, _decoded(out.data).format) == ("JPEG", "JPEG")


def test_gif_sends_its_first_frame() -> None:
    assert _close(_red_box(_transcode(corpus.animated_gif()).data), DEFAULT_BOX)


def test_heic_is_read_with_the_plugin() -> None:
    pytest.importorskip("pillow_heif")
    buf = io.BytesIO()
    _decoded(corpus.photo()).save(buf, format="HEIF")
    assert _transcode(buf.getvalue()).sent.format == "JPEG"


def _noisy_rgba_png(width: int = 400, height: int = 300) -> bytes:
    """Photo-like (too many colours for PNG), left half fully transparent."""
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    alpha = Image.new("L", (width, height), 255)
    ImageDraw.Draw(alpha).rectangle((0, 0, width // 2 - 1, height), fill=0)
    noise.putalpha(alpha)
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    return buf.getvalue()


def test_photo_like_png_becomes_jpeg() -> None:
    assert _transcode(_noisy_rgba_png()).sent.format == "JPEG"


def test_alpha_is_flattened_onto_white_for_jpeg() -> None:
    pixel = _decoded(_transcode(_noisy_rgba_png()).data).getpixel((20, 150))
    assert all(channel >= 250 for channel in pixel)  # type: ignore[union-attr]


def _screenshot(width: int = 2000, height: int = 1200) -> bytes:
    img = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width, 80), fill=(40, 60, 120))
    for row in range(120, height - 40, 40):
        draw.text((60, row), "Quarterly report: revenue up 12% - see table 3", fill=(20, 20, 20))
        draw.rectangle((1200, row, 1200 + (row * 7) % 600, row + 24), fill=(90, 160, 90))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_screenshot_stays_png_after_a_downscale() -> None:
    out = _transcode(_screenshot(), _limits(1000))
    assert (out.sent.format, out.sent.width, out.sent.height) == ("PNG", 1000, 600)


# ------------------------------------------------------------------ bytes and px


@pytest.fixture(scope="module")
def noisy() -> bytes:
    return corpus.noisy_photo(1200, 900)


def test_oversize_jpeg_fits_the_cap(noisy: bytes) -> None:
    assert len(_transcode(noisy, cap=150_000).data) <= 150_000


def test_oversize_jpeg_keeps_most_of_its_resolution(noisy: bytes) -> None:
    assert _transcode(noisy, cap=150_000).sent.width >= 0.8 * 1200


def test_oversize_jpeg_uses_most_of_the_cap(noisy: bytes) -> None:
    assert _transcode(noisy, cap=150_000).sent.bytes >= 0.8 * 150_000


def test_quality_goes_down_before_resolution(noisy: bytes) -> None:
    full_size_at_75 = len(_encoded(_decoded(noisy), 75))
    out = _transcode(noisy, cap=full_size_at_75 + 10_000)
    assert out.sent.width == 1200


def _encoded(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_stats_describe_both_sides(noisy: bytes) -> None:
    out = _transcode(noisy, cap=150_000)
    assert (out.original.bytes, out.sent.bytes) == (len(noisy), len(out.data))


def test_ppe_side_is_4096() -> None:
    out = _transcode(corpus.photo(5000, 3000), PPE)
    assert max(out.sent.width, out.sent.height) == 4096


def test_ppe_cap_is_4_mb() -> None:
    data = corpus.noisy_photo(3800, 2500)
    assert fits(inspect(data), LABELS)  # the premise: only the 4 MB cap is exceeded
    assert len(_transcode(data, PPE).data) <= 4_000_000


def test_never_upscales() -> None:
    assert _transcode(corpus.photo(300, 200)).sent.width == 300


# ----------------------------------------------------------------------- errors


def _code(data: bytes, limits: ImageLimits = LABELS) -> str:
    with pytest.raises(ItemError) as caught:
        _transcode(data, limits)
    return caught.value.code


def test_too_small_is_image_too_small() -> None:
    assert _code(corpus.photo(60, 60)) == "ImageTooSmall"


def test_ppe_takes_64_px() -> None:
    assert _transcode(corpus.photo(70, 70), PPE).sent.width == 70


def test_impossible_shape_is_image_too_large() -> None:
    # 10,000 px wide leaves 50 px of height: under the 80 px minimum.
    assert _code(corpus.photo(20_000, 100)) == "ImageTooLarge"


def test_truncated_gif_is_corrupt_at_decode() -> None:
    assert _code(corpus.truncated(corpus.animated_gif())) == "CorruptImage"


def test_truncated_jpeg_is_corrupt_at_decode() -> None:
    data = corpus.photo()
    header = inspect(data)
    with pytest.raises(ItemError) as caught:
        transcode(corpus.truncated(data), header, LABELS)
    assert caught.value.code == "CorruptImage"

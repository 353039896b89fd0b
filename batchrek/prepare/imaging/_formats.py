"""Which image formats batchrek reads, and how a file's format is found.

``READABLE`` is an explicit allow-list: every raster format this Pillow decodes in
the process, with no external program. ``NEVER`` names what is refused and why;
above all EPS/PostScript, whose decoding starts Ghostscript. Defence in depth:
every ``Image.open`` in batchrek passes ``formats=[...]`` from the allow-list, and
the ``NEVER`` openers are also removed from Pillow's registry at import, so no
plugin's own nested ``Image.open`` (ICNS, IPTC, TIFF thumbnails) can reach them.

Finding the format, cheapest first, the file's name never trusted:

1. magic bytes for the common formats (``fast_format``): JPEG, PNG, GIF, WebP,
   TIFF, BMP, HEIF/AVIF (from the ISO ``ftyp`` brands);
2. signatures of what is refused (``refused``): PostScript, PDF, HTML, SVG, archives,
   video, JPEG XL ... named in the UnsupportedFormat message;
3. Pillow's own identification over the allow-list (``identify``): formats with a
   signature first, then the few without one (TGA, IM, SPIDER ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from PIL import Image

from batchrek.errors import ItemError

__all__ = [
    "HEADER_IN_PROCESS",
    "NEVER",
    "OPENABLE",
    "READABLE",
    "accepted_formats",
    "describe_bytes",
    "extensions_for",
    "fast_format",
    "identify",
    "refused",
    "require_decoder",
]

# The allow-list: Pillow format name -> what it is. Each decodes inside this process
# with Pillow's own C code or a library linked into it (libjpeg, libpng, libtiff,
# libwebp, openjpeg, libavif, libheif through pillow-heif); none starts a program.
READABLE: Final[dict[str, str]] = {
    "JPEG": "JPEG/JFIF (a multi-picture MPO is read as its first picture)",
    "PNG": "PNG and APNG (first frame)",
    "GIF": "GIF (first frame)",
    "WEBP": "WebP (first frame)",
    "TIFF": "TIFF, incl. bilevel fax scans (first page)",
    "BMP": "Windows bitmap",
    "DIB": "device-independent bitmap",
    "HEIF": "HEIC/HEIF (needs the heif extra: pillow-heif)",
    "AVIF": "AVIF (Pillow built with libavif, or the heif extra)",
    "JPEG2000": "JPEG 2000 (.jp2, .j2k ...)",
    "PSD": "Photoshop (the composite image)",
    "TGA": "Truevision TGA",
    "PPM": "Netpbm PBM/PGM/PPM/PNM/PFM",
    "SGI": "SGI image (.sgi, .rgb, .bw)",
    "DDS": "DirectDraw surface",
    "ICO": "Windows icon (largest size)",
    "CUR": "Windows cursor",
    "ICNS": "macOS icon (largest size)",
    "QOI": "Quite OK Image",
    "PCX": "PC Paintbrush",
    "DCX": "multi-page PCX (first page)",
    "BLP": "Blizzard texture",
    "FITS": "FITS (scientific)",
    "FLI": "Autodesk FLI/FLC animation (first frame)",
    "FTEX": "Independence War texture",
    "GBR": "GIMP brush",
    "IM": "IFUNC image memory",
    "IMT": "IM Tools",
    "MCIDAS": "McIdas area file",
    "MSP": "Windows Paint",
    "PCD": "Kodak Photo CD",
    "PIXAR": "Pixar raster",
    "SPIDER": "SPIDER (scientific)",
    "SUN": "Sun raster",
    "XBM": "X bitmap",
    "XPM": "X pixmap",
    "XVTHUMB": "XV thumbnail",
}

# Pillow formats that are never opened, and why.
NEVER: Final[dict[str, str]] = {
    "EPS": "PostScript is never decoded: Pillow would start Ghostscript, an external program",
    "IPTC": "its loader re-opens the embedded data with every Pillow plugin",
    "MPEG": "video; Pillow only identifies it and decodes no frame",
    "WMF": "vector (WMF/EMF); Pillow needs a platform renderer for it",
    "BUFR": "Pillow only has a stub for it (decoding needs an external handler)",
    "GRIB": "Pillow only has a stub for it (decoding needs an external handler)",
    "HDF5": "Pillow only has a stub for it (decoding needs an external handler)",
    "FPX": "FlashPix needs olefile and is not on the allow-list",
    "MIC": "Microsoft Image Composer needs olefile and is not on the allow-list",
}

# Formats sent to the service as they are: only their headers are read in the
# main process. Every other format's header is read in a worker process, where it
# is decoded too (some plugins decode while opening: ICO, for one).
HEADER_IN_PROCESS: Final = frozenset({"JPEG", "PNG"})

# What a user may write in ``input_formats`` for a Pillow name.
_ALIASES: Final = {
    "JPG": "JPEG",
    "JFIF": "JPEG",
    "MPO": "JPEG",
    "APNG": "PNG",
    "TIF": "TIFF",
    "HEIC": "HEIF",
    "JP2": "JPEG2000",
    "J2K": "JPEG2000",
    "PBM": "PPM",
    "PGM": "PPM",
    "PNM": "PPM",
}
_ALWAYS: Final = frozenset({"JPEG", "PNG"})  # the service's own formats


def _register() -> frozenset[str]:
    """Load every plugin once, add HEIC through pillow-heif when installed, then
    unregister the ``NEVER`` openers. Returns what this Pillow can open of READABLE."""
    try:
        import pillow_heif
    except ImportError:
        pass
    else:
        pillow_heif.register_heif_opener()
    Image.init()
    for name in NEVER:
        Image.OPEN.pop(name, None)
        if name in Image.ID:
            Image.ID.remove(name)
    return frozenset(name for name in READABLE if name in Image.OPEN)


OPENABLE: Final[frozenset[str]] = _register()

# Identification order: formats whose plugin checks a signature first; those that
# accept any prefix and judge from a parse (TGA has no magic at all) last.
_WITH_SIGNATURE: Final = tuple(n for n in READABLE if n in OPENABLE and Image.OPEN[n][1])
_WITHOUT_SIGNATURE: Final = tuple(n for n in READABLE if n in OPENABLE and not Image.OPEN[n][1])


def accepted_formats(names: Iterable[str] = ()) -> frozenset[str]:
    """The formats a run accepts: all of ``READABLE`` when ``names`` is empty, else
    those named (JPEG and PNG always). Raises ``ValueError`` for an unknown name."""
    wanted = {n.strip().upper() for n in names if n.strip()}
    if not wanted:
        return frozenset(READABLE)
    unknown = sorted(n for n in wanted if _ALIASES.get(n, n) not in READABLE)
    if unknown:
        raise ValueError(
            f"unknown input format(s) {', '.join(unknown)}; choose from "
            f"{', '.join(sorted(READABLE))}"
        )
    return frozenset(_ALIASES.get(n, n) for n in wanted) | _ALWAYS


def extensions_for(formats: frozenset[str]) -> frozenset[str]:
    """File extensions (lower case, no dot) Pillow registers for ``formats``; a
    folder or prefix listing keeps files with one of these."""
    registered = Image.registered_extensions()
    names = set(formats) | ({"MPO"} if "JPEG" in formats else set())
    found = {ext.lstrip(".").lower() for ext, fmt in registered.items() if fmt in names}
    if "HEIF" in formats:  # listed even without pillow-heif: refused with a hint
        found |= {"heic", "heif", "hif"}
    if "AVIF" in formats:
        found |= {"avif", "avifs"}
    return frozenset(found)


def fast_format(data: bytes) -> str | None:
    """The format by magic bytes, for the common formats; a file's name is never
    trusted."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in (
        12,
        40,
        52,
        56,
        64,
        108,
        124,
    ):
        return "BMP"
    if data[4:8] == b"ftyp":
        return _iso_brand(data)
    return None


_IMAGE_BRANDS: Final = {
    b"avif": "AVIF",
    b"avis": "AVIF",
    **dict.fromkeys(
        (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"mif2"), "HEIF"
    ),
}


def _iso_brand(data: bytes) -> str | None:
    """HEIF or AVIF from an ISO-BMFF ``ftyp`` box (major and compatible brands)."""
    end = min(int.from_bytes(data[:4], "big"), len(data), 256)
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & {b"avif", b"avis"}:
        return "AVIF"
    return "HEIF" if any(_IMAGE_BRANDS.get(b) == "HEIF" for b in brands) else None


# Signatures of what is never decoded: (prefix, what it is, why it is refused).
_REFUSED: Final = (
    (b"%!PS", "PostScript/EPS", NEVER["EPS"]),
    (b"\xc5\xd0\xd3\xc6", "EPS (DOS binary)", NEVER["EPS"]),
    (b"%PDF-", "PDF", "a document, not an image"),
    (b"PK\x03\x04", "a ZIP archive", "not an image"),
    (b"\x1f\x8b", "gzip data", "not an image"),
    (b"Rar!\x1a\x07", "a RAR archive", "not an image"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "not an image"),
    (b"\x7fELF", "an ELF executable", "not an image"),
    (b"\xff\x0a", "JPEG XL", "this Pillow has no JPEG XL decoder"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL", "this Pillow has no JPEG XL decoder"),
    (b"\xd7\xcd\xc6\x9a", "WMF", NEVER["WMF"]),
    (b"gimp xcf", "GIMP XCF", "Pillow has no XCF decoder"),
    (b"\x89HDF", "HDF5", NEVER["HDF5"]),
    (b"GRIB", "GRIB", NEVER["GRIB"]),
    (b"BUFR", "BUFR", NEVER["BUFR"]),
    (b"\x00\x00\x01\xba", "MPEG video", NEVER["MPEG"]),
    (b"\x00\x00\x01\xb3", "MPEG video", NEVER["MPEG"]),
)
_MARKUP: Final = (
    (b"<svg", "SVG", "vector graphics, not a raster image"),
    (b"<?xml", "XML (SVG?)", "markup, not a raster image"),
    (b"<!doctype html", "HTML", "a web page, not an image (an error page saved as a file?)"),
    (b"<html", "HTML", "a web page, not an image (an error page saved as a file?)"),
)


def refused(data: bytes) -> str | None:
    """The UnsupportedFormat message for a recognised format that is never decoded."""
    for prefix, what, why in _REFUSED:
        if data.startswith(prefix):
            return f"{what}: {why}"
    head = data[:64].lstrip().lower()
    for prefix, what, why in _MARKUP:
        if head.startswith(prefix):
            return f"{what}: {why}"
    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("latin-1").strip()
        return f"an ISO media file (brand {brand!r}: video or audio?): not an image"
    if data[:4] == b"RIFF" and data[8:12] in (b"AVI ", b"WAVE"):
        return f"a RIFF {data[8:12].decode().strip()} file: not an image"
    return None


def describe_bytes(data: bytes) -> str:
    """The first bytes, in hex and as text, for an UnsupportedFormat message."""
    head = data[:8]
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    return f"starts with {head.hex(' ')} ({text!r})"


def require_decoder(fmt: str) -> None:
    """Refuse a format this Pillow cannot open, saying what would make it work."""
    if fmt not in OPENABLE:
        if fmt in ("HEIF", "AVIF"):
            raise ItemError(
                "UnsupportedFormat",
                f"{fmt} needs an optional decoder: pip install 'batchrek[heif]'",
            )
        raise ItemError("UnsupportedFormat", f"this Pillow cannot decode {fmt}")


def identify(data: bytes, accepted: frozenset[str]) -> str:
    """The format of ``data``, from the allow-list and in ``accepted``; raises
    ``UnsupportedFormat`` naming what was found otherwise. Opens headers with
    Pillow (some plugins decode while opening): run it in a worker process unless
    ``fast_format`` answered JPEG or PNG."""
    fmt = fast_format(data)
    if fmt is None:
        why = refused(data)
        if why is not None:
            raise ItemError("UnsupportedFormat", why)
        fmt = _pillow_format(data)
    if fmt is None:
        raise ItemError(
            "UnsupportedFormat", f"not a recognised image format ({describe_bytes(data)})"
        )
    if fmt not in accepted:
        raise ItemError(
            "UnsupportedFormat",
            f"{fmt} is not in input_formats ({', '.join(sorted(accepted))}); "
            "add it there to process such images",
        )
    return fmt


def _pillow_format(data: bytes) -> str | None:
    """Pillow's identification over the allow-list: the formats whose signature
    matches, then those without one. A signature can be shared (a TGA may start as
    a CUR does), so each candidate must also open; when none opens, the first
    signature's format is the answer (and opening it reports the corruption)."""
    import io

    prefix = data[:16]
    candidates = []
    for name in _WITH_SIGNATURE:
        accept = Image.OPEN[name][1]
        found = accept(prefix) if accept is not None else False
        if found and not isinstance(found, str):  # a str is Pillow's "no decoder" note
            candidates.append(name)
    for name in (*candidates, *_WITHOUT_SIGNATURE):
        try:
            Image.open(io.BytesIO(data), formats=[name])
        except Image.DecompressionBombError:
            return name  # it is one, and open_image will refuse it as a bomb
        except Exception:  # not this format (or a broken one): try the next
            continue
        return name
    return candidates[0] if candidates else None

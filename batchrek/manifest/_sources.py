"""Parse the string a manifest gives for an image into a typed Source.

``s3://`` URIs are parsed by ``batchrek.s3uri`` (the one parser of them); its
``S3UriError`` becomes ``SourceSyntaxError`` here, with the same message.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from batchrek.models import HttpUrl, LocalPath, Source
from batchrek.s3uri import S3UriError, is_s3_uri, parse_s3_object

__all__ = ["SourceSyntaxError", "parse_source"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")


class SourceSyntaxError(ValueError):
    """The string names no image we know how to fetch."""


def parse_source(text: str, *, base_dir: str | None = None, allow_local: bool = True) -> Source:
    """Turn ``s3://...``, ``http(s)://...``, ``file://...`` or a path into a Source.

    Relative paths are resolved against ``base_dir`` (the manifest's folder), so a
    manifest can travel with its images. ``allow_local=False`` (a manifest that came
    from S3: its lines are someone else's data, and must not read this machine's
    files) refuses ``file://`` and paths.
    """
    text = text.strip()
    if not text:
        raise SourceSyntaxError("empty image reference")
    if is_s3_uri(text):
        try:
            return parse_s3_object(text)
        except S3UriError as exc:
            raise SourceSyntaxError(str(exc)) from exc
    if "\x00" in text:
        raise SourceSyntaxError("the image reference contains a NUL byte")
    lowered = text[:8].lower()
    if lowered.startswith(("https://", "http://")):
        parts = urlsplit(text)
        if not parts.netloc:
            raise SourceSyntaxError(f"URL has no host: {text!r}")
        return HttpUrl(text)
    scheme = _SCHEME.match(text)
    if scheme and not lowered.startswith("file://"):
        raise SourceSyntaxError(f"unsupported scheme {scheme.group(1)!r} in {text!r}")
    if not allow_local:
        raise SourceSyntaxError(
            f"local file {text!r} named by a manifest read from S3; such a manifest may "
            "name only s3:// and https:// images"
        )
    if lowered.startswith("file://"):
        path = unquote(urlsplit(text).path)
        if "\x00" in path:
            raise SourceSyntaxError("the image reference contains a NUL byte")
        return LocalPath(path)
    if base_dir is not None and not os.path.isabs(text):
        text = os.path.join(base_dir, text)
    return LocalPath(text)

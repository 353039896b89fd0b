"""Text that may reach a log line, a record's error message or a summary, made safe.

- Credentials in URLs: the userinfo of ``https://user:password@host/`` and the values
  of query parameters that carry a secret (a pre-signed S3 URL's ``X-Amz-Signature``
  and ``X-Amz-Credential``, ``token``, ``password``, ``api_key`` ...) become ``***``.
- Memory addresses in object reprs (``<_io.BytesIO object at 0x7f3a...>``): they
  differ on every run, tell a user nothing and make equal errors look different.

``scrub`` is applied to every ``ErrorInfo`` message (so to every record's error) and
by the log handler to every log line. It works on free text: URLs are found inside
it, whatever the library that wrote the message. Item ids and the ``source`` a
manifest names are not free text and are not touched here (see README, "The output
record").
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_MESSAGE_CHARS", "redact_url", "scrub"]

MAX_MESSAGE_CHARS: Final = 2000
"""A message longer than this is cut: a hostile input must not make records huge."""

_SECRET_PARAMS: Final = frozenset(
    {
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "awsaccesskeyid",
        "signature",
        "sig",
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "auth",
        "authorization",
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "api-key",
        "key",
    }
)
_URL: Final = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s\"'<>`]+")
_USERINFO: Final = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*://)([^/?#@]*)@")
_PARAM: Final = re.compile(r"([?&;])([^=&#;]+)=([^&#;]*)")
_ADDRESS: Final = re.compile(r" (?:object )?at 0x[0-9a-fA-F]+")


def redact_url(url: str) -> str:
    """``url`` with its userinfo and secret query values replaced by ``***``."""
    url = _USERINFO.sub(r"\1***@", url, count=1)
    if "?" not in url and ";" not in url:
        return url
    return _PARAM.sub(_param, url)


def _param(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    if name.lower() in _SECRET_PARAMS and value:
        return f"{sep}{name}=***"
    return match.group(0)


def scrub(text: str) -> str:
    """Free text with every URL in it redacted and memory addresses removed."""
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    if " at 0x" in text:
        text = _ADDRESS.sub("", text)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text

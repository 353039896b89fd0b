"""AWS Signature Version 4 for a stream of POSTs to one endpoint.

botocore signs each request from scratch: it copies the headers into an
``email.message``-based map, re-derives the signing key (four HMACs) from the secret
on every call, re-parses the URL for the host and path, and formats the time through
``datetime``. A batch run sends the same operation to the same host all night, so
``Signer`` fixes what does not change (host, canonical path, query, scope) when it is
made, keeps the signing key per (secret, day), and per request only hashes the body,
builds the canonical request and computes the one HMAC that depends on it.

The algorithm is botocore's ``SigV4Auth`` step for step (header names lower-cased,
values whitespace-collapsed, sorted; the payload hashed with SHA-256; the query
string sorted); ``tests/call/test_sigv4.py`` proves the Authorization header equals
botocore's for the same request, credentials and time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["ALGORITHM", "Credentials", "Signer", "amz_date", "host_header"]

ALGORITHM = "AWS4-HMAC-SHA256"
# Headers botocore never signs (botocore.auth.SIGNED_HEADERS_BLACKLIST).
_UNSIGNED = frozenset({"expect", "transfer-encoding", "user-agent", "x-amzn-trace-id"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Credentials:
    """One frozen set of keys, as botocore's ``ReadOnlyCredentials``."""

    access_key: str
    secret_key: str
    token: str | None = None


def host_header(url: str) -> str:
    """The Host value botocore signs: lower-case, no userinfo, port only if not default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _canonical_path(path: str) -> str:
    from botocore.utils import normalize_url_path

    return quote(normalize_url_path(path), safe="/~")


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = sorted(tuple(pair.partition("=")[::2]) for pair in query.split("&"))
    return "&".join(f"{k}={v}" for k, v in pairs)


_last_second = -1
_last_stamp = ""


def amz_date(now: float | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ`` (UTC) for ``now`` (default: the wall clock), cached per second:
    hundreds of requests a second share one formatted stamp."""
    global _last_second, _last_stamp
    second = int(time.time() if now is None else now)
    if second != _last_second:
        _last_stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        _last_second = second
    return _last_stamp


class Signer:
    """SigV4 for requests to one URL, in one region, for one service."""

    def __init__(self, url: str, *, region: str, service: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = host_header(url)
        self.region = region
        self.service = service
        self._head = f"POST\n{_canonical_path(parts.path)}\n{_canonical_query(parts.query)}\n"
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._keys: dict[tuple[str, str], bytes] = {}

    def _signing_key(self, secret_key: str, day: str) -> bytes:
        """The key for (secret, day): four HMACs, computed once a day per secret."""
        cached = self._keys.get((secret_key, day))
        if cached is not None:
            return cached
        key = hmac.digest(f"AWS4{secret_key}".encode(), day.encode(), "sha256")
        for part in (self.region, self.service, "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        if len(self._keys) >= 4:  # old days and rotated secrets
            self._keys.clear()
        self._keys[(secret_key, day)] = key
        return key

    def authorization(
        self,
        headers: Mapping[str, str],
        body: bytes,
        credentials: Credentials,
        stamp: str,
    ) -> str:
        """The Authorization header for a POST of ``body`` with ``headers``.

        ``headers`` must already hold everything that is signed, as it will be sent:
        Host, X-Amz-Date (= ``stamp``) and X-Amz-Security-Token when there is a token.
        """
        signed: dict[str, str] = {}
        for name, value in headers.items():
            lname = name.lower()
            if lname not in _UNSIGNED:
                collapsed = " ".join(value.split())
                signed[lname] = f"{signed[lname]},{collapsed}" if lname in signed else collapsed
        names = sorted(signed)
        signed_names = ";".join(names)
        canonical = "".join(
            (
                self._head,
                "\n".join(f"{n}:{signed[n]}" for n in names),
                "\n\n",
                signed_names,
                "\n",
                hashlib.sha256(body).hexdigest(),
            )
        )
        day = stamp[:8]
        scope = day + self._scope_tail
        to_sign = "\n".join(
            (ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        key = self._signing_key(credentials.secret_key, day)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )

    def __repr__(self) -> str:
        return f"Signer({self.host!r}, region={self.region!r}, service={self.service!r})"

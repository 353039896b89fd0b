"""One URL source, downloaded: redirects followed here, each hop checked, the body bounded.

    URL ─▶ scheme (https; http only with allow_http) ─▶ literal IP? address policy
        ─▶ GET (no automatic redirects; every connection through the address policy,
           see ``addresses``) ─▶ 3xx: next hop (at most ``max_redirects``; never
           https -> http without allow_http) ─▶ status ─▶ reserve the body's size in
           the byte budget ─▶ read at most that (and ``max_bytes``)

Redirects are followed by this loop, not by aiohttp, so that each hop's scheme is
judged; the address of each hop is judged when its connection is made. This module
is the named boundary for HTTP sources: aiohttp's errors and timeouts become
``ItemError`` here, each classified once. Permanent: AddressNotAllowed, InsecureUrl,
InsecureRedirect, InvalidUrl, TooManyRedirects, TlsError, SourceNotFound (404/410),
AccessDenied (401/403), DownloadFailed for any other 4xx. Retryable: 408, 429, 5xx,
timeouts, dropped connections, DNS failures.

Timeouts (``timeout_s``): connecting, the response's headers and the body each get
that long; the wait for room in the byte budget is not counted.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import aiohttp
import anyio
from yarl import URL

from batchrek.errors import ItemError
from batchrek.prepare.addresses import AddressPolicy, AddressRefused
from batchrek.prepare.budget import Lease
from batchrek.prepare.localread import too_big
from batchrek.redact import redact_url

__all__ = ["HttpRules", "download"]

_CHUNK: Final = 1024 * 1024
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# Compressed transfer would make Content-Length the compressed size: ask for none.
_HEADERS: Final = {"Accept-Encoding": "identity"}


@dataclass(frozen=True, slots=True)
class HttpRules:
    """What a download may do: the settings it obeys."""

    policy: AddressPolicy
    max_bytes: int
    timeout_s: float = 30.0
    allow_http: bool = False
    max_redirects: int = 10


def _shown(url: URL | str) -> str:
    return redact_url(str(url))


def _parse(text: str) -> URL:
    try:
        url = URL(text)
    except (ValueError, TypeError) as exc:
        raise ItemError("InvalidUrl", f"not a valid URL: {_shown(text)} ({exc})") from None
    if not url.is_absolute() or not url.host:
        raise ItemError("InvalidUrl", f"the URL has no host: {_shown(text)}")
    return url


def _check_scheme(url: URL, rules: HttpRules, *, came_from: URL | None) -> None:
    scheme = url.scheme.lower()
    if scheme == "https":
        return
    if scheme != "http":
        where = f" (redirected from {_shown(came_from)})" if came_from is not None else ""
        raise ItemError("InvalidUrl", f"unsupported scheme {scheme!r}: {_shown(url)}{where}")
    if rules.allow_http:
        return
    if came_from is not None and came_from.scheme.lower() == "https":
        raise ItemError(
            "InsecureRedirect",
            f"{_shown(came_from)} redirects to plain http {_shown(url)}; "
            "pass --allow-http (setting allow_http) to follow it",
        )
    raise ItemError(
        "InsecureUrl",
        f"plain http is off: pass --allow-http (setting allow_http) to fetch {_shown(url)}",
    )


def _check_literal(url: URL, policy: AddressPolicy) -> None:
    """A URL naming an IP is judged before any packet is sent (aiohttp never
    resolves a literal, so its resolver would not see it)."""
    host = (url.host or "").strip("[]")
    if host and (host[0].isdigit() or ":" in host):
        try:
            policy.check(host, host)
        except AddressRefused as exc:
            raise ItemError("AddressNotAllowed", f"{_shown(url)}: {exc.reason}") from None


def _check_status(status: int, url: str) -> None:
    if status < 300:
        return
    shown = _shown(url)
    if status in (404, 410):
        raise ItemError("SourceNotFound", f"HTTP {status} for {shown}")
    if status in (401, 403):
        raise ItemError("AccessDenied", f"HTTP {status} for {shown}")
    retryable = status >= 500 or status in (408, 429)
    raise ItemError("DownloadFailed", f"HTTP {status} for {shown}", retryable=retryable)


async def download(
    session: aiohttp.ClientSession, url: str, rules: HttpRules, lease: Lease | None = None
) -> bytes:
    """The body of ``url`` after its redirects; raises ``ItemError`` for any failure."""
    current = _parse(url)
    _check_scheme(current, rules, came_from=None)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=rules.timeout_s, sock_read=rules.timeout_s
    )
    for _hop in range(rules.max_redirects + 1):
        _check_literal(current, rules.policy)
        try:
            async with session.get(
                current, allow_redirects=False, timeout=timeout, headers=_HEADERS
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    following = current
                    try:
                        current = following.join(URL(location))
                    except (ValueError, TypeError):
                        raise ItemError(
                            "InvalidUrl", f"{_shown(following)} redirects to an invalid URL"
                        ) from None
                    _check_scheme(current, rules, came_from=following)
                    continue
                _check_status(resp.status, url)
                return await _body(resp, url, rules, lease)
        except ItemError:
            raise
        except aiohttp.ClientConnectorError as exc:
            raise _connect_error(exc, current) from None
        except aiohttp.InvalidURL as exc:
            raise ItemError("InvalidUrl", f"invalid URL {_shown(current)}: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise ItemError(
                "DownloadFailed", f"{what} fetching {_shown(current)}: {exc}", retryable=True
            ) from None
    raise ItemError(
        "TooManyRedirects", f"more than {rules.max_redirects} redirects from {_shown(url)}"
    )


def _connect_error(exc: aiohttp.ClientConnectorError, url: URL) -> ItemError:
    cause: BaseException | None = exc.os_error
    if isinstance(cause, AddressRefused):
        return ItemError("AddressNotAllowed", f"{_shown(url)}: {cause.reason}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return ItemError("TlsError", f"TLS failed for {_shown(url)}: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ItemError(
            "DownloadFailed", f"cannot resolve {url.host}: {exc.os_error}", retryable=True
        )
    return ItemError(
        "DownloadFailed", f"cannot connect to {_shown(url)}: {exc.os_error}", retryable=True
    )


async def _body(
    resp: aiohttp.ClientResponse, url: str, rules: HttpRules, lease: Lease | None
) -> bytes:
    cap = rules.max_bytes
    encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    declared = None if encoded else resp.content_length
    if declared is not None and declared > cap:
        raise too_big(_shown(url), declared, cap)
    limit = cap if declared is None else declared
    if lease is not None:
        await lease.reserve(limit)
    # BytesIO grows in place and hands its buffer over without a copy: joining a list
    # of chunks would hold the body twice, for a moment, per download.
    body = io.BytesIO()
    total = 0
    with anyio.fail_after(rules.timeout_s):
        async for chunk in resp.content.iter_chunked(_CHUNK):
            total += len(chunk)
            if total > limit:
                if declared is None:
                    raise too_big(_shown(url), total, cap)
                raise ItemError(
                    "DownloadFailed", f"{_shown(url)} sent more than its Content-Length"
                )
            body.write(chunk)
    if lease is not None and declared is None:
        lease.shrink_to(total)
    return body.getvalue()

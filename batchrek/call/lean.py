"""The lean request path: Rekognition calls without botocore's per-request machinery.

For each call the SDK serialises against the model, emits a dozen events (each a
prefix search through the handler tree), resolves the endpoint from the ruleset,
builds an ``AWSRequest`` and a prepared request, signs through ``email.message``
headers, converts headers twice for aiohttp, parses the answer with the standard
``json`` module and walks it with a method lookup per value. Measured on one core
that is ~560 us of the ~800 us of client CPU an image costs. A batch run makes the
same call all night, so this path does the per-request part itself:

    kwargs ─▶ orjson body (blobs base64) ─▶ SigV4 (``call.sigv4``) ─▶ POST (``call.http11``)
           ◀─ compiled walk of the output shape (``call.jsonproto``) ◀─ 2xx
           ◀─ botocore's own parser, then the client's exception class ◀─ anything else

What it takes from the real aiobotocore client, which is still created:

- credentials: the very object the client signs with (refreshable ones refresh
  themselves; frozen keys are re-read at most once a second, and
  ``call.credentials.force_refresh`` works on it and makes this path forget its copy);
- the endpoint URL and the signing region and name, resolved once through the
  client's endpoint ruleset (FIPS, dual-stack, ``AWS_ENDPOINT_URL_REKOGNITION``);
- the User-Agent string, connect/read timeouts, the pool size (``--concurrency``),
  TLS verification (CA bundle, client certificate) and the proxy for the endpoint (with
  a proxy the request goes through aiohttp with aiobotocore's connector instead of
  ``call.http11``);
- error classes: a non-2xx answer is parsed by the client's parser and raised as
  ``client.exceptions.<Code>`` (a ``ClientError``); transport failures are raised as
  the botocore exceptions aiobotocore raises for the same aiohttp errors. So
  ``retry.classify`` sees exactly what it sees on the SDK path.

Left out, on purpose: botocore's retries (batchrek sets them to one attempt anyway),
client-side parameter validation (the operation's parameters are checked against the
model once, before the first call), the ``amz-sdk-invocation-id`` header (telemetry
only) and event hooks (nothing in batchrek registers one on this path).
``request_path = "sdk"`` keeps the whole SDK path.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import botocore.exceptions as bex

from batchrek.call.http11 import Answer, Http11Pool
from batchrek.call.jsonproto import ResponseShape, UnsupportedShape, encode_request
from batchrek.call.sigv4 import Credentials, Signer, amz_date

__all__ = ["LeanClient", "open_lean_client"]

# Frozen keys are re-read this often: refreshable credentials renew themselves inside
# get_frozen_credentials, minutes before they expire, so a second is always in time.
_CREDENTIALS_TTL_S = 1.0
_CONTENT_TYPE = "application/x-amz-json-1.1"

Call = Callable[..., Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, str], bytes], Awaitable[Answer]]


class _Operation:
    """What one API operation needs per call, built on its first call."""

    __slots__ = ("model", "name", "shape", "target")

    def __init__(self, model: Any, client: Any) -> None:
        self.model = model
        self.name: str = model.name
        meta = model.metadata
        self.target = f"{meta['targetPrefix']}.{model.name}"
        parser = getattr(client, "_response_parser", None)
        try:
            self.shape: ResponseShape | None = ResponseShape(
                model.output_shape,
                blob=getattr(parser, "_blob_parser", None) or _b64decode,
                timestamp=getattr(parser, "_timestamp_parser", None),
            )
        except UnsupportedShape:
            self.shape = None  # every answer goes through botocore's parser


def _b64decode(value: Any) -> bytes:
    import base64

    return base64.b64decode(value)


class LeanClient:
    """Stands in for the aiobotocore Rekognition client in ``getattr(client, method)(**kw)``.

    Methods are the boto3 names (``detect_labels``); each takes the same keyword
    arguments and returns the same dict (ResponseMetadata included) or raises the
    same exceptions.
    """

    def __init__(self, client: Any, send: Send, *, url: str, region: str, service: str) -> None:
        self.client = client
        self.url = url
        self.signer = Signer(url, region=region, service=service)
        self._send = send
        self._user_agent = _user_agent(client)
        self._methods: dict[str, str] = dict(client.meta.method_to_api_mapping)
        self._operations: dict[str, _Operation] = {}
        signer = getattr(client, "_request_signer", None)
        self.signing_credentials: Any = getattr(signer, "_credentials", None)
        self._creds: Credentials | None = None
        self._creds_until = float("-inf")

    # -- the boto3-shaped surface ---------------------------------------------------

    def __getattr__(self, name: str) -> Call:
        """``client.detect_labels`` etc.: made on first use, then a plain attribute
        (a partial of ``call``: no extra coroutine frame per request)."""
        api = self.__dict__.get("_methods", {}).get(name)
        if api is None:
            raise AttributeError(name)
        method: Call = partial(self.call, api)
        setattr(self, name, method)
        return method

    @property
    def meta(self) -> Any:
        return self.client.meta

    @property
    def exceptions(self) -> Any:
        return self.client.exceptions

    def forget_credentials(self) -> None:
        """Sign the next request with freshly read keys (after a forced refresh)."""
        self._creds_until = float("-inf")

    # -- one call -----------------------------------------------------------------

    async def call(self, api: str, /, **params: Any) -> dict[str, Any]:
        """One request for the API operation ``api`` (e.g. "DetectLabels")."""
        op = self._operations.get(api)
        if op is None:
            op = self._operations[api] = _Operation(
                self.client.meta.service_model.operation_model(api), self.client
            )
        body = encode_request(params)
        creds = self._creds
        if creds is None or time.monotonic() >= self._creds_until:
            creds = await self._read_credentials()
        stamp = amz_date()
        headers = {
            "Host": self.signer.host,
            "X-Amz-Target": op.target,
            "Content-Type": _CONTENT_TYPE,
            "X-Amz-Date": stamp,
        }
        if creds.token:
            headers["X-Amz-Security-Token"] = creds.token
        headers["Authorization"] = self.signer.authorization(headers, body, creds, stamp)
        # Not signed, as on the SDK path.
        headers["User-Agent"] = self._user_agent
        headers["amz-sdk-request"] = "attempt=1"
        headers["Accept-Encoding"] = "identity"
        status, response_headers, raw = await self._send(headers, body)
        if 200 <= status < 300 and op.shape is not None:
            parsed = op.shape.parse(raw)
            metadata: dict[str, Any] = {}
            request_id = response_headers.get("x-amzn-requestid")
            if request_id is not None:
                metadata["RequestId"] = request_id
            metadata["HTTPStatusCode"] = status
            metadata["HTTPHeaders"] = response_headers
            metadata["RetryAttempts"] = 0
            parsed["ResponseMetadata"] = metadata
            return parsed
        return await self._by_botocore(op, status, response_headers, raw)

    async def _read_credentials(self) -> Credentials:
        source = self.signing_credentials
        if source is None:
            raise bex.NoCredentialsError()
        frozen = source.get_frozen_credentials()
        if inspect.isawaitable(frozen):
            frozen = await frozen
        self._creds = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        self._creds_until = time.monotonic() + _CREDENTIALS_TTL_S
        return self._creds

    async def _by_botocore(
        self, op: _Operation, status: int, headers: dict[str, str], raw: bytes
    ) -> dict[str, Any]:
        """An error (or an unusual answer): the client's own parser and exception class."""
        response = {"status_code": status, "headers": headers, "body": raw, "context": {}}
        parsed: dict[str, Any] = await self._parse(response, op.model.output_shape)
        if status < 300:
            parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
            return parsed
        code = (parsed.get("Error") or {}).get("Code")
        if code is not None:
            error_shape = op.model.service_model.shape_for_error_code(code)
            if error_shape is not None:
                parsed.update(await self._parse(response, error_shape))
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
        raise self.client.exceptions.from_code(code)(parsed, op.name)

    async def _parse(self, response: dict[str, Any], shape: Any) -> Any:
        parser = getattr(self.client, "_response_parser", None)
        if parser is None:
            from botocore.parsers import create_parser

            parser = create_parser("json")
        parsed = parser.parse(response, shape)
        if inspect.isawaitable(parsed):
            parsed = await parsed
        return parsed

    def __repr__(self) -> str:
        return f"LeanClient({self.url!r}, region={self.signer.region!r})"


class _Http11Send:
    """Requests as bytes on ``call.http11`` connections."""

    def __init__(self, pool: Http11Pool, url: str) -> None:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        self.pool = pool
        self._request_line = f"POST {target} HTTP/1.1\r\n"

    async def __call__(self, headers: dict[str, str], body: bytes) -> Answer:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        data = f"{self._request_line}{head}Content-Length: {len(body)}\r\n\r\n"
        return await self.pool.post(data.encode("latin-1") + body)


class _AiohttpSend:
    """Requests through aiohttp with aiobotocore's connector: the path with a proxy."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        *,
        proxy: str | None,
        proxy_headers: Mapping[str, str] | None,
    ) -> None:
        self.http = http
        self.url = url
        self._proxy = proxy
        self._proxy_headers = dict(proxy_headers) if proxy_headers else None

    async def __call__(self, headers: dict[str, str], body: bytes) -> Answer:
        """POST and read the whole answer; aiohttp's errors become botocore's, exactly
        as aiobotocore's ``AIOHTTPSession.send`` translates them."""
        url = self.url
        try:
            async with self.http.post(
                url,
                data=body,
                headers=headers,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            ) as response:
                raw = await response.read()
                answer_headers = {k.decode().lower(): v.decode() for k, v in response.raw_headers}
                return response.status, answer_headers, raw
        except aiohttp.ClientSSLError as e:
            raise bex.SSLError(endpoint_url=url, error=e) from e
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as e:
            raise bex.ProxyConnectionError(proxy_url=self._proxy, error=e) from e
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.http_exceptions.BadStatusLine,
        ) as e:
            raise bex.ConnectionClosedError(error=e, endpoint_url=url) from e
        except aiohttp.ServerTimeoutError as e:
            if str(e).lower().startswith("connect"):
                raise bex.ConnectTimeoutError(endpoint_url=url, error=e) from e
            raise bex.ReadTimeoutError(endpoint_url=url, error=e) from e
        except (aiohttp.ClientConnectorError, aiohttp.ClientConnectionError, socket.gaierror) as e:
            raise bex.EndpointConnectionError(endpoint_url=url, error=e) from e
        except TimeoutError as e:
            raise bex.ReadTimeoutError(endpoint_url=url, error=e) from e
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise bex.HTTPClientError(error=e) from e


def _user_agent(client: Any) -> str:
    creator = getattr(client, "_user_agent_creator", None)
    to_string = getattr(creator, "to_string", None)
    if to_string is not None:
        return str(to_string())
    return str(client.meta.config.user_agent or "batchrek")


def _request_url(endpoint_url: str) -> str:
    """The URL botocore posts to for requestUri "/": the endpoint's path, else "/"."""
    parts = urlsplit(endpoint_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


async def _resolve_endpoint(client: Any, api: str) -> tuple[str, str, str]:
    """(URL, signing region, signing name), from the client's endpoint ruleset once."""
    region = client.meta.region_name
    service = getattr(getattr(client, "_request_signer", None), "_signing_name", None)
    service = service or client.meta.service_model.signing_name
    url = client.meta.endpoint_url
    resolve = getattr(client, "_resolve_endpoint_ruleset", None)
    if resolve is not None:
        context: dict[str, Any] = {}
        model = client.meta.service_model.operation_model(api)
        url, _headers, _props = await resolve(model, {}, context)
        signing = context.get("signing") or {}
        region = signing.get("region") or region
        service = signing.get("signing_name") or service
    return _request_url(url), region, service


def _connector(client: Any, proxy: str | None, concurrency: int) -> aiohttp.BaseConnector:
    """aiobotocore's own connector (pool size, TLS verification and client certs as the
    client was configured); a plain one if that private method ever goes away."""
    http_session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    make = getattr(http_session, "_create_connector", None)
    if make is not None:
        connector: aiohttp.BaseConnector = make(proxy)
        return connector
    return aiohttp.TCPConnector(limit=concurrency)


def _ssl_context(client: Any) -> ssl.SSLContext:
    """TLS as aiobotocore sets it up: botocore's context, its CA bundle (or the
    client's ``verify`` path), the client certificate; ``verify=False`` honoured."""
    from botocore.httpsession import create_urllib3_context, get_cert_path

    http_session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    verify = getattr(http_session, "_verify", True)
    context: ssl.SSLContext
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = create_urllib3_context()
    cert_file = getattr(http_session, "_cert_file", None)
    if cert_file:
        context.load_cert_chain(cert_file, getattr(http_session, "_key_file", None))
    ca_certs = get_cert_path(verify)
    if ca_certs:
        context.load_verify_locations(ca_certs, None, None)
    return context


async def open_lean_client(
    client: Any,
    stack: AsyncExitStack,
    *,
    concurrency: int,
    api: str = "DetectLabels",
    transport: str = "http11",
) -> LeanClient:
    """A LeanClient over the open aiobotocore ``client``; its connections close with
    ``stack``. ``transport="aiohttp"`` forces aiohttp (always used with a proxy)."""
    url, region, service = await _resolve_endpoint(client, api)
    config = client.meta.config
    proxy = proxy_headers = None
    http_session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    proxy_config = getattr(http_session, "_proxy_config", None)
    if proxy_config is not None:
        proxy = proxy_config.proxy_url_for(url)
        proxy_headers = proxy_config.proxy_headers_for(url) if proxy else None
    # The SDK's pool size: --concurrency plus headroom (retry.botocore_config_kwargs).
    limit = int(config.max_pool_connections or concurrency)
    send: Send
    if proxy is None and transport == "http11":
        parts = urlsplit(url)
        https = parts.scheme == "https"
        pool = Http11Pool(
            endpoint_url=url,
            host=parts.hostname or "",
            port=parts.port or (443 if https else 80),
            limit=limit,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            ssl_context=_ssl_context(client) if https else None,
            server_hostname=parts.hostname,
        )
        stack.push_async_callback(pool.aclose)
        send = _Http11Send(pool, url)
    else:
        http = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=_connector(client, proxy, limit),
                timeout=aiohttp.ClientTimeout(
                    sock_connect=config.connect_timeout, sock_read=config.read_timeout
                ),
                auto_decompress=False,
            )
        )
        send = _AiohttpSend(http, url, proxy=proxy, proxy_headers=proxy_headers)
    return LeanClient(client, send, url=url, region=region, service=service)

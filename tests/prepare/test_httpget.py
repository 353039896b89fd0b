"""URL downloads: redirects followed by batchrek, each hop judged; statuses classified
once; the body bounded and counted in the byte budget. The server is on 127.0.0.1,
and nothing here ever sends a packet elsewhere: refused hops fail before connecting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from yarl import URL

from batchrek.errors import ItemError
from batchrek.prepare import AddressPolicy, ByteBudget, make_http_session
from batchrek.prepare.httpget import HttpRules, _check_scheme, download

pytestmark = pytest.mark.anyio

BODY = b"\xff\xd8\xff" + b"j" * 5000
LOCAL = AddressPolicy(allow_loopback=True)


@dataclass
class Server:
    base: str
    hits: dict[str, int]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    hits: dict[str, int] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits[name] = hits.get(name, 0) + 1
        if name == "ok":
            return web.Response(body=BODY)
        if name == "chunked":
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(5):
                await resp.write(b"c" * 1000)
            await resp.write_eof()
            return resp
        if name.startswith("status-"):
            return web.Response(status=int(name.split("-")[1]))
        if name == "loop":
            raise web.HTTPFound("/loop")
        if name == "to-ok":
            raise web.HTTPFound("/ok")
        if name == "to-metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if name == "to-localhost":
            raise web.HTTPFound(f"http://localhost:{request.url.port}/ok")
        if name == "to-file":
            raise web.HTTPFound("file:///etc/passwd")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Server(f"http://127.0.0.1:{port}", hits)
    finally:
        await runner.cleanup()


async def _get(
    url: str,
    *,
    policy: AddressPolicy = LOCAL,
    budget: ByteBudget | None = None,
    max_bytes: int = 1 << 20,
) -> bytes:
    rules = HttpRules(policy=policy, max_bytes=max_bytes, timeout_s=10, allow_http=True)
    session = make_http_session(policy, connections=4)
    try:
        return await download(session, url, rules, budget.lease() if budget else None)
    finally:
        await session.close()


async def _error(url: str, **kwargs: object) -> ItemError:
    with pytest.raises(ItemError) as caught:
        await _get(url, **kwargs)  # type: ignore[arg-type]
    return caught.value


async def test_a_body_is_downloaded(server: Server) -> None:
    assert await _get(f"{server.base}/ok") == BODY


async def test_loopback_is_refused_by_default_before_any_request(server: Server) -> None:
    error = await _error(f"{server.base}/ok", policy=AddressPolicy())
    assert (error.code, error.retryable, server.hits) == ("AddressNotAllowed", False, {})


async def test_a_name_resolving_to_loopback_is_refused(server: Server) -> None:
    port = URL(server.base).port
    error = await _error(f"http://localhost:{port}/ok", policy=AddressPolicy())
    assert (error.code, server.hits) == ("AddressNotAllowed", {})


async def test_a_redirect_is_followed(server: Server) -> None:
    assert await _get(f"{server.base}/to-ok") == BODY


async def test_a_redirect_to_the_metadata_address_is_refused(server: Server) -> None:
    error = await _error(f"{server.base}/to-metadata")
    assert (error.code, "metadata" in error.message) == ("AddressNotAllowed", True)


async def test_a_redirect_to_another_scheme_is_invalid(server: Server) -> None:
    error = await _error(f"{server.base}/to-file")
    assert (error.code, error.retryable) == ("InvalidUrl", False)


async def test_too_many_redirects_is_permanent(server: Server) -> None:
    error = await _error(f"{server.base}/loop")
    assert (error.code, error.retryable, server.hits["loop"]) == ("TooManyRedirects", False, 11)


def test_https_is_never_redirected_to_plain_http() -> None:
    rules = HttpRules(policy=LOCAL, max_bytes=1, allow_http=False)
    with pytest.raises(ItemError) as caught:
        _check_scheme(URL("http://a.example/x"), rules, came_from=URL("https://b.example/y"))
    assert (caught.value.code, caught.value.retryable) == ("InsecureRedirect", False)


def test_allow_http_allows_the_downgrade() -> None:
    rules = HttpRules(policy=LOCAL, max_bytes=1, allow_http=True)
    _check_scheme(URL("http://a.example/x"), rules, came_from=URL("https://b.example/y"))


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, "DownloadFailed", False),
        (401, "AccessDenied", False),
        (403, "AccessDenied", False),
        (404, "SourceNotFound", False),
        (410, "SourceNotFound", False),
        (408, "DownloadFailed", True),
        (429, "DownloadFailed", True),
        (500, "DownloadFailed", True),
        (503, "DownloadFailed", True),
    ],
)
async def test_statuses_are_classified_once(
    server: Server, status: int, code: str, retryable: bool
) -> None:
    error = await _error(f"{server.base}/status-{status}")
    assert (error.code, error.retryable) == (code, retryable)


async def test_an_invalid_url_is_permanent() -> None:
    error = await _error("https://exa mple.com:99999/x")
    assert (error.code, error.retryable) == ("InvalidUrl", False)


async def test_a_declared_size_over_the_cap_is_refused_unread(server: Server) -> None:
    error = await _error(f"{server.base}/ok", max_bytes=100)
    assert error.code == "ImageTooLarge"


async def test_an_undeclared_size_is_bounded_while_it_streams(server: Server) -> None:
    error = await _error(f"{server.base}/chunked", max_bytes=2500)
    assert error.code == "ImageTooLarge"


async def test_a_declared_size_is_held_in_the_budget(server: Server) -> None:
    budget = ByteBudget(1 << 20)
    await _get(f"{server.base}/ok", budget=budget)
    assert budget.used == len(BODY)  # held until the item releases its lease


async def test_an_undeclared_size_keeps_only_what_arrived(server: Server) -> None:
    budget = ByteBudget(1 << 20)
    data = await _get(f"{server.base}/chunked", budget=budget)
    assert (len(data), budget.used, budget.peak) == (5000, 5000, 1 << 20)

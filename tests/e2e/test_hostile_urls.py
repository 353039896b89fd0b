"""URL sources through the real CLI, against a server on 127.0.0.1 only: loopback is
refused by default and allowed by the setting, every redirect hop is judged (a hop to
the metadata address is refused before any packet is sent), permanent failures are
not retried by a rerun, secrets never reach a record or a log, and the bytes held at
once stay within the byte budget."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, run_args

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-signature"
BIG = 2 * 1024 * 1024
LOOPBACK = {"BATCHREK_ALLOW_LOOPBACK_ADDRESSES": "true"}


@dataclass
class Web:
    base: str
    hits: Counter[str]


class _Handler(BaseHTTPRequestHandler):
    hits: Counter[str]
    image: bytes

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.hits[path] += 1
        if path == "/a.jpg":
            self._send(200, self.image)
        elif path.startswith("/big-"):
            self._send(200, b"\x00" * BIG)
        elif path == "/loop":
            self._redirect("/loop")
        elif path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/iam/")
        else:
            self._send(404, b"not here")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, to: str) -> None:
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[Web]:
    hits: Counter[str] = Counter()
    handler = type("H", (_Handler,), {"hits": hits, "image": corpus.photo(200, 150)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Web(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()


def _manifest(folder: Path, web: Web) -> Path:
    path = folder / "m.txt"
    path.write_text(
        f"{web.base}/a.jpg\n{web.base}/loop\n{web.base}/to-metadata\n"
        f"{web.base}/missing.jpg?X-Amz-Signature={SECRET}&token={SECRET}\n"
    )
    return path


def _codes(records: list[dict[str, Any]]) -> dict[str, str | None]:
    return {r["id"].split("/")[-1].split("?")[0]: (r["error"] or {}).get("code") for r in records}


def test_loopback_is_refused_by_default(tmp_path: Path, emu: Any, s3: S3Bed, web: Web) -> None:
    out = tmp_path / "out.jsonl"
    before = sum(web.hits.values())
    res = batchrek(
        *run_args(_manifest(tmp_path, web), out, emu.endpoint_url, s3.endpoint_url),
        "--allow-http",
        output=out,
    )
    assert set(_codes(res.records).values()) == {"AddressNotAllowed"}
    assert sum(web.hits.values()) == before  # nothing was sent


@dataclass(frozen=True)
class Allowed:
    codes: dict[str, str | None]
    records: list[dict[str, Any]]
    stderr: str
    hits_after_first: int
    hits_after_rerun: int


@pytest.fixture(scope="module")
def allowed(
    emulator: Any, s3: S3Bed, web: Web, tmp_path_factory: pytest.TempPathFactory
) -> Allowed:
    folder = tmp_path_factory.mktemp("urls")
    out = folder / "out.jsonl"
    args = [
        *run_args(_manifest(folder, web), out, emulator.endpoint_url, s3.endpoint_url),
        "--allow-http",
    ]
    emulator.reset(settings=True)
    first = batchrek(*args, output=out, env=LOOPBACK)
    hits = sum(web.hits.values())
    batchrek(*args, output=out, env=LOOPBACK)
    return Allowed(_codes(first.records), first.records, first.stderr, hits, sum(web.hits.values()))


def test_the_setting_allows_loopback(allowed: Allowed) -> None:
    assert allowed.codes["a.jpg"] is None


def test_a_redirect_to_the_metadata_address_is_refused(allowed: Allowed) -> None:
    assert allowed.codes["to-metadata"] == "AddressNotAllowed"


def test_too_many_redirects_is_its_own_permanent_code(allowed: Allowed) -> None:
    [record] = [r for r in allowed.records if r["id"].endswith("/loop")]
    assert (record["error"]["code"], record["error"]["retryable"]) == ("TooManyRedirects", False)


def test_a_rerun_does_not_redo_permanent_failures(allowed: Allowed) -> None:
    assert allowed.hits_after_rerun == allowed.hits_after_first


def test_secrets_in_a_url_never_reach_a_record_message_or_the_log(allowed: Allowed) -> None:
    [record] = [r for r in allowed.records if "missing.jpg" in r["id"]]
    assert record["error"]["code"] == "SourceNotFound"
    assert SECRET not in record["error"]["message"]
    assert SECRET not in record["source"]
    assert SECRET not in allowed.stderr


def test_the_bytes_held_at_once_stay_within_the_budget(
    tmp_path: Path, emu: Any, s3: S3Bed, web: Web
) -> None:
    """40 downloads of 2 MiB with 12 workers would hold 24 MiB; the budget is 5 MiB."""
    manifest = tmp_path / "m.txt"
    manifest.write_text("".join(f"{web.base}/big-{i}\n" for i in range(40)))
    out, metrics = tmp_path / "out.jsonl", tmp_path / "metrics.json"
    budget = 5 * 1024 * 1024
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        "--allow-http",
        "--metrics-out",
        str(metrics),
        output=out,
        env={
            **LOOPBACK,
            "BATCHREK_MAX_SOURCE_BYTES": str(4 * 1024 * 1024),
            "BATCHREK_MAX_INFLIGHT_SOURCE_BYTES": str(budget),
        },
    )
    source_budget = orjson.loads(metrics.read_bytes())["source_budget"]
    assert len(res.records) == 40, res.stderr
    assert source_budget["peak_bytes"] <= budget
    assert source_budget["waits"] > 0  # the budget, not luck, kept it there


def test_a_pushgateway_password_is_never_logged(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    (tmp_path / "a.jpg").write_bytes(corpus.photo(200, 150))
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{tmp_path / 'a.jpg'}\n")
    out = tmp_path / "out.jsonl"
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        "--pushgateway",
        f"http://ops:hunter2@127.0.0.1:{closed}",
        output=out,
    )
    assert "could not push metrics" in res.stderr
    assert "hunter2" not in res.stderr


# -- https never downgraded to http -----------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, made now (the CLI trusts it via SSL_CERT_FILE)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_web(web: Web, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """https on 127.0.0.1: /a.jpg, and /to-http redirecting to the plain-http server."""
    import ssl

    cert, key = _self_signed(tmp_path)
    image = corpus.photo(200, 150)
    plain = web.base

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/to-http":
                self.send_response(302)
                self.send_header("Location", f"{plain}/a.jpg")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()


def test_https_is_not_redirected_to_plain_http(
    tmp_path: Path, emu: Any, s3: S3Bed, tls_web: tuple[str, Path]
) -> None:
    base, cert = tls_web
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{base}/a.jpg\n{base}/to-http\n")
    out = tmp_path / "out.jsonl"
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        output=out,
        env={**LOOPBACK, "SSL_CERT_FILE": str(cert)},
    )
    assert _codes(res.records) == {"a.jpg": None, "to-http": "InsecureRedirect"}, res.stderr

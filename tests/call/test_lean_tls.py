"""call.lean over TLS: the certificate is verified as the SDK would (its CA bundle, the
host name), and a certificate the client does not trust is botocore's SSLError."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aioboto3
import botocore.exceptions as bex
import pytest
from aiobotocore.config import AioConfig

from batchrek.call.lean import open_lean_client
from batchrek.call.retry import botocore_config_kwargs, classify

pytestmark = pytest.mark.anyio

ANSWER = b'{"Labels": [{"Name": "Cat", "Confidence": 99.5}], "LabelModelVersion": "3.0"}'


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost: (cert.pem, key.pem)."""
    pytest.importorskip("cryptography")  # comes with moto[server], the test extra
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
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
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[int, Path, list[bytes]]]:
    """A TLS server on 127.0.0.1 answering every request with ANSWER; (port, CA, heads)."""
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nx-amzn-RequestId: tls-1\r\nContent-Type: "
                    b"application/x-amz-json-1.1\r\nContent-Length: "
                    + str(len(ANSWER)).encode()
                    + b"\r\n\r\n"
                    + ANSWER
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], cert, heads
    server.close()


async def _lean(stack: AsyncExitStack, port: int, verify: str | bool) -> Any:
    sdk = await stack.enter_async_context(
        aioboto3.Session(region_name="us-east-1").client(
            "rekognition",
            endpoint_url=f"https://localhost:{port}",
            verify=verify,
            config=AioConfig(**botocore_config_kwargs(4)),
        )
    )
    return await open_lean_client(sdk, stack, concurrency=4)


async def test_verified_tls_with_the_clients_ca_bundle(
    tls_server: tuple[int, Path, list[bytes]],
) -> None:
    port, ca, heads = tls_server
    async with AsyncExitStack() as stack:
        lean: Any = await _lean(stack, port, str(ca))
        response = await lean.detect_labels(Image={"Bytes": b"x"})
    assert response["Labels"] == [{"Name": "Cat", "Confidence": 99.5}]
    assert response["ResponseMetadata"]["RequestId"] == "tls-1"
    assert f"Host: localhost:{port}".encode() in heads[0]


async def test_untrusted_certificate_is_botocores_ssl_error(
    tls_server: tuple[int, Path, list[bytes]],
) -> None:
    port, _ca, _heads = tls_server
    async with AsyncExitStack() as stack:
        lean: Any = await _lean(stack, port, True)  # the default bundle: not our CA
        with pytest.raises(bex.SSLError) as caught:
            await lean.detect_labels(Image={"Bytes": b"x"})
    assert classify(caught.value).code == "ConnectionError"


async def test_verify_false_is_honoured(tls_server: tuple[int, Path, list[bytes]]) -> None:
    port, _ca, _heads = tls_server
    async with AsyncExitStack() as stack:
        lean: Any = await _lean(stack, port, False)
        response = await lean.detect_labels(Image={"Bytes": b"x"})
    assert response["LabelModelVersion"] == "3.0"

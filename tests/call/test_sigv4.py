"""call.sigv4: the Authorization header is botocore's, byte for byte, for the same
request, credentials and time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aioboto3
import pytest
from aiobotocore.config import AioConfig
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from batchrek.call.sigv4 import Credentials, Signer, amz_date, host_header
from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus
from tests.conftest import NO_RETRIES

FROZEN = dt.datetime(2026, 11, 21, 23, 59, 58, tzinfo=dt.UTC)
STAMP = "20261121T235958Z"


def _botocore_authorization(
    url: str, headers: dict[str, str], body: bytes, creds: Credentials, *, region: str
) -> tuple[str, dict[str, str]]:
    """botocore's SigV4Auth on the same request at FROZEN; (Authorization, headers)."""
    request = AWSRequest(method="POST", url=url, headers=dict(headers), data=body)
    signer = SigV4Auth(
        ReadOnlyCredentials(creds.access_key, creds.secret_key, creds.token), "rekognition", region
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("botocore.auth.get_current_datetime", lambda: FROZEN.replace(tzinfo=None))
        signer.add_auth(request)
    return request.headers["Authorization"], dict(request.headers.items())


CASES = [
    ("http://127.0.0.1:4599/", Credentials("AKIDEXAMPLE", "secret/with+chars", "session-token")),
    ("https://rekognition.us-east-1.amazonaws.com/", Credentials("AKID", "s3cr3t")),
    ("https://rekognition.eu-west-1.amazonaws.com:443/", Credentials("AK", "sk", "t" * 300)),
    ("http://[::1]:8080/prefix/", Credentials("AK", "sk", None)),
    ("https://vpce-1.rekognition.example.com/a/../b/?z=1&a=2", Credentials("AK", "sk", "tok")),
]


@pytest.mark.parametrize(("url", "creds"), CASES)
def test_authorization_equals_botocore(url: str, creds: Credentials) -> None:
    body = b'{"Image": {"Bytes": "AAEC"}, "MaxLabels": 5}'
    signer = Signer(url, region="eu-west-1", service="rekognition")
    headers = {
        "Host": signer.host,
        "X-Amz-Target": "RekognitionService.DetectLabels",
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Date": STAMP,
    }
    if creds.token:
        headers["X-Amz-Security-Token"] = creds.token
    ours = signer.authorization(headers, body, creds, STAMP)
    # botocore adds X-Amz-Date and the token itself and derives Host from the URL.
    given = {k: v for k, v in headers.items() if k not in ("Host", "X-Amz-Date")}
    given.pop("X-Amz-Security-Token", None)
    theirs, signed = _botocore_authorization(url, given, body, creds, region="eu-west-1")
    assert ours == theirs
    assert signed["X-Amz-Date"] == STAMP


def test_whitespace_in_values_and_unsigned_headers_as_botocore() -> None:
    url = "https://rekognition.us-east-1.amazonaws.com/"
    creds = Credentials("AK", "sk", "tok")
    signer = Signer(url, region="us-east-1", service="rekognition")
    headers = {
        "Host": signer.host,
        "X-Amz-Target": "  RekognitionService.DetectText ",
        "Content-Type": "application/x-amz-json-1.1",
        "X-Custom": "a   b\t c",
        "User-Agent": "never signed",
        "X-Amz-Date": STAMP,
        "X-Amz-Security-Token": "tok",
    }
    ours = signer.authorization(headers, b"{}", creds, STAMP)
    given = {k: v for k, v in headers.items() if k not in ("Host", "X-Amz-Date")}
    given.pop("X-Amz-Security-Token")
    theirs, _ = _botocore_authorization(url, given, b"{}", creds, region="us-east-1")
    assert ours == theirs
    assert "user-agent" not in ours


@pytest.mark.anyio
async def test_the_sdks_own_request_signs_the_same(emu: EmulatorHandle) -> None:
    """Sign what the real client sent (its headers, body and X-Amz-Date): same header."""
    sent: list[Any] = []
    session = aioboto3.Session(
        aws_access_key_id="AKIDSDK",
        aws_secret_access_key="sdk/secret",
        aws_session_token="sdk-token",
        region_name="us-east-1",
    )
    config = AioConfig(retries=NO_RETRIES)
    async with session.client("rekognition", endpoint_url=emu.endpoint_url, config=config) as c:
        c.meta.events.register("before-send.rekognition", lambda request, **_: sent.append(request))
        await c.detect_labels(Image={"Bytes": corpus.photo()}, MaxLabels=3)
    (request,) = sent
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    stamp = headers["X-Amz-Date"]
    # What the SDK adds after signing is not signed; Host is the URL's.
    after = ("Authorization", "amz-sdk-invocation-id", "amz-sdk-request", "Content-Length")
    signed = {k: v for k, v in headers.items() if k not in after}
    signer = Signer(request.url, region="us-east-1", service="rekognition")
    signed["Host"] = signer.host
    ours = signer.authorization(
        signed, request.body, Credentials("AKIDSDK", "sdk/secret", "sdk-token"), stamp
    )
    assert ours == headers["Authorization"]


def test_amz_date_is_botocores_format() -> None:
    assert amz_date(FROZEN.timestamp()) == FROZEN.strftime("%Y%m%dT%H%M%SZ") == STAMP
    assert amz_date(FROZEN.timestamp() + 1) == "20261121T235959Z"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://Rekognition.US-East-1.amazonaws.com/", "rekognition.us-east-1.amazonaws.com"),
        ("https://h.example.com:443/", "h.example.com"),
        ("http://h.example.com:80/", "h.example.com"),
        ("http://127.0.0.1:4599", "127.0.0.1:4599"),
        ("https://user:pw@h.example.com:8443/", "h.example.com:8443"),
        ("http://[::1]:80/", "[::1]"),
    ],
)
def test_host_header_as_botocore(url: str, host: str) -> None:
    from botocore.auth import _host_from_url

    assert host_header(url) == host == _host_from_url(url)


def test_signing_key_is_reused_per_day_and_secret() -> None:
    signer = Signer("https://h.example.com/", region="us-east-1", service="rekognition")
    creds = Credentials("AK", "sk")
    for _ in range(3):
        signer.authorization({"Host": signer.host}, b"", creds, STAMP)
    signer.authorization({"Host": signer.host}, b"", Credentials("AK", "rotated"), STAMP)
    assert len(signer._keys) == 2

"""call.lean against the emulator: the same answers and the same errors as the SDK."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import aioboto3
import botocore.exceptions as bex
import orjson
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials

from batchrek.call.credentials import force_refresh
from batchrek.call.lean import LeanClient, open_lean_client
from batchrek.call.retry import botocore_config_kwargs, classify
from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus
from tests.conftest import S3Bed

pytestmark = pytest.mark.anyio

CONCURRENCY = 8


def _config() -> AioConfig:
    return AioConfig(**botocore_config_kwargs(CONCURRENCY))


class Pair:
    """The SDK client and the lean client over it."""

    def __init__(self, sdk: Any, lean: LeanClient) -> None:
        self.sdk = sdk
        self.lean = lean

    async def both(self, method: str, **params: Any) -> tuple[Any, Any]:
        """Each client's result, or the exception it raised."""
        out = []
        for client in (self.sdk, self.lean):
            try:
                out.append(await getattr(client, method)(**params))
            except Exception as exc:
                out.append(exc)
        return out[0], out[1]


async def _pair(stack: AsyncExitStack, endpoint_url: str, transport: str = "http11") -> Pair:
    sdk = await stack.enter_async_context(
        aioboto3.Session(region_name="us-east-1").client(
            "rekognition", endpoint_url=endpoint_url, config=_config()
        )
    )
    lean = await open_lean_client(sdk, stack, concurrency=CONCURRENCY, transport=transport)
    return Pair(sdk, lean)


@pytest.fixture(params=["http11", "aiohttp"])
async def pair(emu: EmulatorHandle, request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """Both transports: batchrek's own HTTP/1.1 and aiohttp (the one used with a proxy)."""
    async with AsyncExitStack() as stack:
        yield await _pair(stack, emu.endpoint_url, request.param)


def _body(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


IMAGE_CALLS = [
    ("detect_labels", {"MaxLabels": 5, "Features": ["GENERAL_LABELS", "IMAGE_PROPERTIES"]}),
    ("detect_faces", {"Attributes": ["ALL"]}),
    ("detect_moderation_labels", {"MinConfidence": 60.5}),
    ("detect_text", {}),
    ("recognize_celebrities", {}),
    (
        "detect_protective_equipment",
        {
            "SummarizationAttributes": {
                "MinConfidence": 80,
                "RequiredEquipmentTypes": ["FACE_COVER"],
            }
        },
    ),
    (
        "detect_custom_labels",
        {"ProjectVersionArn": "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1"},
    ),
]


@pytest.mark.parametrize(("method", "params"), IMAGE_CALLS)
async def test_same_response_as_the_sdk(pair: Pair, method: str, params: dict[str, Any]) -> None:
    image = {"Bytes": corpus.photo(320, 240, box=(0.2, 0.2, 0.6, 0.7))}
    sdk, lean = await pair.both(method, Image=image, **params)
    assert _body(lean) == _body(sdk)
    # Same keys in the same (model) order: the records are the same bytes.
    assert orjson.dumps(_body(lean)) == orjson.dumps(_body(sdk))
    meta = lean["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 200
    assert meta["RequestId"] == meta["HTTPHeaders"]["x-amzn-requestid"]


async def test_collections_and_s3_objects_as_the_sdk(pair: Pair, emu: Any, s3: S3Bed) -> None:
    s3.put(s3.bucket_use1, "lean/face.jpg", corpus.photo(300, 300, box=(0.3, 0.3, 0.6, 0.6)))
    await pair.sdk.create_collection(CollectionId="lean")
    s3image = {"S3Object": {"Bucket": s3.bucket_use1, "Name": "lean/face.jpg"}}
    indexed = await pair.lean.index_faces(CollectionId="lean", Image=s3image, ExternalImageId="x")
    assert indexed["FaceRecords"][0]["Face"]["ExternalImageId"] == "x"
    sdk, lean = await pair.both("search_faces_by_image", CollectionId="lean", Image=s3image)
    assert orjson.dumps(_body(lean)) == orjson.dumps(_body(sdk))
    assert emu.stats()["requests"]["IndexFaces"] == {"ok": 1}


@pytest.mark.parametrize(
    ("image", "code"),
    [
        ({"Bytes": b"not an image at all"}, "InvalidImageFormatException"),
        ({"S3Object": {"Bucket": "no-such-bucket", "Name": "k.jpg"}}, "InvalidS3ObjectException"),
        ({"Bytes": corpus.photo(40, 40)}, "InvalidParameterException"),
    ],
)
async def test_modelled_errors_are_the_clients_classes(
    pair: Pair, image: dict[str, Any], code: str
) -> None:
    sdk, lean = await pair.both("detect_labels", Image=image)
    assert type(lean) is type(sdk) is getattr(pair.sdk.exceptions, code)
    assert isinstance(lean, bex.ClientError)
    assert lean.response["Error"] == sdk.response["Error"]
    assert lean.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert classify(lean) == classify(sdk)


@pytest.mark.parametrize(
    ("settings", "code", "retryable"),
    [
        ({"quota_tps": 0}, "ProvisionedThroughputExceededException", True),
        ({"throttle_rate": 1.0}, "ThrottlingException", True),
        ({"fault_rate": 1.0}, "InternalServerError", True),
    ],
)
async def test_throttles_and_faults_classify_as_on_the_sdk_path(
    pair: Pair, emu: EmulatorHandle, settings: dict[str, Any], code: str, retryable: bool
) -> None:
    emu.configure(**settings)
    sdk, lean = await pair.both("detect_labels", Image={"Bytes": corpus.photo()})
    assert type(lean) is type(sdk)
    assert classify(lean) == classify(sdk)
    assert (classify(lean).code, classify(lean).retryable) == (code, retryable)


async def test_dropped_connection_is_botocores_connection_error(
    pair: Pair, emu: EmulatorHandle
) -> None:
    emu.configure(drop_rate=1.0)
    sdk, lean = await pair.both("detect_labels", Image={"Bytes": corpus.photo()})
    assert isinstance(lean, bex.ConnectionClosedError)
    assert type(lean) is type(sdk)
    assert classify(lean) == classify(sdk)
    assert classify(lean).code == "ConnectionError"


@pytest.mark.parametrize("transport", ["http11", "aiohttp"])
async def test_connection_refused_is_botocores_endpoint_error(transport: str) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AsyncExitStack() as stack:
        pair = await _pair(stack, f"http://127.0.0.1:{port}", transport)
        sdk, lean = await pair.both("detect_labels", Image={"Bytes": b"x"})
    assert isinstance(lean, bex.EndpointConnectionError)
    assert type(lean) is type(sdk)
    assert classify(lean) == classify(sdk)


async def test_no_credentials_is_botocores_error(pair: Pair) -> None:
    pair.lean.signing_credentials = None
    pair.lean.forget_credentials()
    with pytest.raises(bex.NoCredentialsError) as caught:
        await pair.lean.detect_labels(Image={"Bytes": b"x"})
    assert classify(caught.value).code == "NoCredentials"


def _metadata(n: int) -> dict[str, str]:
    expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    return {"access_key": f"AK{n}", "secret_key": "s", "token": f"t{n}", "expiry_time": expiry}


async def test_forced_refresh_signs_the_next_call_with_new_keys(pair: Pair) -> None:
    fetched: list[int] = []

    async def fetch() -> dict[str, str]:
        fetched.append(1)
        return _metadata(len(fetched))

    pair.lean.signing_credentials = AioRefreshableCredentials.create_from_metadata(
        _metadata(0), refresh_using=fetch, method="test"
    )
    pair.lean.forget_credentials()
    sent: list[dict[str, str]] = []
    send = pair.lean._send

    async def capture(headers: dict[str, str], body: bytes) -> Any:
        sent.append(dict(headers))
        return await send(headers, body)

    pair.lean._send = capture
    await pair.lean.detect_text(Image={"Bytes": corpus.photo()})
    assert await force_refresh(pair.lean) is True
    await pair.lean.detect_text(Image={"Bytes": corpus.photo()})
    assert [h["Authorization"].split("/")[0][-3:] for h in sent] == ["AK0", "AK1"]
    assert [h["X-Amz-Security-Token"] for h in sent] == ["t0", "t1"]


async def test_request_is_the_sdks_json_and_headers(pair: Pair) -> None:
    sent: list[tuple[dict[str, str], bytes]] = []
    send = pair.lean._send

    async def capture(headers: dict[str, str], body: bytes) -> Any:
        sent.append((dict(headers), body))
        return await send(headers, body)

    pair.lean._send = capture
    data = corpus.photo()
    await pair.lean.detect_labels(Image={"Bytes": data}, MaxLabels=3, MinConfidence=70.5)
    ((headers, body),) = sent
    import base64
    import json

    assert json.loads(body) == {
        "Image": {"Bytes": base64.b64encode(data).decode()},
        "MaxLabels": 3,
        "MinConfidence": 70.5,
    }
    assert headers["X-Amz-Target"] == "RekognitionService.DetectLabels"
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["User-Agent"] == pair.sdk._user_agent_creator.to_string()
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        in (headers["Authorization"])
    )


async def test_pool_is_sized_like_the_sdks(pair: Pair) -> None:
    send: Any = pair.lean._send
    pool = send.pool if hasattr(send, "pool") else send.http.connector
    assert pool.limit == pair.sdk.meta.config.max_pool_connections >= CONCURRENCY


async def test_endpoint_rules_resolved_once_from_the_client() -> None:
    """No endpoint_url: FIPS and the region come from botocore's ruleset."""
    async with AsyncExitStack() as stack:
        sdk = await stack.enter_async_context(
            aioboto3.Session().client(
                "rekognition",
                region_name="us-west-2",
                config=AioConfig(use_fips_endpoint=True, **botocore_config_kwargs(4)),
            )
        )
        lean = await open_lean_client(sdk, stack, concurrency=4)
    assert lean.url == "https://rekognition-fips.us-west-2.amazonaws.com/"
    assert (lean.signer.region, lean.signer.service) == ("us-west-2", "rekognition")


async def test_unknown_method_is_an_attribute_error(pair: Pair) -> None:
    with pytest.raises(AttributeError):
        pair.lean.not_an_operation  # noqa: B018

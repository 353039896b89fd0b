"""The test bed: real servers on 127.0.0.1, started once per session.

- ``s3``: moto's S3 server (a real S3-protocol server) with one bucket in us-east-1
  (``BUCKET_USE1``) and one in eu-west-1 (``BUCKET_EUW1``).
- ``emulator``: the Rekognition emulator in a thread (region us-east-1, reading
  S3Object images from ``s3``); ``emu`` is the same handle, reset to start-up
  settings with empty stats and collections before each test.
- ``rekognition``: a boto3 client for the emulator that never retries.

No test talks to AWS: the fixtures set fake credentials for the whole session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aiobotocore.config import AioConfig
from botocore.config import Config
from moto.server import ThreadedMotoServer

from batchrek.emulator import EmulatorHandle, EmulatorSettings, run_in_thread

BUCKET_USE1 = "bed-use1"
BUCKET_EUW1 = "bed-euw1"

_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _fake_aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test may reach AWS: fake credentials, no instance metadata, no profiles.
    ``XDG_CACHE_HOME`` points into the session's temp folder, so an S3 output's
    default spool never lands in the home folder of whoever runs the tests."""
    keys = (*_FAKE_ENV, "AWS_PROFILE", "AWS_CONFIG_FILE", "XDG_CACHE_HOME")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(_FAKE_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@dataclass(frozen=True)
class S3Bed:
    endpoint_url: str
    bucket_use1: str = BUCKET_USE1
    bucket_euw1: str = BUCKET_EUW1

    def client(self, region: str = "us-east-1") -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=region)

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=body)


@pytest.fixture(scope="session")
def s3(_fake_aws_env: None) -> Iterator[S3Bed]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    bed = S3Bed(endpoint_url=f"http://{host}:{port}")
    client = bed.client()
    client.create_bucket(Bucket=BUCKET_USE1)
    client.create_bucket(
        Bucket=BUCKET_EUW1, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    yield bed
    server.stop()


# One attempt: a test sees exactly the emulator's answer, never botocore's retries.
NO_RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 1}


def rekognition_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 Rekognition client for the emulator; ``config`` goes to botocore's Config."""
    return boto3.client(
        "rekognition",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=Config(retries=NO_RETRIES, **config),
    )


def aio_rekognition_client(endpoint_url: str, **config: Any) -> Any:
    """An aioboto3 client context manager: ``async with aio_rekognition_client(url) as c``."""
    import aioboto3

    return aioboto3.Session().client(
        "rekognition",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=AioConfig(retries=NO_RETRIES, **config),
    )


@pytest.fixture(scope="session")
def emulator(s3: S3Bed) -> Iterator[EmulatorHandle]:
    settings = EmulatorSettings(
        host="127.0.0.1", port=0, region="us-east-1", s3_endpoint_url=s3.endpoint_url
    )
    with run_in_thread(settings) as handle:
        yield handle


@pytest.fixture
def emu(emulator: EmulatorHandle) -> EmulatorHandle:
    emulator.reset(settings=True)
    return emulator


@pytest.fixture
def rekognition(emu: EmulatorHandle) -> Any:
    return rekognition_client(emu.endpoint_url)

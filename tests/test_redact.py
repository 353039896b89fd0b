"""What may reach a log line or a record's message: no URL credentials, no memory
addresses (batchrek.redact), wherever the text came from."""

from __future__ import annotations

import io
import logging

import pytest

from batchrek.models import ErrorInfo, HttpUrl
from batchrek.observe import ScrubFilter
from batchrek.redact import MAX_MESSAGE_CHARS, redact_url, scrub

SIGNED = (
    "https://b.s3.amazonaws.com/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1&X-Amz-Signature=deadbeef"
    "&X-Amz-Security-Token=tok"
)


def test_userinfo_is_hidden() -> None:
    assert redact_url("http://admin:hunter2@push:9091/metrics") == "http://***@push:9091/metrics"


def test_presigned_url_keeps_its_shape_but_not_its_secrets() -> None:
    shown = redact_url(SIGNED)
    assert "deadbeef" not in shown
    assert "AKIAEXAMPLE" not in shown
    assert "tok" not in shown.split("?", 1)[1].replace("Token", "")
    assert shown.startswith("https://b.s3.amazonaws.com/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256")


@pytest.mark.parametrize("param", ["token", "password", "api_key", "sig", "access_token"])
def test_secret_query_parameters_are_hidden(param: str) -> None:
    assert redact_url(f"https://h/p?a=1&{param}=s3cr3t&b=2") == f"https://h/p?a=1&{param}=***&b=2"


def test_a_url_inside_free_text_is_redacted() -> None:
    text = f"ClientConnectorError: Cannot connect to host {SIGNED} ssl:default"
    assert "deadbeef" not in scrub(text)


def test_memory_addresses_are_removed() -> None:
    text = "cannot identify image file <_io.BytesIO object at 0x7f3a2b1c0e50>"
    assert scrub(text) == "cannot identify image file <_io.BytesIO>"


def test_messages_are_bounded() -> None:
    assert len(scrub("x" * 10 * MAX_MESSAGE_CHARS)) == MAX_MESSAGE_CHARS


def test_every_error_message_is_scrubbed() -> None:
    info = ErrorInfo("DownloadFailed", f"HTTP 500 for {SIGNED} <X object at 0xdeadbeef>")
    assert "deadbeef" not in info.message


def test_a_url_source_is_shown_without_its_credentials() -> None:
    assert "deadbeef" not in str(HttpUrl(SIGNED))
    assert HttpUrl(SIGNED).url == SIGNED  # what is fetched is the real URL


def test_log_lines_are_scrubbed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubFilter())
    logger = logging.getLogger("batchrek.test-redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("could not push metrics to %s", "http://user:pw@push:9091")
    finally:
        logger.removeHandler(handler)
    assert "pw@" not in stream.getvalue()
    assert "***@push:9091" in stream.getvalue()


def test_forget_frames_drops_every_traceback_in_the_chain() -> None:
    from batchrek.errors import ItemError, forget_frames

    def fail() -> None:
        try:
            raise OSError("inner")
        except OSError as inner:
            raise ItemError("CorruptImage", "outer") from inner

    try:
        fail()
    except ItemError as exc:
        forget_frames(exc)
        chain = [exc, exc.__cause__]
    assert [e.__traceback__ for e in chain if e is not None] == [None, None]

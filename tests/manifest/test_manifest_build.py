"""The fast Item/S3Ref constructors must stay indistinguishable from the real ones."""

from __future__ import annotations

import dataclasses

import pytest

from batchrek.manifest import SourceSyntaxError, parse_source
from batchrek.manifest._build import make_item, make_s3ref, to_source
from batchrek.models import Item, S3Ref


def test_fast_constructors_fill_every_field() -> None:
    # If a field is added to Item or S3Ref, _build must learn it too.
    assert [f.name for f in dataclasses.fields(Item)] == [
        "id",
        "source",
        "size",
        "etag",
        "meta",
        "line",
    ]
    assert [f.name for f in dataclasses.fields(S3Ref)] == ["bucket", "key", "version"]


@pytest.mark.parametrize("cls", [Item, S3Ref])
def test_models_have_no_post_init_to_skip(cls: type) -> None:
    assert not hasattr(cls, "__post_init__")


def test_make_item_equals_item() -> None:
    ref = make_s3ref("b", "k.jpg", "v1")
    made = make_item("id", ref, 5, "e", {"a": 1}, 3)
    assert (made, hash(ref)) == (
        Item("id", S3Ref("b", "k.jpg", "v1"), 5, "e", {"a": 1}, 3),
        hash(S3Ref("b", "k.jpg", "v1")),
    )


def test_made_items_stay_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_item("id", make_s3ref("b", "k", None), None, None, None, 1).id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "s3://b/k.jpg",
        "s3://b/a/b/c d.jpg",
        "s3://b/k.jpg?versionId=v1",
        "s3://b/k.jpg?x=1",
        "s3://b/k.jpg  ",
        "s3://b//k.jpg",
        "  s3://b/k.jpg",
        "s3://b/k.jpg\u3000",
        "s3://b/k.jpg?versionId=v1&x=2",
        "s3://b/k?.jpg",
        "https://h/x.png",
        "rel/x.jpg",
    ],
)
def test_to_source_agrees_with_parse_source(text: str) -> None:
    assert to_source(text, "/base") == parse_source(text, base_dir="/base")


@pytest.mark.parametrize(
    "text", ["s3://b", "s3://b/", "s3:///k.jpg", "s3://", "s3:///", "ftp://h/x.jpg", ""]
)
def test_to_source_rejects_what_parse_source_rejects(text: str) -> None:
    with pytest.raises(SourceSyntaxError):
        to_source(text or " ", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s3://b", "s3 URI needs a bucket and a key: 's3://b'"),
        ("s3:///k.jpg", "s3 URI needs a bucket and a key: 's3:///k.jpg'"),
    ],
)
def test_s3_errors_keep_the_s3uri_message(text: str, message: str) -> None:
    with pytest.raises(SourceSyntaxError) as caught:
        to_source(text, None)
    assert str(caught.value) == message

"""Format detection: the name first, the first bytes second."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrek.errors import ManifestUnreadable
from batchrek.manifest import detect_format

INVENTORY_HEAD = b'{"sourceBucket": "src", "fileFormat": "CSV", "fileSchema": "Bucket, Key"}'


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("m.jsonl", "jsonl"),
        ("m.ndjson", "jsonl"),
        ("output.manifest", "jsonl"),
        ("m.csv", "csv"),
        ("m.txt", "txt"),
        ("M.TXT.GZ", "txt"),
        ("s3://b/lists/m.csv.gz", "csv"),
        ("s3://b/inv/2024-01-01T00-00Z/manifest.json", "inventory"),
        ("s3://b/prefix/", "s3prefix"),
        ("s3://b", "s3prefix"),
        ("s3://b/", "s3prefix"),
    ],
)
def test_name_decides(spec: str, expected: str) -> None:
    assert detect_format(spec, b"") == expected


def test_directory_is_dir(tmp_path: Path) -> None:
    assert detect_format(str(tmp_path), b"") == "dir"


def test_name_beats_content() -> None:
    assert detect_format("m.txt", b'{"image": "s3://b/k.jpg"}\n') == "txt"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'{"image": "s3://b/k.jpg"}\n', "jsonl"),
        (b"# my list\n\ns3://b/k.jpg\n", "txt"),
        (b"/data/a,b.jpg\n", "txt"),
        (b"image,label\ns3://b/k.jpg,cat\n", "csv"),
        (b"my-bucket,photos/a.jpg\n", "csv"),
        (b'"my-bucket","photos/a.jpg","v1"\n', "csv"),
        (b"", "txt"),
    ],
)
def test_content_decides_when_the_name_says_nothing(head: bytes, expected: str) -> None:
    assert detect_format("s3://b/list", head) == expected


def test_inventory_is_recognised_by_content() -> None:
    assert detect_format("/tmp/inv-2024.json", INVENTORY_HEAD) == "inventory"


@pytest.mark.parametrize("head", [b"ORC\x0a\x00", b"PAR1\x15\x04", b"\xff\xd8\xff\xe0", b"a\x00b"])
def test_binary_content_is_unreadable(head: bytes) -> None:
    with pytest.raises(ManifestUnreadable, match="binary"):
        detect_format("s3://b/data", head)


def test_json_array_is_unreadable_with_a_hint() -> None:
    with pytest.raises(ManifestUnreadable, match="JSON Lines"):
        detect_format("images.json", b'[{"image": "s3://b/k.jpg"}]')


@pytest.mark.parametrize("spec", ["s3:///m.txt", "s3://"])
def test_s3_spec_without_bucket_is_unreadable(spec: str) -> None:
    with pytest.raises(ManifestUnreadable, match="names no bucket"):
        detect_format(spec, b"")

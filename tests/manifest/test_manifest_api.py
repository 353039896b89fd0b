"""The manifest package's public surface stays what the rest of batchrek imports."""

from __future__ import annotations

import batchrek.manifest as manifest


def test_public_api_is_exactly_all() -> None:
    public = {name for name in vars(manifest) if not name.startswith("_")} - {"annotations"}
    assert public == set(manifest.__all__)


def test_all_names_the_documented_entry_points() -> None:
    assert set(manifest.__all__) == {
        "BAD_SHARE_AFTER",
        "FORMATS",
        "IMAGE_EXTENSIONS",
        "ReadOptions",
        "S3ClientLike",
        "SeenIds",
        "Selection",
        "SkipCounter",
        "SourceSyntaxError",
        "detect_format",
        "parse_source",
        "read_manifest",
        "shard_of",
    }

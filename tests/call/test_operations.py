from __future__ import annotations

import pytest

from batchrek.call.operations import build_operations, trim_response
from batchrek.errors import ConfigError
from batchrek.limits import BYTES_CAP_SMALL

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1"


def test_required_parameter_missing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CollectionId"):
        build_operations(["search_faces_by_image"], {})


def test_unknown_parameter_lists_the_real_ones() -> None:
    with pytest.raises(ConfigError, match="MaxLabels"):
        build_operations(["detect_labels"], {"detect_labels": {"MaxLabel": 3}})


def test_parameter_of_the_wrong_type_is_caught_by_botocore_model() -> None:
    with pytest.raises(ConfigError, match="invalid"):
        build_operations(["detect_labels"], {"detect_labels": {"MaxLabels": "ten"}})


def test_capped_operations_get_the_4mb_limit() -> None:
    (op,) = build_operations(
        ["detect_custom_labels"], {"detect_custom_labels": {"ProjectVersionArn": ARN}}
    )
    assert op.limits.bytes_cap == BYTES_CAP_SMALL


def test_repeated_operation_runs_once() -> None:
    assert len(build_operations(["detect_text", "detect_text"], {})) == 1


def test_index_faces_uses_the_item_id_as_external_id() -> None:
    (op,) = build_operations(["index_faces"], {"index_faces": {"CollectionId": "c"}})
    request = op.request({"Bytes": b"x"}, item_id="s3://b/a b.jpg")
    assert request["ExternalImageId"] == "s3:__b_a_b.jpg"


def test_response_metadata_is_trimmed() -> None:
    assert trim_response({"Labels": [], "ResponseMetadata": {"RequestId": "x"}}) == {"Labels": []}

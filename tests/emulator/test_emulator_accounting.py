"""The stats endpoint proves what was asked and what was billed, per image."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from batchrek.emulator import EmulatorControlError, EmulatorHandle
from batchrek.testing import corpus

PHOTO = corpus.photo(320, 240)
DIGEST = hashlib.sha256(PHOTO).hexdigest()


def test_requests_are_counted_by_operation_and_outcome(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    rekognition.detect_labels(Image={"Bytes": PHOTO})
    with pytest.raises(rekognition.exceptions.InvalidImageFormatException):
        rekognition.detect_labels(Image={"Bytes": corpus.text_named_jpg()})
    assert emu.stats()["requests"] == {"DetectLabels": {"ok": 1, "InvalidImageFormatException": 1}}


def test_analyses_are_keyed_by_the_bytes_sha256(emu: EmulatorHandle, rekognition: Any) -> None:
    rekognition.detect_text(Image={"Bytes": PHOTO})
    rekognition.detect_text(Image={"Bytes": PHOTO})
    assert emu.analyses("DetectText") == {DIGEST: 2}


def test_input_modes_are_counted(emu: EmulatorHandle, rekognition: Any) -> None:
    rekognition.detect_text(Image={"Bytes": PHOTO})
    assert emu.stats()["inputs"] == {"DetectText": {"bytes": 1}}


def test_compare_faces_bills_both_images(emu: EmulatorHandle, rekognition: Any) -> None:
    other = corpus.photo(400, 300)
    rekognition.compare_faces(SourceImage={"Bytes": PHOTO}, TargetImage={"Bytes": other})
    assert set(emu.analyses("CompareFaces")) == {DIGEST, hashlib.sha256(other).hexdigest()}


def test_throttled_calls_are_not_billed(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(throttle_rate=1.0)
    with pytest.raises(rekognition.exceptions.ThrottlingException):
        rekognition.detect_labels(Image={"Bytes": PHOTO})
    assert emu.stats()["analyses"] == {}


def test_reset_clears_stats(emu: EmulatorHandle, rekognition: Any) -> None:
    rekognition.detect_labels(Image={"Bytes": PHOTO})
    emu.reset()
    assert emu.stats()["total_requests"] == 0


def test_reset_clears_collections(emu: EmulatorHandle, rekognition: Any) -> None:
    rekognition.create_collection(CollectionId="gone")
    emu.reset()
    assert rekognition.list_collections()["CollectionIds"] == []


def test_reset_with_settings_restores_start_up_settings(emu: EmulatorHandle) -> None:
    emu.configure(fault_rate=0.5, quota_tps=3)
    emu.reset(settings=True)
    assert (emu.settings()["fault_rate"], emu.settings()["quota_tps"]) == (0.0, None)


def test_configure_returns_the_new_settings(emu: EmulatorHandle) -> None:
    assert emu.configure(latency_ms=25)["latency_ms"] == 25


def test_unknown_setting_is_refused(emu: EmulatorHandle) -> None:
    with pytest.raises(EmulatorControlError):
        emu.configure(region="eu-west-1")


def test_impossible_value_is_refused(emu: EmulatorHandle) -> None:
    with pytest.raises(EmulatorControlError):
        emu.configure(fault_rate=2.0)


def test_an_unknown_setting_is_named_as_unknown_with_the_known_ones(emu: EmulatorHandle) -> None:
    with pytest.raises(EmulatorControlError, match=r"unknown setting\(s\): quota;.* quota_tps"):
        emu.configure(quota=20)


def test_a_start_up_setting_is_named_as_fixed(emu: EmulatorHandle) -> None:
    with pytest.raises(EmulatorControlError, match="cannot change region at run time"):
        emu.configure(region="eu-west-1")

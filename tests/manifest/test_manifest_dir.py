"""A local directory as the manifest: walked, sorted, images only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from batchrek.errors import ManifestUnreadable
from batchrek.manifest import _localdir, read_manifest
from batchrek.models import Item, LocalPath, ManifestProblem

pytestmark = pytest.mark.anyio


async def _read(root: Path, **kwargs: str) -> list[Item | ManifestProblem]:
    return [record async for record in read_manifest(str(root), **kwargs)]  # type: ignore[arg-type]


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _relative(records: list[Item | ManifestProblem], root: Path) -> list[str]:
    return [os.path.relpath(r.id, root) for r in records]


async def test_walk_is_sorted_files_first_then_subfolders(tmp_path: Path) -> None:
    _touch(tmp_path, "b.jpg", "a.png", "z/2.jpg", "m/1.jpg", "m/0/x.jpg")
    assert _relative(await _read(tmp_path), tmp_path) == [
        "a.png",
        "b.jpg",
        "m/1.jpg",
        "m/0/x.jpg",
        "z/2.jpg",
    ]


async def test_only_image_extensions_any_case(tmp_path: Path) -> None:
    _touch(tmp_path, "a.JPG", "b.heic", "c.txt", "d", "e.jpg.json", "f.TiFf")
    assert _relative(await _read(tmp_path), tmp_path) == ["a.JPG", "b.heic", "f.TiFf"]


async def test_hidden_files_and_folders_are_skipped(tmp_path: Path) -> None:
    _touch(tmp_path, ".a.jpg", ".thumbs/b.jpg", "c.jpg")
    assert _relative(await _read(tmp_path), tmp_path) == ["c.jpg"]


async def test_item_carries_path_source_and_ordinal(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg", "b.jpg")
    expected = str(tmp_path / "b.jpg")
    assert (await _read(tmp_path))[1] == Item(expected, LocalPath(expected), line=2)


async def test_symlink_cycle_is_walked_once(tmp_path: Path) -> None:
    _touch(tmp_path, "sub/a.jpg")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert _relative(await _read(tmp_path), tmp_path) == ["sub/a.jpg"]


async def test_walk_spans_several_thread_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_localdir, "BATCH", 3)
    _touch(tmp_path, *(f"{i:02d}.jpg" for i in range(10)))
    assert [r.line for r in await _read(tmp_path)] == list(range(1, 11))


async def test_forced_dir_on_a_file_is_unreadable(tmp_path: Path) -> None:
    _touch(tmp_path, "m.txt")
    with pytest.raises(ManifestUnreadable, match="not a directory"):
        await _read(tmp_path / "m.txt", fmt="dir")


async def test_unlistable_subfolder_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(tmp_path, "a.jpg", "locked/b.jpg")
    real_scandir = os.scandir

    def scandir(path: str) -> Any:
        if path.endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    records = await _read(tmp_path)
    assert [type(r).__name__ for r in records] == ["Item", "ManifestProblem"]


async def test_unlistable_root_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def scandir(path: str) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ManifestUnreadable, match="Permission denied"):
        await _read(tmp_path)


async def _read_counting(root: Path, **options: Any) -> tuple[list[str], dict[str, int]]:
    from batchrek.manifest import ReadOptions

    skipped: dict[str, int] = {}

    def count(reason: str, n: int) -> None:
        skipped[reason] = skipped.get(reason, 0) + n

    opts = ReadOptions(on_skip=count, **options)
    records = [r async for r in read_manifest(str(root), options=opts)]
    return _relative(records, root), skipped


async def test_real_image_extensions_are_listed(tmp_path: Path) -> None:
    _touch(tmp_path, "a.apng", "b.avifs", "c.jfif", "d.jpe", "e.JPG")
    names, _ = await _read_counting(tmp_path)
    assert names == ["a.apng", "b.avifs", "c.jfif", "d.jpe", "e.JPG"]


async def test_skipped_files_are_counted_with_their_reason(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg", "notes.txt", "data.json", ".hidden.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    names, skipped = await _read_counting(tmp_path)
    assert names == ["a.jpg"]
    assert skipped == {
        "not_an_image_extension": 2,
        "hidden": 1,
        "not_a_regular_file": 1,
        "broken_symlink": 1,
    }


async def test_a_symlink_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    _touch(root, "in.jpg")
    _touch(outside, "secret.jpg", "deep/more.jpg")
    (root / "link.jpg").symlink_to(outside / "secret.jpg")
    (root / "linked-dir").symlink_to(outside)
    names, skipped = await _read_counting(root)
    assert (names, skipped) == (["in.jpg"], {"symlink_outside_root": 2})


async def test_follow_outside_symlinks_follows_them(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    _touch(root, "in.jpg")
    _touch(outside, "secret.jpg")
    (root / "link.jpg").symlink_to(outside / "secret.jpg")
    names, _ = await _read_counting(root, follow_outside_symlinks=True)
    assert names == ["in.jpg", "link.jpg"]


async def test_a_symlink_inside_the_root_is_followed(tmp_path: Path) -> None:
    _touch(tmp_path, "sub/a.jpg")
    (tmp_path / "alias.jpg").symlink_to(tmp_path / "sub" / "a.jpg")
    names, skipped = await _read_counting(tmp_path)
    assert (names, skipped) == (["alias.jpg", "sub/a.jpg"], {})


async def test_a_name_that_is_not_utf8_gets_a_writable_id_and_keeps_its_path(
    tmp_path: Path,
) -> None:
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    [item] = await _read(tmp_path)
    assert isinstance(item, Item)
    assert isinstance(item.source, LocalPath)
    assert item.id.endswith("caf\\xe9.jpg")
    assert item.id.encode("utf-8")  # writable as JSON
    assert os.fsencode(item.source.path) == raw  # still readable

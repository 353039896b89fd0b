"""Local files written safely: exclusive temporary files beside the target, atomic
replacement, a symlink's target replaced (the link stays), probes that change nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from batchrek import safefile
from batchrek.safefile import atomic_write, probe_writable, same_file, temp_beside


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    with open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith("Umask:")).split()[1], 8)


def test_atomic_write_creates_a_file_with_the_usual_mode(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "m.json"
    atomic_write(str(target), b"{}\n")
    assert (target.read_bytes(), _mode(target)) == (b"{}\n", 0o666 & ~_umask())


def test_atomic_write_keeps_an_existing_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write(str(target), b"new")
    assert (target.read_bytes(), _mode(target)) == (b"new", 0o640)


def test_atomic_write_through_a_symlink_replaces_the_target_and_keeps_the_link(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real.prom"
    real.write_bytes(b"old")
    link = tmp_path / "batchrek.prom"
    link.symlink_to(real)
    atomic_write(str(link), b"new")
    assert (link.is_symlink(), real.read_bytes()) == (True, b"new")


def test_a_failed_atomic_write_leaves_the_target_whole_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m.json"
    target.write_bytes(b"old")

    def broken(fd: int, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safefile, "write_all", broken)
    with pytest.raises(OSError, match="No space"):
        atomic_write(str(target), b"new")
    assert (target.read_bytes(), sorted(p.name for p in tmp_path.iterdir())) == (
        b"old",
        ["m.json"],
    )


def test_temp_beside_is_a_new_file_named_after_its_target(tmp_path: Path) -> None:
    fd, tmp = temp_beside(str(tmp_path / "out.jsonl"), "compact")
    os.close(fd)
    name = os.path.basename(tmp)
    assert (os.path.dirname(tmp), name.startswith(".out.jsonl.compact-")) == (
        str(tmp_path),
        True,
    )


def test_temp_beside_opens_exclusively_without_following_symlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777) -> int:
        seen.append(flags)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    fd, _ = temp_beside(str(tmp_path / "out.jsonl"), "write")
    os.close(fd)
    assert seen
    assert all(f & os.O_CREAT and f & os.O_EXCL and f & os.O_NOFOLLOW for f in seen)


def test_temp_beside_takes_another_name_when_one_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    names = iter(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"])
    monkeypatch.setattr(safefile.secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".out.jsonl.write-aaaaaaaaaaaaaaaa.tmp").symlink_to(victim)
    fd, tmp = temp_beside(str(tmp_path / "out.jsonl"), "write")
    os.write(fd, b"ours")
    os.close(fd)
    assert (os.path.basename(tmp), victim.read_bytes()) == (
        ".out.jsonl.write-bbbbbbbbbbbbbbbb.tmp",
        b"precious",
    )


def test_probe_makes_the_folder_and_leaves_nothing_else(tmp_path: Path) -> None:
    probe_writable(str(tmp_path / "a" / "b" / "out.jsonl"), probe_bytes=4096)
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == []


def test_probe_leaves_an_existing_file_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"x\n")
    before = out.stat()
    probe_writable(str(out), probe_bytes=4096)
    after = out.stat()
    assert (out.read_bytes(), after.st_mtime_ns, after.st_ino) == (
        b"x\n",
        before.st_mtime_ns,
        before.st_ino,
    )


def _under_a_file(folder: Path, *parts: str) -> Path:
    (folder / "f").write_text("x")
    return folder.joinpath("f", *parts)


@pytest.mark.parametrize(
    ("parts", "error"),
    [((), IsADirectoryError), (("out.jsonl",), FileExistsError), (("d", "o"), NotADirectoryError)],
    ids=["a-folder", "under-a-file", "deeper-under-a-file"],
)
def test_probe_refuses_what_cannot_be_written(
    tmp_path: Path, parts: tuple[str, ...], error: type[OSError]
) -> None:
    path = _under_a_file(tmp_path, *parts) if parts else tmp_path
    with pytest.raises(error):
        probe_writable(str(path))


def test_same_file_sees_through_links_and_spellings(tmp_path: Path) -> None:
    real = tmp_path / "m.jsonl"
    real.write_text("x")
    (tmp_path / "link").symlink_to(real)
    os.link(real, tmp_path / "hard")
    (tmp_path / "sub").mkdir()
    names = [tmp_path / "link", tmp_path / "hard", tmp_path / "sub" / ".." / "m.jsonl"]
    assert [same_file(str(n), str(real)) for n in names] == [True, True, True]
    assert same_file(str(tmp_path / "missing"), str(real)) is False


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".sqlite"])
def test_an_export_through_a_symlink_replaces_its_target_and_leaves_no_temp(
    tmp_path: Path, suffix: str
) -> None:
    import anyio
    import orjson

    from batchrek.export import export_current

    out = tmp_path / "out.jsonl"
    record = {"id": "a", "source": "a.jpg", "operation": "detect_labels", "status": "ok"}
    out.write_bytes(orjson.dumps({**record, "response": {"Labels": []}, "error": None}) + b"\n")
    real = tmp_path / "exports" / f"current{suffix}"
    real.parent.mkdir()
    real.write_bytes(b"last night's export")
    link = tmp_path / f"current{suffix}"
    link.symlink_to(real)
    anyio.run(export_current, [str(out)], str(link))
    leftovers = [p.name for p in real.parent.iterdir() if p.name.startswith(".")]
    assert (link.is_symlink(), real.read_bytes() != b"last night's export", leftovers) == (
        True,
        True,
        [],
    )

"""Local files written safely: the one place batchrek creates a temporary file or
replaces a file it does not append to.

- A temporary file is created beside its target under a random name with
  ``O_CREAT | O_EXCL | O_NOFOLLOW``: it is always a new file of ours, never an existing
  file or the target of a symlink someone left at that name. Its mode is 0666 less
  the umask, like every file batchrek creates (a node exporter or a dashboard user
  must be able to read the metrics); a replaced file keeps its own mode.
- A replacement is a write to such a temporary file, fsync, then ``os.replace`` over the
  target, then fsync of the directory: readers see the old file or the new one, never
  half, and a crash keeps one of them.
- A target that is a symlink is resolved first, so the file it points to is replaced
  and the link stays a link (``os.replace`` over the link itself would silently turn it
  into a regular file and leave its old target stale).

Only ``OSError`` leaves here; callers say what the path was for.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat

__all__ = [
    "atomic_write",
    "fsync_dir",
    "probe_writable",
    "same_file",
    "temp_beside",
    "write_all",
]

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def temp_beside(path: str, tag: str) -> tuple[int, str]:
    """A new, exclusive temporary file in ``path``'s folder:
    ``.<name>.<tag>-<16 hex>.tmp``. Returns its open descriptor and its path."""
    folder, name = os.path.split(path)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{tag}-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, _CREATE, 0o666), tmp
        except FileExistsError:
            continue  # taken (by a file or a symlink): another name
    raise FileExistsError(17, "no free temporary name", os.path.join(folder, f".{name}.{tag}"))


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: str) -> None:
    """Make a create, rename or truncate itself durable (POSIX needs the directory)."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` (through a symlink: its target) with ``data``, atomically. A new
    file gets mode 0666 less the umask; an existing one keeps its mode."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = temp_beside(target, "write")
    try:
        try:
            write_all(fd, data)
            if mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(folder)


def probe_writable(path: str, *, probe_bytes: int = 0) -> None:
    """Raise the ``OSError`` a write of ``path`` would meet, without changing it.

    Makes the missing parent folders (a run would make them too), refuses a folder,
    opens an existing file for appending (its own permission; nothing is written to it)
    and creates, fills with ``probe_bytes`` zero bytes, fsyncs and removes a temporary
    file beside it (the folder's permission, a read-only mount, a disk already full)."""
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise IsADirectoryError(21, "Is a directory", path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.exists(target):
        os.close(os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
    fd, tmp = temp_beside(target, "probe")
    try:
        if probe_bytes:
            write_all(fd, bytes(probe_bytes))
            os.fsync(fd)
    finally:
        os.close(fd)
        _unlink_quietly(tmp)


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: through symlinks, hard links and relative paths."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)

"""The local spool of an S3 output: what a SIGKILL would otherwise lose.

An S3 object appears whole or not at all, so without a spool the records of the
open part file live only in memory until the part is completed (``part_seconds``,
60 s by default): a SIGKILL loses them, and the rerun pays for those calls again
(up to a minute of work, thousands of calls at a raised quota). With the spool each
record also goes to a local file named like its part, handed to the OS as the file
output's records are (as soon as the writer is idle) and fsynced once a second; the
file is deleted when its part is completed on S3. A SIGKILL then loses only the
calls in flight, as with ``-o file.jsonl``.

Layout: ``<spool_dir>/<sha256(output uri)[:16]>/part-<stamp>-<shard>-<seq>.jsonl``,
plus ``output.txt`` naming the URI and one ``.lock-<shard>`` per shard, held
(``flock``) while a run writes that shard, so two runs on one machine never share it.

Recovery, when the next run opens the same output (before resume reads it): every
leftover spool file of its shard whose part object does not exist is uploaded as
that part object (a torn last line is left for resume to cut, as in any part), then
deleted; a spool file whose part exists was completed before the kill and is just
deleted (the completed object holds every record of its part).

Why a spool and not shorter parts: measured with ``scripts/bench_kill.py`` (20k
pairs, 5 SIGKILLs at full load, concurrency 64), the extra calls per kill were 1,262
with 60 s parts and no spool, 673 with 2 s parts and no spool, 61 with the spool
(62 for ``-o file.jsonl``). Short parts still lose up to a part's age of calls and
make tens of thousands of objects a day per shard for every reader and every resume
to list; the spool loses only the calls in flight and leaves the parts as they were.

The spool needs a local disk that outlives the process: a container restart keeps an
``emptyDir``; a replacement pod needs a persistent volume (README, "Running in
Kubernetes"). Without one the run still works and a kill re-bills the open part.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from dataclasses import dataclass

import anyio

from batchrek.errors import ConfigError
from batchrek.output.file import JsonlFileSink

__all__ = ["Spool", "SpoolFile"]


@dataclass
class SpoolFile:
    """One open part's local copy."""

    name: str  # the part file name, relative to the output prefix
    path: str
    sink: JsonlFileSink


class Spool:
    """The spool folder of one output and shard (see the module doc)."""

    def __init__(self, root: str, uri: str, shard: str) -> None:
        self.uri = uri
        self.shard = shard
        self.dir = os.path.join(root, hashlib.sha256(uri.encode()).hexdigest()[:16])
        self._lock_fd: int | None = None

    def open(self, *, required: bool = True) -> bool:
        """Create the folder and take this shard's lock. Blocking: call in a thread.

        A folder that cannot be used is a ConfigError when ``required`` (the user named
        it); otherwise False: the output runs without a spool, as before it existed (a
        read-only root file system must not stop a run). A lock held by another run
        is always a ConfigError."""
        try:
            os.makedirs(self.dir, exist_ok=True)
            with open(os.path.join(self.dir, "output.txt"), "w", encoding="utf-8") as fh:
                fh.write(self.uri + "\n")
            fd = os.open(
                os.path.join(self.dir, f".lock-{self.shard}"),
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                0o644,
            )
        except OSError as exc:
            if not required:
                return False
            raise ConfigError(
                f"cannot use the spool folder {self.dir} for {self.uri} ({exc.strerror}): set "
                "spool_dir (BATCHREK_SPOOL_DIR) to a writable local folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"another batchrek run on this machine is writing {self.uri} (shard "
                f"{self.shard}; its spool {self.dir} is locked): let it finish, or stop it"
            ) from None
        self._lock_fd = fd
        return True

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def start(self, name: str) -> SpoolFile:
        """A new spool file for the part ``name`` (no disk access until written)."""
        path = os.path.join(self.dir, name)
        return SpoolFile(name=name, path=path, sink=JsonlFileSink(path, truncate=True))

    async def finish(self, spooled: SpoolFile) -> None:
        """Its part is completed on S3: close and delete the local copy."""
        await spooled.sink.aclose()
        await anyio.to_thread.run_sync(_unlink, spooled.path)

    def leftovers(self) -> list[str]:
        """Part names of spool files a killed run left for this shard, oldest first.
        Blocking: call in a thread."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        ours = re.compile(rf"part-[0-9A-Za-z]+-{re.escape(self.shard)}-\d+\.jsonl")
        return sorted(n for n in names if ours.fullmatch(n))

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def __repr__(self) -> str:
        return f"Spool({self.dir!r}, shard={self.shard!r})"


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

"""One writer per store: an advisory ``flock`` on a file beside the store.

The lock lives beside the store (``tokens.zarr.lock``), not inside it, so plain Zarr readers
never see a foreign file. ``flock`` is released by the kernel when the holder dies, even by
SIGKILL, so a crashed run never leaves a stale lock behind. The lock file itself is kept:
deleting it while another process waits on it would let two writers hold two different files.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from ..errors import StoreLockedError


def lock_path(store_path: str | os.PathLike) -> Path:
    store = Path(store_path)
    return store.with_name(store.name + ".lock")


class StoreLock:
    """Context manager holding the exclusive write lock of a store."""

    def __init__(self, store_path: str | os.PathLike) -> None:
        self.path = lock_path(store_path)
        self._fd: int | None = None

    def acquire(self) -> "StoreLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreLockedError(
                f"{self.path.with_suffix('')} is being written by {holder}; wait for it to "
                "finish (or stop it) and rerun: the store resumes where it stopped"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

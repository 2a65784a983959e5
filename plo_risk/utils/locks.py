"""One exclusive lock file per shared resource (an output folder, a registry).

``flock`` on a file beside the resource: the kernel releases it when its holder
exits or is killed, so a crashed run never leaves a stale lock. The file holds the
holder's pid, for the message of whoever is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["LockHeld", "exclusive_lock"]


class LockHeld(RuntimeError):
    """The lock is held by another process (``pid``, or "?" when unknown)."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is held by pid {pid}")
        self.path = path
        self.pid = pid


@contextlib.contextmanager
def exclusive_lock(
    path: str | os.PathLike,
    *,
    wait_seconds: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created when missing).

    Parameters
    ----------
    path : str or PathLike
        The lock file.
    wait_seconds : float, default=0
        How long to wait for another holder; 0 refuses at once.
    on_wait : callable, default=None
        Called once with the holder's pid when the lock has to be waited for.

    Raises
    ------
    LockHeld
        Another process still holds it after ``wait_seconds``.
    OSError
        The lock file cannot be created.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                if time.monotonic() >= deadline:
                    raise LockHeld(path, holder) from None
                if on_wait is not None and not waited:
                    on_wait(holder)
                waited = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock

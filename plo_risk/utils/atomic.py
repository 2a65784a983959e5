"""Atomic file writes: nothing half-written ever sits under a final name."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Temporary names look like ".<name>.tmp-<pid>": hidden, and recognisable as
# leftovers of a killed process (see TEMP_GLOB).
TEMP_GLOB = ".*.tmp-*"
# errno values that mean the disk (or the user's quota) is full.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DiskFullError(OSError):
    """A write failed because the disk or quota is full; nothing half-written was
    left under the final name."""


def disk_full_message(path: str | os.PathLike, exc: OSError) -> str:
    """One line for a full disk: where, how much is free, and what to do."""
    path = Path(path)
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return (
        f"{path}: cannot write, the disk is full ({exc.strerror or exc}; {free}). "
        "Nothing half-written was left under that name; free some space and run "
        "again (a scoring run resumes from its finished parts)"
    )


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to ``path`` when the block ends.

    Write the file to the yielded path. When the block succeeds the file replaces
    ``path`` in one rename (``os.replace``); when it raises, the temporary file is
    removed and ``path`` is untouched. The parent folder is created.

    Parameters
    ----------
    path : str or PathLike
        The final name.
    fsync : bool, default=False
        Flush the file to disk before the rename (a crash right after the rename
        then cannot leave an empty file under the final name).

    Raises
    ------
    DiskFullError
        The disk or quota filled up while writing (ENOSPC, EDQUOT, EFBIG), with a
        message that says so in one line.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno not in DISK_FULL or isinstance(exc, DiskFullError):
            raise
        raise DiskFullError(exc.errno, disk_full_message(path, exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)

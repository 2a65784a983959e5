"""The one lock helper (output folders, champion promotion)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from plo_risk.utils.locks import LockHeld, exclusive_lock

_TRY = """
import sys
from plo_risk.utils.locks import LockHeld, exclusive_lock
try:
    with exclusive_lock(sys.argv[1], wait_seconds=float(sys.argv[2])):
        print("got it")
except LockHeld as held:
    print("held by", held.pid)
"""


def _other_process(path, wait: float) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _TRY, str(path), str(wait)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_another_process_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / ".lock"
    with exclusive_lock(path):
        assert _other_process(path, 0) == f"held by {os.getpid()}"
        assert (
            _other_process(path, 0.5) == f"held by {os.getpid()}"
        )  # waited, then refused
    assert _other_process(path, 0) == "got it"  # released on exit


def test_the_lock_is_released_when_the_body_raises(tmp_path):
    path = tmp_path / ".lock"
    with pytest.raises(RuntimeError, match="inside"), exclusive_lock(path):
        raise RuntimeError("inside")
    assert _other_process(path, 0) == "got it"


def test_a_missing_folder_is_an_os_error_not_a_held_lock(tmp_path):
    with pytest.raises(OSError), exclusive_lock(tmp_path / "no" / ".lock"):
        pass
    assert not issubclass(LockHeld, OSError)

"""Shared test helpers: MLflow servers started and stopped by the tests themselves."""

from __future__ import annotations

import contextlib
import os

# One OpenMP thread per test process (make test runs two workers): on two cores,
# two processes with spin-waiting OpenMP threads each make a fit 10-50x slower.
# Set before xgboost or scikit-learn load their OpenMP runtime.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(
    args: list[str],
    ready_path: str,
    *,
    cwd,
    env: dict | None = None,
    timeout: float = 120,
) -> Iterator[str]:
    """Run ``python -m mlflow <args> --port P`` on 127.0.0.1; yield its base URL.

    Waits until ``ready_path`` answers 200, and always stops the server.
    """
    port = _free_port()
    # Servers run `uvicorn`/`gunicorn` from PATH: the venv's bin, as when activated.
    bindir = os.path.dirname(sys.executable)
    full_env = {
        **os.environ,
        **(env or {}),
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", *args, "--port", str(port)],
        env=full_env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + ready_path, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None:
                    raise AssertionError(
                        "mlflow server exited: " + server.stderr.read().decode()[-2000:]
                    ) from None
                if time.monotonic() > deadline:
                    raise AssertionError(f"mlflow {args[0]} did not start") from None
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def start_mlflow():
    """The :func:`mlflow_server` context manager, as a fixture."""
    return mlflow_server

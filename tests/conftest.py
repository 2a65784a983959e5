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

THRESHOLDS = {"moderate": 0.02, "high": 0.10}


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


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    """A small xgboost bundle (4,000 rows, 40 trees) saved to a folder."""
    from plo_risk.data.reference import reference_values
    from plo_risk.data.schema import validate_frame
    from plo_risk.data.synthetic import generate_cohort
    from plo_risk.model.bundle import save_bundle
    from plo_risk.model.zoo import make_model

    valid = validate_frame(generate_cohort(4000, seed=31)).valid
    y = valid["fracture"].to_numpy()
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    model = make_model(
        "xgboost", params={"n_estimators": 40}, cv=3, thresholds=THRESHOLDS
    ).fit(X, y)
    return save_bundle(
        model,
        tmp_path_factory.mktemp("b") / "bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X)},
    )


@pytest.fixture(scope="module")
def model(bundle_path):
    """The :func:`bundle_path` bundle, loaded."""
    from plo_risk.serve import RiskModel

    return RiskModel.load(bundle_path)

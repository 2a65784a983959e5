"""The worked-example notebooks run without error (executed with nbclient)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = [
    "01_train_and_compare.ipynb",
    "02_clinician_api.ipynb",
    "03_batch_scoring.ipynb",
]


def _builder():
    spec = importlib.util.spec_from_file_location("_build", NOTEBOOKS / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_there_and_matches_its_source():
    built = _builder().build()
    assert sorted(built) == NAMES
    for name, text in built.items():
        assert (NOTEBOOKS / name).read_text() == text, (
            f"{name} is stale: run python notebooks/_build.py"
        )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    # Every code cell ran and the last one produced output or passed its asserts.
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")

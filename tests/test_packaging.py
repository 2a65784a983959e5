"""The wheel ships the catalog; a non-editable install works from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(REPO),
        ],
        check=True,
    )
    (path,) = out.glob("plo_risk-*.whl")
    return path


# Every data file the package reads, as shipped in the wheel -> its repository path.
SHIPPED = {
    "plo_risk/_data/catalog.yaml": "features/catalog.yaml",
    "plo_risk/_data/params.yaml": "data/synthetic/params.yaml",
    "plo_risk/_data/DATASHEET.md": "data/synthetic/DATASHEET.md",
    "plo_risk/_data/registry/mapping.yaml": "registry/mapping.yaml",
    "plo_risk/_data/registry/omop_concepts.yaml": "registry/omop_concepts.yaml",
    "plo_risk/report/tripod_ai.yaml": "plo_risk/report/tripod_ai.yaml",
    "plo_risk/serve/mlflow_entry.py": "plo_risk/serve/mlflow_entry.py",
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_wheel_contains_data_files(wheel, name):
    shipped = zipfile.ZipFile(wheel).read(name)
    assert shipped == (REPO / SHIPPED[name]).read_bytes()


def test_installed_wheel_finds_catalog_from_another_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import plo_risk, plo_risk.catalog as c; "
        "p = c.default_catalog_path(); print(p); "
        "assert 'site' in str(p) and len(c.load_catalog()) > 40"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stdout


def test_installed_wheel_card_embeds_the_datasheet(wheel, tmp_path):
    # The first wave's card lost its datasheet in a wheel install: it was read
    # from the repository, which a wheel does not have.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "from plo_risk.report import card; import plo_risk; "
        "text = card._datasheet_text(); "
        f"assert plo_risk.__file__.startswith({str(target)!r}), plo_risk.__file__; "
        "assert text and 'Datasheet' in text[:400], text and text[:200]; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr

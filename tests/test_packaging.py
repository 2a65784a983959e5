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


def test_wheel_contains_data_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "plo_risk/_data/catalog.yaml" in names
    shipped = zipfile.ZipFile(wheel).read("plo_risk/_data/catalog.yaml")
    assert shipped == (REPO / "features" / "catalog.yaml").read_bytes()


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

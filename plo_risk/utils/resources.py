"""Data files shipped with the package (catalog, generator parameters, maps)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["REPO_ROOT", "shipped_file"]

#: The repository checkout this package runs from (an editable install), if any.
REPO_ROOT = Path(__file__).resolve().parents[2]


def shipped_file(name: str, repo_path: str | Path) -> Path:
    """The path of a data file shipped with plo_risk.

    In a wheel the file is packaged as ``plo_risk/_data/<name>``; in an editable
    install or a checkout it is only at ``repo_path`` of the repository.

    Parameters
    ----------
    name : str
        Its name inside ``plo_risk/_data/`` (e.g. ``"catalog.yaml"``).
    repo_path : str or Path
        Its path relative to the repository root (``features/catalog.yaml``).

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        If it is in neither place (a broken install).
    """
    packaged = resources.files("plo_risk") / "_data" / name
    if packaged.is_file():
        return Path(str(packaged))
    repo = REPO_ROOT / repo_path
    if repo.is_file():
        return repo
    raise FileNotFoundError(
        f"{name} not found in the installed package ({packaged}) nor at {repo}; "
        "reinstall plo_risk"
    )

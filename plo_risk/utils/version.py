"""The package version, in one place (pyproject.toml reads it from here)."""

__version__ = "0.1.0"


def package_version() -> str:
    """The plo_risk version, e.g. ``"0.1.0"``."""
    return __version__

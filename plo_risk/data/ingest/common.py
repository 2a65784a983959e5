"""What the flat-extract and OMOP readers share: errors, YAML, the prepared source."""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from plo_risk.utils.config import ConfigError, safe_yaml

__all__ = [
    "DAYS_PER_UNIT",
    "ORACLE_COLUMN",
    "MappingError",
    "Prepared",
    "RegistryError",
    "UnmappedConceptWarning",
    "closest",
    "norm",
    "read_yaml",
    "shown",
]

ORACLE_COLUMN = "true_risk"
# Days per unit for fields derived from two dates: the mean Gregorian year and month.
DAYS_PER_UNIT = {"years": 365.2425, "months": 365.2425 / 12, "weeks": 7.0, "days": 1.0}


class RegistryError(ValueError):
    """A registry source that cannot be ingested (names what is wrong)."""


class MappingError(RegistryError, ConfigError):
    """A mapping or concept map that does not fit the catalog or the source.

    A :class:`RegistryError` (so a ``ValueError``) and a
    :class:`plo_risk.utils.config.ConfigError`: it lists every problem found, each
    starting with its key path.

    Parameters
    ----------
    where : str
        The file (``"mapping"`` for a mapping given in Python), or, when
        ``problems`` is None, the whole message.
    problems : iterable of str, default=None
        One line per problem.

    Attributes
    ----------
    where : str
    problems : list of str
        One message per problem (the whole message when raised with one string).

    Examples
    --------
    >>> err = MappingError("m.yaml", ["columns.A.field='x': not a catalog field",
    ...                               "invalid='drop': must be blank or reject"])
    >>> print(err)
    m.yaml: 2 problems:
      - columns.A.field='x': not a catalog field
      - invalid='drop': must be blank or reject
    >>> isinstance(err, ValueError), len(err.problems)
    (True, 2)
    """

    def __init__(self, where: str, problems: Iterable[str] | None = None):
        if problems is not None:
            ConfigError.__init__(self, where, problems)
            return
        self.where = ""
        self.problems = [str(where)]
        ValueError.__init__(self, str(where))


class UnmappedConceptWarning(UserWarning):
    """Records that look like a fracture or a delivery under a concept not mapped."""


def norm(value: Any) -> str:
    return str(value).strip().casefold()


# ---------------------------------------------------------------------- mapping


def read_yaml(source: str | Path | Mapping, what: str) -> tuple[dict, str]:
    if isinstance(source, Mapping):
        return dict(source), what
    if not isinstance(source, (str, Path)):
        raise MappingError(
            f"{what} must be a YAML file path or a dict; got {type(source).__name__}"
        )
    path = Path(source)
    if not path.is_file():
        raise MappingError(f"{what} {path}: no such file")
    try:
        doc = safe_yaml(path.read_bytes(), str(path))
    except ConfigError as exc:
        raise MappingError(exc.where, exc.problems) from None
    if not isinstance(doc, dict):
        raise MappingError(f"{path}: expected a mapping of keys, got {doc!r}")
    return doc, str(path)


def closest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass
class Prepared:
    """A source turned into validate_frame's input, plus what was done to it."""

    frame: pd.DataFrame  # patient_id?, fields, fracture?, true_risk?; RangeIndex
    units: dict[str, str]
    columns: dict[str, str]  # field -> source column (for the report)
    problems: list[tuple[int, str, Any, str]]  # (row, field, value, reason)
    conversions: list[dict[str, Any]]
    missing_tokens: dict[str, int]
    recoded: dict[str, int]
    unmapped: list[str]
    absent: list[str]
    site: pd.Series | None
    source_name: str
    duplicates: str = "merge"
    invalid: str = "blank"
    # Records under concepts the concept map does not read (OMOP only).
    unmapped_concepts: list[dict[str, Any]] = field(default_factory=list)


def shown(value: Any) -> str:
    """A source cell as text for reports: ``""`` for missing, ``17`` for 17.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        x = float(value)
        return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"
    return str(value)

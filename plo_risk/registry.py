"""Registry ingestion: flat extracts and OMOP CDM databases to a validated cohort.

:func:`ingest` reads a registry extract (CSV, Parquet or Excel file, or a pandas
DataFrame) through a *mapping* YAML, or an OMOP CDM v5.4 database (any SQLAlchemy
URL, DuckDB by default) through a *concept map*, and returns the cohort validated by
:func:`plo_risk.schema.validate_frame`, the rejected rows with their reasons, and a
:class:`QualityReport` that says what was done to the data and what was lost.

The flat mapping format
-----------------------
``registry/mapping.yaml`` (shipped, and loadable from the installed package with
:func:`default_mapping_path`) maps the extracts of
``plo_risk.synthetic.generate_cohort(style="registry")``. Its keys::

    version: 1
    id: PatientID            # source column of the patient id (optional)
    outcome: Fracture        # source column of the 0/1 outcome (optional)
    site: Hospital           # optional: missingness is also reported per site
    missing_values: ["", "NA", "unknown"]   # tokens read as missing, any column
    booleans:                # tokens of boolean columns and of the outcome
      true: ["Y", "yes", "1"]
      false: ["N", "no", "0"]
    invalid: blank           # blank | reject: what an unreadable cell does
    duplicates: merge        # merge | keep: rows sharing an id
    columns:                 # source column -> catalog field
      Age: age_years                                      # short form
      vit_d_nmol: {field: vitamin_d_25oh, unit: nmol/L}   # whole column in a unit
      PRL: {field: prolactin, unit_column: PRL_unit, unit: ng/mL}  # unit per row
      Ethnicity: {field: ancestry, recode: {Caucasian: european}}
      Extra: {field: bmi, optional: true}                 # may be absent
    dates:                   # a field as the time between two date columns
      months_postpartum: {from: DeliveryDate, to: AssessmentDate}
      age_years: {from: BirthDate, to: AssessmentDate}
    ignore: [Comment]        # source columns deliberately not read

* Tokens and recode keys are compared after trimming spaces, case-insensitively.
  Quote them in YAML (``"yes"``, ``"1"``): unquoted ``yes`` is a YAML boolean.
* ``unit`` is the catalog's canonical unit or one of its ``alt_units``; the factor
  comes from the catalog. With ``unit_column`` each row names its own unit and
  ``unit`` is the unit of a row whose unit cell is empty.
* ``recode`` maps source spellings to a category (category fields) or to
  ``true``/``false`` (boolean fields, on top of ``booleans``). Spellings the catalog
  normalises itself (case, spaces, hyphens) need no recode.
* ``dates`` give the field in its canonical unit: years of 365.2425 days, months of
  30.436875 days (the mean Gregorian year and month), weeks of 7 days. A
  ``format`` key (strftime) may be added; ISO dates need none.
* ``invalid: blank`` keeps a row whose optional cell cannot be read (an unknown
  token, a value out of range, an unknown unit) with that cell missing, and lists
  the cell in :attr:`QualityReport.unrecovered`. ``invalid: reject`` sends the
  row to ``rejects``. A bad required field or outcome always rejects the row.
* ``duplicates: merge`` keeps one row per id (the first), each column taking the
  first non-missing value of that patient's rows; disagreements are counted.

Mapping mistakes (an unknown catalog field, an unknown unit, a mapped column absent
from the source) raise :class:`MappingError`, naming the key. Unreadable sources
raise :class:`RegistryError`. Both are ``ValueError``.

OMOP
----
A source that is a database URL (``duckdb:///registry.duckdb``,
``sqlite:///x.db``, ``postgresql://...``) is read with
:func:`plo_risk.omop.read_omop` through the concept map
``registry/omop_concepts.yaml`` (the default ``mapping`` for a URL).

Examples
--------
>>> from plo_risk.registry import ingest
>>> from plo_risk.synthetic import generate_cohort
>>> extract = generate_cohort(300, style="registry", seed=1)
>>> result = ingest(extract)          # the shipped mapping
>>> len(result.frame), result.quality.duplicates["n_rows_removed"] > 0
(300, True)
"""

from __future__ import annotations

import datetime as _dt
import difflib
import html
import io
import json
import math
import numbers
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from plo_risk._io import write_text_atomic
from plo_risk.catalog import Catalog, _data_file, load_catalog
from plo_risk.schema import (
    ID_COLUMN,
    OUTCOME_COLUMN,
    Problem,
    ValidationError,
    validate_frame,
)

__all__ = [
    "IngestResult",
    "MappingError",
    "QualityReport",
    "RegistryError",
    "RegistryMapping",
    "default_mapping_path",
    "ingest",
    "load_mapping",
]

ORACLE_COLUMN = "true_risk"
INVALID = ("blank", "reject")
DUPLICATES = ("merge", "keep")
# Days per unit for fields derived from two dates: the mean Gregorian year and month.
_DAYS_PER_UNIT = {"years": 365.2425, "months": 365.2425 / 12, "weeks": 7.0, "days": 1.0}
_MAPPING_KEYS = {
    "version",
    "id",
    "outcome",
    "site",
    "missing_values",
    "booleans",
    "invalid",
    "duplicates",
    "columns",
    "dates",
    "ignore",
}
_COLUMN_KEYS = {"field", "unit", "unit_column", "recode", "optional"}
_REJECT_COLUMNS = ("row", "field", "value", "reason", "message")
_UNRECOVERED_COLUMNS = ("row", ID_COLUMN, "field", "column", "value", "reason")
_FILE_SUFFIXES = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
}


class RegistryError(ValueError):
    """A registry source that cannot be ingested (names what is wrong)."""


class MappingError(RegistryError):
    """A mapping or concept map that does not fit the catalog or the source."""


def _norm(value: Any) -> str:
    return str(value).strip().casefold()


# ---------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class ColumnSpec:
    """One source column of a flat mapping."""

    column: str
    field: str
    unit: str | None = None
    unit_column: str | None = None
    recode: dict[str, Any] = field(default_factory=dict)
    optional: bool = False


@dataclass(frozen=True)
class DateSpec:
    """A field derived as the time between two date columns."""

    field: str
    start: str
    end: str
    format: str | None = None


@dataclass(frozen=True)
class RegistryMapping:
    """A checked flat-extract mapping (see the module docstring for the format)."""

    columns: tuple[ColumnSpec, ...]
    id: str | None = None
    outcome: str | None = None
    site: str | None = None
    missing_values: frozenset[str] = frozenset()
    true_tokens: frozenset[str] = frozenset()
    false_tokens: frozenset[str] = frozenset()
    invalid: str = "blank"
    duplicates: str = "merge"
    dates: tuple[DateSpec, ...] = ()
    ignore: tuple[str, ...] = ()
    where: str = "mapping"

    @property
    def source_columns(self) -> list[str]:
        """Every source column the mapping reads."""
        cols = [c for c in (self.id, self.outcome, self.site) if c]
        for spec in self.columns:
            cols.append(spec.column)
            if spec.unit_column:
                cols.append(spec.unit_column)
        for d in self.dates:
            cols += [d.start, d.end]
        return list(dict.fromkeys(cols))


def default_mapping_path() -> Path:
    """Path of the shipped example mapping (``registry/mapping.yaml``).

    Returns
    -------
    Path
        ``plo_risk/_data/registry/mapping.yaml`` in a wheel, ``registry/mapping.yaml``
        in a checkout.
    """
    return _data_file("registry/mapping.yaml", Path("registry") / "mapping.yaml")


def _read_yaml(source: str | Path | Mapping, what: str) -> tuple[dict, str]:
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
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise MappingError(f"{path}: expected a mapping of keys, got {doc!r}")
    return doc, str(path)


def _closest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _tokens(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise MappingError(f"{where}: must be a list of quoted strings")
    out = set()
    for tok in value:
        if isinstance(tok, bool) or not isinstance(tok, (str, int, float)):
            raise MappingError(
                f'{where}: token {tok!r} must be a quoted string (write "yes", '
                "not yes: unquoted yes/no/true/false are YAML booleans)"
            )
        out.add(_norm(tok))
    return frozenset(out)


def load_mapping(
    mapping: str | Path | Mapping | None = None, *, catalog: Catalog | None = None
) -> RegistryMapping:
    """Load and check a flat-extract mapping against the catalog.

    Parameters
    ----------
    mapping : str, Path or dict, default=None
        A mapping YAML file or its parsed content; ``None`` loads the shipped one.
    catalog : Catalog, default=None
        ``None`` uses the shipped catalog.

    Returns
    -------
    RegistryMapping

    Raises
    ------
    MappingError
        Naming the key: an unknown key, catalog field or unit, a field mapped twice,
        a recode to a value the field does not allow, a required field not mapped.

    Examples
    --------
    >>> m = load_mapping()
    >>> m.id, m.invalid, len(m.columns) > 40
    ('PatientID', 'blank', True)
    >>> load_mapping({"columns": {"vitD": {"field": "vitamin_d", "unit": "nmol/L"}}})
    Traceback (most recent call last):
    ...
    plo_risk.registry.MappingError: mapping: columns.vitD.field='vitamin_d': not a catalog field; did you mean 'vitamin_d_25oh'?
    """
    catalog = catalog or load_catalog()
    doc, where = _read_yaml(
        mapping if mapping is not None else default_mapping_path(), "mapping"
    )
    unknown = sorted(set(map(str, doc)) - _MAPPING_KEYS)
    if unknown:
        hint = _closest(unknown[0], sorted(_MAPPING_KEYS))
        if "concepts" in doc or "measurement" in doc:
            hint = "; this looks like an OMOP concept map (use it with a database URL)"
        raise MappingError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(_MAPPING_KEYS))}{hint}"
        )
    for key, allowed in (("invalid", INVALID), ("duplicates", DUPLICATES)):
        value = doc.get(key, allowed[0])
        if value not in allowed:
            raise MappingError(
                f"{where}: {key}={value!r}: must be one of {', '.join(allowed)}"
            )
    for key in ("id", "outcome", "site"):
        value = doc.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise MappingError(f"{where}: {key}={value!r}: must be a column name")
    booleans = doc.get("booleans") or {}
    if not isinstance(booleans, dict):
        raise MappingError(f"{where}: booleans: must be {{true: [...], false: [...]}}")
    bool_keys = {str(k).lower(): v for k, v in booleans.items()}
    if set(bool_keys) - {"true", "false"}:
        raise MappingError(f"{where}: booleans: only 'true' and 'false' lists allowed")
    true_tokens = _tokens(bool_keys.get("true"), f"{where}: booleans.true")
    false_tokens = _tokens(bool_keys.get("false"), f"{where}: booleans.false")
    both = true_tokens & false_tokens
    if both:
        raise MappingError(f"{where}: booleans: {sorted(both)} are both true and false")
    missing_values = _tokens(doc.get("missing_values"), f"{where}: missing_values")

    columns_doc = doc.get("columns")
    if not isinstance(columns_doc, dict) or not columns_doc:
        raise MappingError(f"{where}: columns: must map source columns to fields")
    passthrough = (ORACLE_COLUMN,)
    known = catalog.names + list(passthrough)
    specs: list[ColumnSpec] = []
    by_field: dict[str, str] = {}
    for col, entry in columns_doc.items():
        col = str(col)
        key = f"{where}: columns.{col}"
        if isinstance(entry, str):
            entry = {"field": entry}
        if not isinstance(entry, dict) or "field" not in entry:
            raise MappingError(
                f"{key}: must be a field name or {{field, unit, unit_column, recode, "
                f"optional}}; got {entry!r}"
            )
        extra = sorted(set(entry) - _COLUMN_KEYS)
        if extra:
            raise MappingError(
                f"{key}: unknown key(s) {', '.join(extra)}; allowed: "
                f"{', '.join(sorted(_COLUMN_KEYS))}"
            )
        name = entry["field"]
        if name not in known:
            raise MappingError(
                f"{key}.field={name!r}: not a catalog field{_closest(name, known)}"
            )
        if name in by_field:
            raise MappingError(
                f"{key}: field {name!r} is already mapped from column "
                f"{by_field[name]!r}"
            )
        by_field[name] = col
        feat = catalog[name] if name in catalog else None
        unit = entry.get("unit")
        unit_column = entry.get("unit_column")
        if unit is not None or unit_column is not None:
            if feat is None or not feat.is_numeric:
                raise MappingError(f"{key}: field {name!r} has no unit; remove 'unit'")
            allowed = [feat.unit, *feat.alt_units]
            if unit is not None and unit not in allowed:
                raise MappingError(
                    f"{key}.unit={unit!r}: {name} accepts {', '.join(allowed)}"
                    f"{_closest(unit, allowed)}"
                )
            if unit_column is not None and not isinstance(unit_column, str):
                raise MappingError(f"{key}.unit_column={unit_column!r}: not a column")
        recode = entry.get("recode") or {}
        if not isinstance(recode, dict):
            raise MappingError(f"{key}.recode: must map source values to values")
        clean_recode: dict[str, Any] = {}
        for src, dst in recode.items():
            rkey = f"{key}.recode[{src!r}]"
            if feat is not None and feat.dtype == "category":
                if dst not in feat.categories:
                    raise MappingError(
                        f"{rkey}={dst!r}: must be one of {', '.join(feat.categories)}"
                    )
                clean_recode[_norm(src)] = dst
            elif feat is not None and feat.dtype == "bool":
                if not isinstance(dst, bool):
                    raise MappingError(f"{rkey}={dst!r}: must be true or false")
                clean_recode[_norm(src)] = float(dst)
            else:
                raise MappingError(
                    f"{rkey}: recode is for category and boolean fields; {name} is "
                    f"{feat.dtype if feat else 'passed through'}"
                )
        optional = entry.get("optional", False)
        if not isinstance(optional, bool):
            raise MappingError(f"{key}.optional={optional!r}: must be true or false")
        specs.append(ColumnSpec(col, name, unit, unit_column, clean_recode, optional))

    dates_doc = doc.get("dates") or {}
    if not isinstance(dates_doc, dict):
        raise MappingError(f"{where}: dates: must map fields to {{from, to}}")
    dates = []
    for name, entry in dates_doc.items():
        key = f"{where}: dates.{name}"
        if name not in catalog:
            raise MappingError(
                f"{key}: not a catalog field{_closest(name, catalog.names)}"
            )
        if name in by_field:
            raise MappingError(
                f"{key}: field {name!r} is already mapped from column "
                f"{by_field[name]!r}"
            )
        feat = catalog[name]
        if feat.unit not in _DAYS_PER_UNIT:
            raise MappingError(
                f"{key}: {name} is in {feat.unit or 'no unit'}, not a time unit; "
                "only fields in years, months, weeks or days come from dates"
            )
        if (
            not isinstance(entry, dict)
            or set(entry) - {"from", "to", "format"}
            or not isinstance(entry.get("from"), str)
            or not isinstance(entry.get("to"), str)
            or not isinstance(entry.get("format", ""), str)
        ):
            raise MappingError(
                f"{key}: must be {{from: <start date column>, to: <end date column>}}"
                " with an optional format: <strftime string>"
            )
        by_field[name] = f"{entry['from']}..{entry['to']}"
        dates.append(DateSpec(name, entry["from"], entry["to"], entry.get("format")))

    missing_required = [f for f in catalog.required if f not in by_field]
    if missing_required:
        raise MappingError(
            f"{where}: required field(s) {', '.join(missing_required)} are not "
            "mapped from any column (add them under columns: or dates:)"
        )
    ignore = doc.get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise MappingError(f"{where}: ignore: must be a list of column names")
    return RegistryMapping(
        columns=tuple(specs),
        id=doc.get("id"),
        outcome=doc.get("outcome"),
        site=doc.get("site"),
        missing_values=missing_values,
        true_tokens=true_tokens,
        false_tokens=false_tokens,
        invalid=doc.get("invalid", "blank"),
        duplicates=doc.get("duplicates", "merge"),
        dates=tuple(dates),
        ignore=tuple(ignore),
        where=where,
    )


# ---------------------------------------------------------------------- sources


def _is_url(source: Any) -> bool:
    return isinstance(source, str) and "://" in source


def _read_source(source: Any, m: RegistryMapping) -> tuple[pd.DataFrame, str]:
    """Read a flat source into a frame with a RangeIndex (the source row numbers)."""
    if isinstance(source, pd.DataFrame):
        df, name = source.copy(), "DataFrame"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise RegistryError(f"source {path}: no such file")
        kind = _FILE_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise RegistryError(
                f"source {path}: unknown file type {path.suffix!r}; expected one of "
                f"{', '.join(sorted(_FILE_SUFFIXES))} or a database URL"
            )
        if path.stat().st_size == 0:
            raise RegistryError(f"source {path}: the file is empty")
        df = _read_file(path, kind, m)
    else:
        raise RegistryError(
            "source must be a file path (CSV, Parquet, Excel), a pandas DataFrame or "
            f"a database URL; got {type(source).__name__}"
        )
    if len(df.columns) == 0:
        raise RegistryError(f"source {name}: no columns")
    if len(df) == 0:
        raise RegistryError(f"source {name}: no rows (only a header)")
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise RegistryError(
            f"source {name}: column(s) {', '.join(map(str, dup.unique()))} appear twice"
        )
    df.columns = [str(c) for c in df.columns]
    return df.reset_index(drop=True), name


def _read_file(path: Path, kind: str, m: RegistryMapping) -> pd.DataFrame:
    dtype = {m.id: str} if m.id else None
    try:
        if kind in ("csv", "tsv"):
            df = pd.read_csv(
                path, sep=_csv_sep(path, kind), dtype=dtype, low_memory=False
            )
            if not df.index.equals(pd.RangeIndex(len(df))):
                # pandas silently makes the first column(s) the index then,
                # shifting every column by one.
                raise RegistryError(
                    f"source {path}: some rows have more fields than the header "
                    "(a delimiter at the end of the lines?); fix the file"
                )
            return df
        if kind == "parquet":
            return pd.read_parquet(path)
        return _one_sheet(pd.read_excel(path, dtype=dtype, sheet_name=None), path, m)
    except RegistryError:
        raise
    except pd.errors.EmptyDataError:
        raise RegistryError(f"source {path}: the file is empty (no header)") from None
    except ImportError as exc:  # pragma: no cover - optional engines are installed
        raise RegistryError(f"source {path}: cannot read {kind}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - parsers raise many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        what = {"csv": "CSV", "tsv": "TSV", "parquet": "Parquet", "excel": "Excel"}
        raise RegistryError(
            f"source {path}: not a readable {what[kind]} file "
            f"({type(exc).__name__}: {first[:200]})"
        ) from None


def _csv_sep(path: Path, kind: str) -> str:
    """``,`` or, when the header has semicolons and no comma, ``;`` (Excel's export
    in locales with a decimal comma)."""
    if kind == "tsv":
        return "\t"
    with path.open(encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return ";" if ";" in header and "," not in header else ","


def _one_sheet(
    sheets: dict[str, pd.DataFrame], path: Path, m: RegistryMapping
) -> pd.DataFrame:
    """The only sheet, or the only sheet holding columns the mapping reads."""
    if len(sheets) == 1:
        return next(iter(sheets.values()))
    wanted = set(m.source_columns)
    fits = [name for name, df in sheets.items() if wanted & set(map(str, df.columns))]
    if len(fits) == 1:
        return sheets[fits[0]]
    raise RegistryError(
        f"source {path}: {len(fits) or 'none'} of its sheets "
        f"({', '.join(map(repr, sheets))}) hold columns the mapping reads; "
        "keep the registry extract on one sheet"
    )


# ------------------------------------------------------------ column recoding


def _map_uniques(values: np.ndarray, fn) -> np.ndarray:
    """Apply ``fn`` once per distinct non-missing value; missing stays NaN."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists, dicts): read as their text
        values = np.array(
            [v if isinstance(v, Hashable) else str(v) for v in values], dtype=object
        )
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    for i, u in enumerate(uniques):
        mapped[i] = fn(u)
    mapped[-1] = np.nan
    return mapped[codes]


class _Recoder:
    """Turns source cells into values validate_frame reads; counts what it did."""

    _MISSING = object()

    def __init__(self, mapping: RegistryMapping):
        self.m = mapping

    def column(
        self, s: pd.Series, kind: str, recode: dict
    ) -> tuple[np.ndarray, int, int]:
        """Return ``(values, n_missing_tokens, n_recoded)`` for one column.

        ``kind`` is ``bool``, ``category`` or ``other``. Strings that are not a
        token are left as they are, for validate_frame to accept or reject.
        """
        values = s.to_numpy(dtype=object, na_value=np.nan)
        if not (
            s.dtype == object
            or pd.api.types.is_string_dtype(s.dtype)
            or isinstance(s.dtype, pd.CategoricalDtype)
            or (kind == "bool" and pd.api.types.is_bool_dtype(s.dtype))
        ):
            return values, 0, 0
        m = self.m
        missing = self._MISSING

        def fn(u: Any) -> Any:
            if isinstance(u, (bool, np.bool_)):
                return float(u) if kind == "bool" else u
            if not isinstance(u, str):
                return u
            key = _norm(u)
            if key in m.missing_values:
                return missing
            if key in recode:
                return ("recoded", recode[key])
            if kind == "bool":
                if key in m.true_tokens:
                    return 1.0
                if key in m.false_tokens:
                    return 0.0
            return u

        out = _map_uniques(values, fn)
        is_missing = np.fromiter((v is missing for v in out), bool, len(out))
        is_recoded = np.fromiter((isinstance(v, tuple) for v in out), bool, len(out))
        out[is_missing] = np.nan
        if is_recoded.any():
            out[is_recoded] = [v[1] for v in out[is_recoded]]
        return out, int(is_missing.sum()), int(is_recoded.sum())


def _to_float(values: np.ndarray) -> np.ndarray:
    """Numbers as float, NaN for anything else (strings that are not numbers)."""
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )


def _ids(s: pd.Series, missing_values: frozenset[str]) -> pd.Series:
    if pd.api.types.is_float_dtype(s.dtype):
        whole = s.dropna()
        if len(whole) and (whole == np.round(whole)).all():
            s = s.astype("Int64")
    out = s.astype(object).where(s.notna(), None)
    out = out.map(lambda v: None if v is None else str(v).strip())
    out = out.map(lambda v: None if v is None or _norm(v) in missing_values else v)
    return out.astype(object)


# ---------------------------------------------------------------- quality report


def _kind(reason: str) -> str:
    if reason.startswith(
        ("must be a number between", "must be a whole number between")
    ):
        return "out_of_range"
    if reason.startswith("is required"):
        return "missing_required"
    if reason.startswith("implies"):
        return "implausible_derived"
    if reason.startswith("unit"):
        return "unknown_unit"
    if "not a date" in reason:
        return "bad_date"
    return "invalid_value"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        x = float(value)
        return None if math.isnan(x) else x
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if value is pd.NA:
        return None
    return str(value)


@dataclass
class QualityReport:
    """What ingestion did to a registry source and what it could not recover.

    Attributes
    ----------
    source : str
        The file, ``DataFrame`` or the database URL (password hidden).
    n_source_rows, n_rows, n_rejected_rows : int
        Rows read, rows in the validated frame, rows sent to ``rejects``.
    missingness : dict
        ``{field: {"n_missing": int, "share": float}}`` over the validated frame,
        every catalog field (a field not mapped is missing everywhere).
    missing_by_site : dict
        ``{field: {site: share}}`` when the mapping names a ``site`` column.
    out_of_range : dict
        ``{field: n}`` cells outside the catalog range (blanked or rejected).
    unit_conversions : list of dict
        ``{field, column, from_unit, to_unit, n_cells}``.
    missing_tokens, recoded : dict
        ``{field: n}`` cells read as missing from a token (``"unknown"``...) and
        cells whose spelling the mapping recoded.
    duplicates : dict
        ``n_rows_removed``, ``n_patients`` (ids on more than one row) and
        ``conflicts`` (``{field: n}`` patients whose rows disagreed; the first
        non-missing value is kept).
    unmapped_columns, absent_columns : list of str
        Source columns the mapping does not read; optional mapped columns absent.
    rejected : pandas.DataFrame
        Counts of the rejected rows' problems: ``field``, ``reason``, ``n``.
    blanked : pandas.DataFrame
        Counts of the cells set missing (``invalid: blank``): ``field``, ``reason``,
        ``n``.
    unrecovered : pandas.DataFrame
        Every source cell that held a value but is not in the validated frame,
        when known: ``row``, ``patient_id``, ``field``, ``column``, ``value``,
        ``reason``. Cells of rejected rows are listed too.
    """

    source: str
    n_source_rows: int
    n_rows: int
    n_rejected_rows: int
    missingness: dict[str, dict[str, float]]
    missing_by_site: dict[str, dict[str, float]]
    out_of_range: dict[str, int]
    unit_conversions: list[dict[str, Any]]
    missing_tokens: dict[str, int]
    recoded: dict[str, int]
    duplicates: dict[str, Any]
    unmapped_columns: list[str]
    absent_columns: list[str]
    rejected: pd.DataFrame
    blanked: pd.DataFrame
    unrecovered: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready Python objects."""
        return _jsonable(
            {
                "source": self.source,
                "n_source_rows": self.n_source_rows,
                "n_rows": self.n_rows,
                "n_rejected_rows": self.n_rejected_rows,
                "missingness": self.missingness,
                "missing_by_site": self.missing_by_site,
                "out_of_range": self.out_of_range,
                "unit_conversions": self.unit_conversions,
                "missing_tokens": self.missing_tokens,
                "recoded": self.recoded,
                "duplicates": self.duplicates,
                "unmapped_columns": self.unmapped_columns,
                "absent_columns": self.absent_columns,
                "rejected": self.rejected.to_dict(orient="records"),
                "blanked": self.blanked.to_dict(orient="records"),
                "unrecovered": self.unrecovered.to_dict(orient="records"),
            }
        )

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON (atomically: nothing half-written)."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    # -- text -----------------------------------------------------------------

    def _summary_rows(self) -> list[tuple[str, str]]:
        dup = self.duplicates
        conflicts = ", ".join(f"{k} {v}" for k, v in dup.get("conflicts", {}).items())
        rows = [
            ("source", self.source),
            ("rows read", f"{self.n_source_rows:,}"),
            ("rows out (validated)", f"{self.n_rows:,}"),
            ("rows rejected", f"{self.n_rejected_rows:,}"),
            (
                "duplicates merged",
                f"{dup.get('n_rows_removed', 0):,} rows of "
                f"{dup.get('n_patients', 0):,} patients"
                + (f" (disagreeing: {conflicts})" if conflicts else ""),
            ),
            ("cells set missing (unreadable)", f"{int(self.blanked['n'].sum()):,}"),
            ("cells not recovered (listed)", f"{len(self.unrecovered):,}"),
            (
                "unmapped source columns",
                ", ".join(self.unmapped_columns) or "none",
            ),
        ]
        if self.absent_columns:
            rows.append(("optional columns absent", ", ".join(self.absent_columns)))
        return rows

    def _field_rows(self) -> list[tuple[str, ...]]:
        conv: dict[str, list[str]] = {}
        for c in self.unit_conversions:
            conv.setdefault(c["field"], []).append(
                f"{c['from_unit']}→{c['to_unit']} ({c['n_cells']:,})"
            )
        blanked = self.blanked.groupby("field")["n"].sum().to_dict()
        rejected = self.rejected.groupby("field")["n"].sum().to_dict()
        rows = []
        for name, miss in self.missingness.items():
            rows.append(
                (
                    name,
                    f"{100 * miss['share']:.1f}%",
                    str(self.out_of_range.get(name, 0) or ""),
                    "; ".join(conv.get(name, [])),
                    str(self.recoded.get(name, 0) or ""),
                    str(self.missing_tokens.get(name, 0) or ""),
                    str(blanked.get(name, 0) or ""),
                    str(rejected.get(name, 0) or ""),
                )
            )
        return rows

    _FIELD_HEADER = (
        "field",
        "missing",
        "out of range",
        "unit conversions (cells)",
        "recoded",
        "missing tokens",
        "set missing",
        "rejected",
    )

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table

        summary = Table(title="Registry ingestion: data quality", show_header=False)
        summary.add_column("what")
        summary.add_column("value", overflow="fold")
        for k, v in self._summary_rows():
            summary.add_row(k, v)
        fields = Table(title="Per field")
        for col in self._FIELD_HEADER:
            fields.add_column(col, justify="left" if col == "field" else "right")
        for row in self._field_rows():
            fields.add_row(*row)
        parts = [summary, fields]
        if len(self.rejected) or len(self.blanked):
            why = Table(title="Unreadable cells by field and reason")
            for col in ("field", "reason", "set missing", "rows rejected"):
                why.add_column(col, justify="right" if "missing" in col else "left")
            for row in self._reason_rows():
                why.add_row(row[0], row[1], str(row[2] or ""), str(row[3] or ""))
            parts.append(why)
        return Group(*parts)

    def _reason_rows(self) -> list[tuple[str, str, int, int]]:
        merged: dict[tuple[str, str], list[int]] = {}
        for frame, i in ((self.blanked, 0), (self.rejected, 1)):
            for rec in frame.itertuples(index=False):
                merged.setdefault((rec.field, rec.reason), [0, 0])[i] += int(rec.n)
        return [(f, r, b, j) for (f, r), (b, j) in merged.items()]

    def __str__(self) -> str:
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=120, color_system=None, force_terminal=False).print(
            self
        )
        return buf.getvalue()

    # -- html -----------------------------------------------------------------

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML page of the report (atomically).

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Path
        """
        e = html.escape

        def table(header, rows) -> str:
            head = "".join(f"<th>{e(str(h))}</th>" for h in header)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>"
                for r in rows
            )
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

        sections = [
            "<h1>Registry ingestion: data quality</h1>",
            table(("what", "value"), self._summary_rows()),
            "<h2>Per field</h2>",
            table(self._FIELD_HEADER, self._field_rows()),
        ]
        if self.unit_conversions:
            sections += [
                "<h2>Unit conversions</h2>",
                table(
                    ("field", "column", "from", "to", "cells"),
                    [
                        (
                            c["field"],
                            c["column"],
                            c["from_unit"],
                            c["to_unit"],
                            f"{c['n_cells']:,}",
                        )
                        for c in self.unit_conversions
                    ],
                ),
            ]
        if len(self.rejected) or len(self.blanked):
            sections += [
                "<h2>Unreadable cells by field and reason</h2>",
                table(
                    ("field", "reason", "set missing", "rows rejected"),
                    self._reason_rows(),
                ),
            ]
        if self.missing_by_site:
            sites = sorted({s for v in self.missing_by_site.values() for s in v})
            sections += [
                "<h2>Missing share by site</h2>",
                table(
                    ("field", *sites),
                    [
                        (f, *(f"{100 * v.get(s, float('nan')):.1f}%" for s in sites))
                        for f, v in self.missing_by_site.items()
                    ],
                ),
            ]
        limit = 500
        if len(self.unrecovered):
            shown = self.unrecovered.head(limit)
            sections += [
                f"<h2>Cells not recovered ({len(self.unrecovered):,}"
                + (f", first {limit} shown" if len(self.unrecovered) > limit else "")
                + ")</h2>",
                table(_UNRECOVERED_COLUMNS, shown.itertuples(index=False)),
            ]
        style = (
            "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
            "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
            "th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px;"
            "text-align:left}th{background:#f0f0f0}"
        )
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        doc = (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>plo_risk ingestion quality</title><style>{style}</style></head>"
            f"<body>{''.join(sections)}<p><small>plo_risk, {e(stamp)}</small></p>"
            "</body></html>\n"
        )
        return write_text_atomic(path, doc)


@dataclass
class IngestResult:
    """What :func:`ingest` returns.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``validate_frame(...).valid``: ``patient_id`` (when mapped), the catalog
        fields in canonical units, ``fracture`` (when mapped), indexed by the
        source row number (for OMOP: the person's position).
    rejects : pandas.DataFrame
        One row per bad cell of a rejected row: ``row``, ``field``, ``value``,
        ``reason``, ``message`` (the columns of ``validate_frame``'s rejects).
    quality : QualityReport
    """

    frame: pd.DataFrame
    rejects: pd.DataFrame
    quality: QualityReport

    def __repr__(self) -> str:
        return (
            f"IngestResult(frame={len(self.frame):,} rows, "
            f"rejects={self.quality.n_rejected_rows:,} rows)"
        )


# ------------------------------------------------------------------ the pipeline


@dataclass
class _Prepared:
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


def _prepare_flat(
    df: pd.DataFrame, name: str, m: RegistryMapping, catalog: Catalog
) -> _Prepared:
    present = set(df.columns)
    wanted = m.source_columns
    if not present & set(wanted):
        raise RegistryError(
            f"source {name}: none of its columns is in the mapping ({m.where}); it "
            f"has {', '.join(list(df.columns)[:12])}"
            + (" ..." if len(df.columns) > 12 else "")
            + f"; the mapping reads {', '.join(wanted[:12])}"
            + (" ..." if len(wanted) > 12 else "")
        )
    absent_required = []
    absent_optional = []
    for spec in m.columns:
        if spec.column not in present:
            (absent_optional if spec.optional else absent_required).append(
                f"{spec.column} (field {spec.field})"
            )
        elif spec.unit_column and spec.unit_column not in present:
            absent_required.append(f"{spec.unit_column} (unit column of {spec.column})")
    for key in ("id", "outcome", "site"):
        col = getattr(m, key)
        if col and col not in present:
            absent_required.append(f"{col} ({key})")
    for d in m.dates:
        for col in (d.start, d.end):
            if col not in present:
                absent_required.append(f"{col} (date of {d.field})")
    if absent_required:
        first = absent_required[0].split(" (")[0]
        hint = _closest(first, sorted(present))
        raise MappingError(
            f"{m.where}: mapped column(s) absent from source {name}: "
            f"{', '.join(absent_required)}{hint}"
        )

    rec = _Recoder(m)
    n = len(df)
    out: dict[str, Any] = {}
    units: dict[str, str] = {}
    columns: dict[str, str] = {}
    problems: list[tuple[int, str, Any, str]] = []
    conversions: list[dict[str, Any]] = []
    missing_tokens: dict[str, int] = {}
    recoded: dict[str, int] = {}
    if m.id:
        out[ID_COLUMN] = _ids(df[m.id], m.missing_values)
        columns[ID_COLUMN] = m.id
    for spec in m.columns:
        if spec.column not in present:
            continue
        feat = catalog[spec.field] if spec.field in catalog else None
        kind = (
            feat.dtype
            if feat is not None and feat.dtype in ("bool", "category")
            else "other"
        )
        values, n_tok, n_rec = rec.column(df[spec.column], kind, spec.recode)
        if n_tok:
            missing_tokens[spec.field] = n_tok
        if n_rec:
            recoded[spec.field] = n_rec
        columns[spec.field] = spec.column
        if feat is not None and spec.unit_column:
            values = _convert_per_row(
                values, df[spec.unit_column], spec, feat, rec, problems, conversions
            )
        elif feat is not None and spec.unit and spec.unit != feat.unit:
            units[spec.field] = spec.unit
            n_cells = int(np.isfinite(_to_float(values)).sum())
            conversions.append(
                {
                    "field": spec.field,
                    "column": spec.column,
                    "from_unit": spec.unit,
                    "to_unit": feat.unit,
                    "n_cells": n_cells,
                }
            )
        out[spec.field] = values
    for d in m.dates:
        out[d.field] = _from_dates(df, d, catalog, problems)
        columns[d.field] = f"{d.start}..{d.end}"
    if m.outcome:
        values, n_tok, _ = rec.column(df[m.outcome], "bool", {})
        out[OUTCOME_COLUMN] = values
        columns[OUTCOME_COLUMN] = m.outcome
    frame = pd.DataFrame(out, index=pd.RangeIndex(n))
    used = set(wanted) | set(m.ignore)
    unmapped = [c for c in df.columns if c not in used]
    site = df[m.site].astype(object).where(df[m.site].notna(), None) if m.site else None
    return _Prepared(
        frame=frame,
        units=units,
        columns=columns,
        problems=problems,
        conversions=conversions,
        missing_tokens=missing_tokens,
        recoded=recoded,
        unmapped=unmapped,
        absent=[a.split(" (")[0] for a in absent_optional],
        site=site,
        source_name=name,
        duplicates=m.duplicates,
        invalid=m.invalid,
    )


def _convert_per_row(values, unit_series, spec, feat, rec, problems, conversions):
    """Convert a column whose unit is given per row to the canonical unit."""
    unit_vals, _, _ = rec.column(unit_series, "other", {})
    allowed = [feat.unit, *feat.alt_units]
    by_norm = {_norm(u): u for u in allowed}
    x = _to_float(values)
    has_value = pd.notna(pd.Series(values, dtype=object)).to_numpy()
    out = values.copy()
    unit_text = np.array(
        [
            None if (u is None or (isinstance(u, float) and math.isnan(u))) else str(u)
            for u in unit_vals
        ],
        dtype=object,
    )
    for u in pd.unique(unit_text[has_value]):
        rows = (
            has_value & (unit_text == u)
            if u is not None
            else has_value & pd.isna(unit_text)
        )
        if u is None:
            unit = spec.unit
            reason = (
                f"unit missing in column {spec.unit_column} (allowed: "
                f"{', '.join(allowed)})"
            )
        else:
            unit = by_norm.get(_norm(u))
            reason = (
                f"unit {u!r} in column {spec.unit_column} is not one of "
                f"{', '.join(allowed)}"
            )
        if unit is None:
            for i in np.flatnonzero(rows):
                problems.append((i, spec.field, values[i], reason))
                out[i] = np.nan
            continue
        numeric = rows & np.isfinite(x)
        factor = feat.unit_factor(unit)
        out[numeric] = x[numeric] * factor
        if unit != feat.unit and numeric.any():
            conversions.append(
                {
                    "field": spec.field,
                    "column": spec.column,
                    "from_unit": unit,
                    "to_unit": feat.unit,
                    "n_cells": int(numeric.sum()),
                }
            )
    return out


def _from_dates(
    df: pd.DataFrame, d: DateSpec, catalog: Catalog, problems: list
) -> np.ndarray:
    feat = catalog[d.field]
    parsed = []
    for col in (d.start, d.end):
        raw = df[col]
        if pd.api.types.is_datetime64_any_dtype(raw.dtype):
            parsed.append(pd.to_datetime(raw, utc=True))
            continue
        # Text, so that 20240131 is a date and not nanoseconds since 1970; ISO
        # unless a format is given, so that 01/02/2024 is never guessed.
        text = raw.astype(object).where(raw.notna(), None)
        text = text.map(lambda v: None if v is None else _shown(v))
        got = pd.to_datetime(
            text, errors="coerce", format=d.format or "ISO8601", utc=True
        )
        bad = got.isna() & text.map(lambda v: v is not None and str(v).strip() != "")
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(
                (
                    i,
                    d.field,
                    text.iloc[i],
                    f"date column {col}={text.iloc[i]!r} is not a date"
                    + (f" in format {d.format}" if d.format else " (use YYYY-MM-DD)"),
                )
            )
        parsed.append(got)
    days = (parsed[1] - parsed[0]).dt.total_seconds().to_numpy() / 86400.0
    return days / _DAYS_PER_UNIT[feat.unit]


def _merge_duplicates(prep: _Prepared) -> dict[str, Any]:
    """Merge rows sharing a patient id in place: first non-missing value wins."""
    info: dict[str, Any] = {"n_rows_removed": 0, "n_patients": 0, "conflicts": {}}
    df = prep.frame
    if ID_COLUMN not in df.columns or prep.duplicates != "merge":
        return info
    ids = df[ID_COLUMN]
    dup = ids.notna() & ids.duplicated(keep=False)
    if not dup.any():
        return info
    sub = df[dup]
    grouped = sub.groupby(ID_COLUMN, sort=False)
    first = grouped.first()
    counts = grouped.nunique(dropna=True)
    conflicts = {
        c: int((counts[c] > 1).sum()) for c in counts.columns if (counts[c] > 1).any()
    }
    keep_rows = sub.index[~sub[ID_COLUMN].duplicated(keep="first")]
    drop_rows = sub.index[sub[ID_COLUMN].duplicated(keep="first")]
    first_of = pd.Series(keep_rows, index=sub.loc[keep_rows, ID_COLUMN].to_numpy())
    merged = first.loc[sub.loc[keep_rows, ID_COLUMN].to_numpy()]
    merged.index = keep_rows
    for col in merged.columns:
        df[col] = df[col].astype(object)
        df.loc[keep_rows, col] = merged[col].to_numpy(dtype=object)
    # A problem found on a dropped copy now belongs to the kept row, unless the
    # merged row got a value for that field from another copy.
    row_map = dict(
        zip(
            drop_rows,
            first_of.loc[df.loc[drop_rows, ID_COLUMN]].to_numpy(),
            strict=True,
        )
    )
    problems = []
    for row, name, value, reason in prep.problems:
        row = row_map.get(row, row)
        if row in row_map.values() and pd.notna(df.at[row, name]):
            continue
        problems.append((row, name, value, reason))
    prep.problems = problems
    if prep.site is not None:
        prep.site = prep.site.drop(index=drop_rows)
    prep.frame = df.drop(index=drop_rows)
    info.update(
        n_rows_removed=len(drop_rows),
        n_patients=len(keep_rows),
        conflicts=dict(sorted(conflicts.items())),
    )
    return info


def _finish(prep: _Prepared, catalog: Catalog) -> IngestResult:
    n_source = len(prep.frame)
    dup_info = _merge_duplicates(prep)
    work = prep.frame
    ids = work[ID_COLUMN] if ID_COLUMN in work.columns else None
    # Pre-validation problems (units, dates): their cells are already missing.
    pre = pd.DataFrame(prep.problems, columns=["row", "field", "value", "reason"])
    blanked_cells: list[dict[str, Any]] = []
    pre_reject_rows: set = set()
    for rec in pre.itertuples(index=False):
        feat = catalog[rec.field] if rec.field in catalog else None
        if prep.invalid == "blank" and feat is not None and feat.missing:
            blanked_cells.append(_cell(rec.row, rec.field, rec.value, rec.reason))
        else:
            pre_reject_rows.add(rec.row)
    try:
        res = validate_frame(work, units=prep.units, catalog=catalog)
        for _ in range(5):
            if prep.invalid != "blank" or not len(res.rejects):
                break
            optional = res.rejects["field"].map(
                lambda f: f in catalog and catalog[f].missing
            )
            fixable = res.rejects[optional.astype(bool)]
            if not len(fixable):
                break
            for rec in fixable.itertuples(index=False):
                blanked_cells.append(_cell(rec.row, rec.field, rec.value, rec.reason))
                work.at[rec.row, rec.field] = np.nan
            res = validate_frame(work, units=prep.units, catalog=catalog)
    except ValidationError as exc:  # frame-level: a mapping that does not fit
        raise MappingError(f"{prep.source_name}: {exc}") from None

    valid = res.valid
    rejects = res.rejects
    if pre_reject_rows:
        pre_rej = pre[pre["row"].isin(pre_reject_rows)]
        extra = pd.DataFrame(
            {
                "row": pre_rej["row"].to_numpy(),
                "field": pre_rej["field"].to_numpy(),
                "value": [_shown(v) for v in pre_rej["value"]],
                "reason": pre_rej["reason"].to_numpy(),
                "message": [
                    Problem(f, v, r).message
                    for f, v, r in zip(
                        pre_rej["field"],
                        pre_rej["value"],
                        pre_rej["reason"],
                        strict=True,
                    )
                ],
            }
        )
        rejects = (
            pd.concat([rejects, extra], ignore_index=True)
            .sort_values("row", kind="stable")
            .reset_index(drop=True)
        )
        valid = valid.drop(index=[r for r in pre_reject_rows if r in valid.index])
    rejected_rows = sorted(set(rejects["row"]))

    # Unrecovered cells: blanked ones, and every given cell of a rejected row.
    unrecovered = [
        {
            **c,
            ID_COLUMN: _id_at(ids, c["row"]),
            "column": prep.columns.get(c["field"], ""),
        }
        for c in blanked_cells
    ]
    if rejected_rows:
        first_reason = rejects.groupby("row", sort=False)["message"].first()
        for row in rejected_rows:
            for name in work.columns:
                if name not in catalog and name != OUTCOME_COLUMN:
                    continue
                value = work.at[row, name]
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                unrecovered.append(
                    {
                        "row": row,
                        ID_COLUMN: _id_at(ids, row),
                        "field": name,
                        "column": prep.columns.get(name, ""),
                        "value": _shown(value),
                        "reason": f"row rejected: {first_reason[row]}",
                    }
                )
    unrec = pd.DataFrame(unrecovered, columns=list(_UNRECOVERED_COLUMNS))
    unrec = unrec.sort_values(["row"], kind="stable").reset_index(drop=True)

    blanked_counts = _counts(
        pd.DataFrame(blanked_cells, columns=["row", "field", "value", "reason"])
    )
    rejected_counts = _counts(rejects)
    out_of_range: dict[str, int] = {}
    for frame in (blanked_counts, rejected_counts):
        for rec in frame.itertuples(index=False):
            if _kind(rec.reason) == "out_of_range":
                out_of_range[rec.field] = out_of_range.get(rec.field, 0) + int(rec.n)

    missingness = {}
    for feat in catalog:
        col = valid[feat.name]
        n_missing = int(col.isna().sum())
        missingness[feat.name] = {
            "n_missing": n_missing,
            "share": n_missing / len(valid) if len(valid) else float("nan"),
        }
    by_site: dict[str, dict[str, float]] = {}
    if prep.site is not None and len(valid):
        site = prep.site.reindex(valid.index).fillna("(none)").astype(str)
        shares = valid[catalog.names].isna().groupby(site.to_numpy()).mean()
        by_site = {
            f: {str(s): float(shares.at[s, f]) for s in shares.index}
            for f in catalog.names
        }
    quality = QualityReport(
        source=prep.source_name,
        n_source_rows=n_source,
        n_rows=len(valid),
        n_rejected_rows=len(rejected_rows),
        missingness=missingness,
        missing_by_site=by_site,
        out_of_range=dict(sorted(out_of_range.items())),
        unit_conversions=prep.conversions,
        missing_tokens=prep.missing_tokens,
        recoded=prep.recoded,
        duplicates=dup_info,
        unmapped_columns=prep.unmapped,
        absent_columns=prep.absent,
        rejected=rejected_counts,
        blanked=blanked_counts,
        unrecovered=unrec,
    )
    return IngestResult(valid, rejects.loc[:, list(_REJECT_COLUMNS)], quality)


def _cell(row, name, value, reason) -> dict[str, Any]:
    return {"row": row, "field": name, "value": _shown(value), "reason": reason}


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        x = float(value)
        return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"
    return str(value)


def _id_at(ids: pd.Series | None, row) -> Any:
    if ids is None:
        return None
    return ids.get(row)


def _counts(frame: pd.DataFrame) -> pd.DataFrame:
    if not len(frame):
        return pd.DataFrame(
            {
                "field": pd.Series([], dtype=object),
                "reason": pd.Series([], dtype=object),
                "n": pd.Series([], dtype="int64"),
            }
        )
    out = (
        frame.groupby(["field", "reason"], sort=False).size().rename("n").reset_index()
    )
    return out.sort_values("n", ascending=False, kind="stable").reset_index(drop=True)


def ingest(
    source: str | Path | pd.DataFrame,
    mapping: str | Path | Mapping | None = None,
    *,
    catalog: Catalog | None = None,
) -> IngestResult:
    """Read a registry source into a validated cohort with a data-quality report.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A CSV/TSV, Parquet or Excel file, a DataFrame, or a database URL
        (``duckdb:///registry.duckdb``, ``sqlite:///x.db``, ``postgresql://...``)
        holding OMOP CDM v5.4 tables.
    mapping : str, Path or dict, default=None
        For a flat source, the mapping YAML (see the module docstring); for a
        database URL, the OMOP concept map. ``None`` uses the shipped one
        (``registry/mapping.yaml`` or ``registry/omop_concepts.yaml``).
    catalog : Catalog, default=None
        ``None`` uses the shipped catalog.

    Returns
    -------
    IngestResult
        ``frame`` (validated, canonical units), ``rejects`` and ``quality``.

    Raises
    ------
    MappingError
        The mapping does not fit the catalog or the source (names the key).
    RegistryError
        The source cannot be read: no such file, empty, corrupt, no mappable
        columns, a database that does not answer, OMOP tables missing.
    """
    catalog = catalog or load_catalog()
    if _is_url(source):
        from plo_risk import omop

        prep = omop._prepare(str(source), mapping, catalog)
        return _finish(prep, catalog)
    m = load_mapping(mapping, catalog=catalog)
    df, name = _read_source(source, m)
    prep = _prepare_flat(df, name, m, catalog)
    return _finish(prep, catalog)

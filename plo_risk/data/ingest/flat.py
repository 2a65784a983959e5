"""Flat registry extracts (CSV, Parquet, Excel, a DataFrame) through a mapping YAML.

See :mod:`plo_risk.data.ingest` for the mapping format and :func:`ingest`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    BeforeValidator,
    StrictBool,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from plo_risk.data.catalog import Catalog, load_catalog
from plo_risk.data.ids import read_parquet_exact
from plo_risk.data.ingest.common import (
    DAYS_PER_UNIT,
    ORACLE_COLUMN,
    MappingError,
    Prepared,
    RegistryError,
    closest,
    norm,
    read_yaml,
    shown,
)
from plo_risk.data.schema import (
    ID_COLUMN,
    OUTCOME_COLUMN,
)
from plo_risk.utils.config import ConfigError, ConfigModel, parse_config
from plo_risk.utils.resources import shipped_file

__all__ = [
    "ColumnEntry",
    "ColumnSpec",
    "DateEntry",
    "DateSpec",
    "MappingDocument",
    "RegistryMapping",
    "default_mapping_path",
    "load_mapping",
    "prepare_flat",
    "read_source",
]

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
    decimal: str = "."
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
    return shipped_file("registry/mapping.yaml", Path("registry") / "mapping.yaml")


# ---------------------------------------------------------------- the mapping
# The document is a typed model (every structural problem at once, with its key
# path); the checks against the catalog run in its validators (they get the catalog
# through the validation context) and, for those that look at more than one entry,
# in _cross_problems. load_mapping raises them together.


def _context_catalog(info: ValidationInfo) -> Catalog:
    catalog = (info.context or {}).get("catalog")
    return catalog if catalog is not None else load_catalog()


def _token(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(
            'must be a quoted string (write "yes", not yes: unquoted '
            "yes/no/true/false are YAML booleans)"
        )
    return norm(value)


def _column_name(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a column name")
    return value


_Token = Annotated[str, BeforeValidator(_token)]
_ColumnName = Annotated[str, AfterValidator(_column_name)]


class _Booleans(ConfigModel):
    """``booleans``: the tokens of boolean columns and of the outcome."""

    true: list[_Token] = []
    false: list[_Token] = []

    @model_validator(mode="before")
    @classmethod
    def _yaml_keys(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise ValueError('must be {true: ["Y", ...], false: ["N", ...]}')
        # Unquoted true/false keys are YAML booleans.
        return {
            str(k).lower() if isinstance(k, (bool, str)) else k: v
            for k, v in data.items()
        }

    @model_validator(mode="after")
    def _disjoint(self) -> _Booleans:
        both = sorted(set(self.true) & set(self.false))
        if both:
            raise ValueError(
                f"token(s) {', '.join(map(repr, both))} are listed under both true and "
                "false; keep each under one of them"
            )
        return self


class ColumnEntry(ConfigModel):
    """One entry of ``columns``: a catalog field name, or its long form.

    Attributes
    ----------
    field : str
        The catalog field (or ``true_risk``, passed through).
    unit : str, default=None
        The unit of the whole column (the catalog's unit or an ``alt_units``
        one); with ``unit_column``, the unit of a row whose unit cell is empty.
    unit_column : str, default=None
        A source column that names each row's unit.
    recode : dict, default=None
        Source spelling -> category (category fields) or true/false (boolean
        fields); keys are compared trimmed and case-insensitively.
    optional : bool, default=False
        Whether the column may be absent from the source.
    """

    field: str
    unit: str | None = None
    unit_column: _ColumnName | None = None
    recode: dict[Any, Any] | None = None
    optional: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"field": data}
        if not isinstance(data, Mapping):
            raise ValueError(
                "must be a field name or {field, unit, unit_column, recode, optional}"
            )
        return data

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str, info: ValidationInfo) -> str:
        catalog = _context_catalog(info)
        known = [*catalog.names, ORACLE_COLUMN]
        if name not in known:
            raise ValueError(f"not a catalog field{closest(name, known)}")
        return name

    @field_validator("unit", "unit_column")
    @classmethod
    def _has_unit(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = info.data.get("field")
        if value is None or name is None:  # a wrong field is reported on its own
            return value
        catalog = _context_catalog(info)
        feat = catalog[name] if name in catalog else None
        if feat is None or not feat.is_numeric:
            raise ValueError(f"field {name!r} has no unit; remove {info.field_name!r}")
        allowed = [feat.unit, *feat.alt_units]
        if info.field_name == "unit" and value not in allowed:
            raise ValueError(
                f"{name} accepts {', '.join(allowed)}{closest(value, allowed)}"
            )
        return value

    @field_validator("recode")
    @classmethod
    def _recode_targets(cls, recode: dict | None, info: ValidationInfo) -> dict:
        name = info.data.get("field")
        if not recode or name is None:
            return dict(recode or {})
        catalog = _context_catalog(info)
        feat = catalog[name] if name in catalog else None
        if feat is None or feat.dtype not in ("category", "bool"):
            raise ValueError(
                f"recode is for category and boolean fields; {name} is "
                f"{feat.dtype if feat else 'passed through'}"
            )
        out: dict[str, Any] = {}
        bad = []
        for src, dst in recode.items():
            if feat.dtype == "category" and dst in feat.categories:
                out[norm(src)] = dst
            elif feat.dtype == "bool" and isinstance(dst, bool):
                out[norm(src)] = float(dst)
            else:
                bad.append(f"{src!r}: {dst!r}")
        if bad:
            allowed = (
                ", ".join(feat.categories)
                if feat.dtype == "category"
                else "true, false"
            )
            raise ValueError(
                f"{'; '.join(bad)}: a recode target of {name} must be one of {allowed}"
            )
        return out


def _strftime(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise ValueError(
            "the optional format must be a strftime string, e.g. '%d.%m.%Y'"
        )
    return value


class _DateBase(ConfigModel):
    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError(
                "must be {from: <start date column>, to: <end date column>} with an "
                "optional format: <strftime string>"
            )
        return data


# ``from`` is a Python keyword: the model is built with create_model.
DateEntry = create_model(
    "DateEntry",
    __base__=_DateBase,
    __doc__="One entry of ``dates``: ``{from, to, format}``.",
    **{
        "from": (_ColumnName, ...),
        "to": (_ColumnName, ...),
        "format": (Annotated[str | None, BeforeValidator(_strftime)], None),
    },
)


class MappingDocument(ConfigModel):
    """A flat-extract mapping document, as written in YAML.

    The keys are described in :mod:`plo_risk.data.ingest`. Validated with the
    catalog in the context (``context={"catalog": catalog}``); :func:`load_mapping`
    adds the checks across entries and turns it into a :class:`RegistryMapping`.
    """

    version: Literal[1] = 1
    id: _ColumnName | None = None
    outcome: _ColumnName | None = None
    site: _ColumnName | None = None
    missing_values: list[_Token] | None = None
    booleans: _Booleans | None = None
    invalid: Literal["blank", "reject"] = "blank"
    duplicates: Literal["merge", "keep"] = "merge"
    decimal: Literal[".", ","] = "."
    columns: dict[str, ColumnEntry]
    dates: dict[str, DateEntry] | None = None  # type: ignore[valid-type]
    ignore: list[str] | None = None

    @field_validator("columns", mode="before")
    @classmethod
    def _column_keys(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): v for k, v in value.items()}
        return value

    @field_validator("columns")
    @classmethod
    def _some_columns(cls, value: dict) -> dict:
        if not value:
            raise ValueError("must map at least one source column to a catalog field")
        return value


# Keys of an OMOP concept map that a flat mapping never has.
_CONCEPT_MAP_KEYS = {
    "fields",
    "person",
    "assessment",
    "delivery",
    "answers",
    "events",
    "cdm_version",
    "window_months",
    "lookback_days",
    "type_concept_id",
    "concepts",
    "measurement",
}


def _cross_problems(doc: Mapping, catalog: Catalog) -> list[str]:
    """The checks that look at more than one entry: every field from one place,
    the date fields, the required fields. Reads only the field names of ``doc``
    (the structure is checked by :class:`MappingDocument`)."""
    problems = []
    source: dict[str, str] = {}
    columns = doc.get("columns")
    if isinstance(columns, Mapping):
        for col, entry in columns.items():
            name = entry.get("field") if isinstance(entry, Mapping) else entry
            if not isinstance(name, str):
                continue
            if name in source:
                problems.append(
                    f"columns.{col}.field={name!r}: already mapped from "
                    f"{source[name]}; a field comes from one column"
                )
            else:
                source[name] = f"column {str(col)!r}"
    dates = doc.get("dates")
    if isinstance(dates, Mapping):
        for name in dates:
            key = f"dates.{name}"
            if name not in catalog:
                problems.append(
                    f"{key}: not a catalog field{closest(name, catalog.names)}"
                )
                continue
            feat = catalog[name]
            if feat.unit not in DAYS_PER_UNIT:
                problems.append(
                    f"{key}: {name} is in {feat.unit or 'no unit'}, not a time "
                    "unit; only fields in years, months, weeks or days come from "
                    "dates"
                )
            if name in source:
                problems.append(f"{key}: {name} is already mapped from {source[name]}")
            else:
                source[name] = "dates"
    missing = [f for f in catalog.required if f not in source]
    if missing:
        problems.append(
            f"required field(s) {', '.join(missing)} are not mapped from any column "
            "(add them under columns: or dates:)"
        )
    return problems


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
        Listing every problem at once, each with its key path: an unknown key
        (with "did you mean"), a value of the wrong type, an unknown catalog field
        or unit, a field mapped twice, a recode to a value the field does not
        allow, a date field that is not in a time unit, a token both true and
        false, a required field not mapped.

    Examples
    --------
    >>> m = load_mapping()
    >>> m.id, m.invalid, len(m.columns) > 40
    ('PatientID', 'blank', True)
    >>> load_mapping({"columns": {"vitD": {"field": "vitamin_d", "unit": "nmol/L"},
    ...                           "Age": "age_years", "Parity": "parity"},
    ...               "invalid": "drop"})
    Traceback (most recent call last):
    ...
    plo_risk.data.ingest.common.MappingError: mapping: 3 problems:
      - invalid='drop': input should be 'blank' or 'reject'
      - columns.vitD.field='vitamin_d': not a catalog field; did you mean 'vitamin_d_25oh'?
      - required field(s) months_postpartum are not mapped from any column (add them under columns: or dates:)
    """
    catalog = catalog or load_catalog()
    doc, where = read_yaml(
        mapping if mapping is not None else default_mapping_path(), "mapping"
    )
    omop_keys = sorted(set(map(str, doc)) & _CONCEPT_MAP_KEYS)
    if omop_keys and "columns" not in doc:
        raise MappingError(
            where,
            [
                f"this looks like an OMOP concept map (keys {', '.join(omop_keys)}), "
                "not a flat-extract mapping: use it with a database URL source, "
                "or give a mapping with columns:"
            ],
        )
    cross = _cross_problems(doc, catalog)
    try:
        parsed = parse_config(MappingDocument, doc, where, context={"catalog": catalog})
    except ConfigError as exc:
        raise MappingError(where, [*exc.problems, *cross]) from None
    if cross:
        raise MappingError(where, cross)
    booleans = parsed.booleans or _Booleans()
    return RegistryMapping(
        columns=tuple(
            ColumnSpec(
                col, e.field, e.unit, e.unit_column, dict(e.recode or {}), e.optional
            )
            for col, e in parsed.columns.items()
        ),
        id=parsed.id,
        outcome=parsed.outcome,
        site=parsed.site,
        missing_values=frozenset(parsed.missing_values or ()),
        true_tokens=frozenset(booleans.true),
        false_tokens=frozenset(booleans.false),
        invalid=parsed.invalid,
        duplicates=parsed.duplicates,
        decimal=parsed.decimal,
        dates=tuple(
            DateSpec(name, getattr(e, "from"), e.to, e.format)
            for name, e in (parsed.dates or {}).items()
        ),
        ignore=tuple(parsed.ignore or ()),
        where=where,
    )


# ---------------------------------------------------------------------- sources


def read_source(source: Any, m: RegistryMapping) -> tuple[pd.DataFrame, str]:
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
    return _numbers(df.reset_index(drop=True), m), name


# Digits with one decimal comma: "30,5", "-0,25" (no thousands marks).
_DECIMAL_COMMA = r"^\s*[+-]?\d+,\d+\s*$"


def _numbers(df: pd.DataFrame, m: RegistryMapping) -> pd.DataFrame:
    """Exact decimals as floats, and decimal-comma text when the mapping says so."""
    for col in m.source_columns:
        if col not in df.columns or col == m.id:
            continue
        if not (df[col].dtype == object or pd.api.types.is_string_dtype(df[col])):
            continue
        s = df[col].astype(object)
        changed = False
        exact = s.map(lambda v: isinstance(v, Decimal))
        if exact.any():
            s = s.where(~exact, s[exact].map(float))
            changed = True
        if m.decimal == ",":
            text = s.map(lambda v: isinstance(v, str))
            comma = text & s.where(text, "").astype(str).str.match(_DECIMAL_COMMA)
            if comma.any():
                s = s.where(~comma, s[comma].str.replace(",", ".").map(float))
                changed = True
        if changed:
            df[col] = s
    return df


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
            return read_parquet_exact(path, m.id)
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
            key = norm(u)
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
    out = out.map(lambda v: None if v is None or norm(v) in missing_values else v)
    return out.astype(object)


# ---------------------------------------------------------------- quality report


def prepare_flat(
    df: pd.DataFrame, name: str, m: RegistryMapping, catalog: Catalog
) -> Prepared:
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
        hint = closest(first, sorted(present))
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
    return Prepared(
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
    by_norm = {norm(u): u for u in allowed}
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
            unit = by_norm.get(norm(u))
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
        text = text.map(lambda v: None if v is None else shown(v))
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
    return days / DAYS_PER_UNIT[feat.unit]

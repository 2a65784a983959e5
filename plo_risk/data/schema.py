"""Validation of patient records and cohort frames against the feature catalog.

Two entry points give the same verdict on the same data:

* :func:`validate_record` for one patient (a pydantic model generated from the
  catalog), raising :class:`ValidationError` that lists every bad field at once;
* :func:`validate_frame` for a cohort (vectorized; the range and category checks are
  a pandera schema generated from the catalog). A cohort never fails as a whole
  because some rows are bad: bad rows go to ``rejects`` with the same messages.

Values in alternate units are declared with the ``units=`` argument, the same way on
both paths: ``validate_record(rec, units={"vitamin_d_25oh": "nmol/L"})``. The output
is always in the catalog's canonical units, with T- and Z-scores derived from BMD in
g/cm2 (and BMD from a score) using the catalog's young-adult reference.
"""

from __future__ import annotations

import decimal
import difflib
import math
import numbers
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa
from pydantic import BeforeValidator, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticError
from pydantic_core import PydanticCustomError

from plo_risk.data.catalog import MISSING_TEXT, Catalog, Feature, load_catalog

__all__ = [
    "ID_COLUMN",
    "MAX_ID_LENGTH",
    "MAX_UNKNOWN_NAMED",
    "MISSING",
    "MISSING_TEXT",
    "OUTCOME_COLUMN",
    "OUTCOME_COLUMNS",
    "OUTCOME_DEFINITION",
    "PASSTHROUGH_COLUMNS",
    "is_outcome_column",
    "Problem",
    "ValidatedFrame",
    "ValidationError",
    "check_units",
    "frame_schema",
    "is_missing",
    "record_model",
    "rule_failures",
    "validate_frame",
    "validate_record",
]

ID_COLUMN = "patient_id"
#: The longest ``patient_id`` accepted, in characters (or digits of an integer id):
#: longer than any registry's key, short enough that every message, log line and
#: output file stays small.
MAX_ID_LENGTH = 256
#: Unknown fields or columns an error names one by one, each with the closest
#: known name; the rest are counted in one line.
MAX_UNKNOWN_NAMED = 20
OUTCOME_COLUMN = "fracture"
# Columns that are not catalog inputs but travel with a cohort: the id is passed
# through, the outcome is checked to be 0/1, the generator's oracle is passed through.
PASSTHROUGH_COLUMNS = (ID_COLUMN, OUTCOME_COLUMN, "true_risk")
#: Outcome columns of the generator's event history (and the oracle's risk at a
#: horizon), accepted beside the catalog fields but never model inputs: they are
#: kept apart, in :attr:`ValidatedFrame.outcomes`.
OUTCOME_COLUMNS = (
    "fracture_month",
    "fracture_site",
    "n_vertebral_fractures",
    "n_fractures",
)
_ORACLE_AT = re.compile(r"^true_risk_\d+m$")
#: What the outcome column records: the event a model's risk is the probability of.
OUTCOME_DEFINITION = (
    "a first fragility fracture after the assessment and up to 18 months postpartum"
)
_PASSTHROUGH = PASSTHROUGH_COLUMNS

_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
# A problem about a name rather than a value (an unknown column, a bad argument).
NO_VALUE: Any = _Missing()


@dataclass(frozen=True)
class Problem:
    """One bad value: which field, what was given and what is allowed."""

    field: str
    value: Any
    reason: str
    unit: str | None = None

    @property
    def message(self) -> str:
        """``field=value: reason``, e.g. ``lactation_months=-3: must be ...``."""
        if self.value is NO_VALUE:
            return f"{self.field}: {self.reason}"
        shown = "missing" if self.value is MISSING else _show(self.value)
        if self.unit and self.value is not MISSING:
            shown = f"{shown} {self.unit}"
        return f"{self.field}={shown}: {self.reason}"


class ValidationError(ValueError):
    """Input that does not fit the feature catalog.

    Lists every bad field at once; ``problems`` holds them as :class:`Problem`.

    Examples
    --------
    >>> from plo_risk import validate_record
    >>> validate_record({"age_years": 31, "parity": 1, "months_postpartum": 2,
    ...                  "lactation_months": -3})
    Traceback (most recent call last):
    ...
    plo_risk.data.schema.ValidationError: lactation_months=-3: must be a number between 0 and 60 months (Months of breastfeeding so far after this birth)
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = self.problems[0].message
        else:
            text = f"{len(self.problems)} invalid fields:\n" + "\n".join(
                "  " + p.message for p in self.problems
            )
        super().__init__(text)

    @property
    def fields(self) -> list[str]:
        """Names of the bad fields, in the order reported."""
        return [p.field for p in self.problems]


class _ShortRepr(reprlib.Repr):
    """``repr`` that stays short and never fails: nested values are cut at a
    depth (a 100,000-deep list is not a RecursionError), an integer too long for
    ``str`` is described, and a value whose ``repr`` raises is named by its type."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = 50
        self.maxother = 50
        self.maxlong = 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            return (
                f"<integer of about {int(x.bit_length() * math.log10(2)) + 1} digits>"
            )
        return super().repr_int(x, level)

    def repr1(self, x: Any, level: int) -> str:
        try:
            return super().repr1(x, level)
        except Exception:  # a hostile __repr__: the value is shown by its type
            return f"<{type(x).__name__}>"


_SHORT = _ShortRepr()


def _show(value: Any) -> str:
    """A cell's value as an error message shows it: short, whatever the value."""
    if type(value) is float and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if type(value) is float or isinstance(value, np.floating):
        return f"{float(value):g}"
    text = _SHORT.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- reasons


def _range_reason(feat: Feature, unit: str | None) -> str:
    lo, hi = feat.range  # type: ignore[misc]
    kind = "a whole number" if feat.dtype == "int" else "a number"
    text = f"must be {kind} between {lo:g} and {hi:g} {feat.unit}".rstrip()
    if unit and unit != feat.unit:
        f = feat.unit_factor(unit)
        text += f" ({lo / f:.4g} to {hi / f:.4g} {unit})"
    return f"{text} ({feat.label})"


def _type_reason(feat: Feature) -> str:
    if feat.dtype == "bool":
        return f"must be true or false (also accepted: yes/no, 1/0) ({feat.label})"
    if feat.dtype == "category":
        return f"must be one of {', '.join(feat.categories)} ({feat.label})"
    if feat.dtype == "int":
        return f"must be a whole number in {feat.unit} ({feat.label})"
    return f"must be a finite number in {feat.unit} ({feat.label})"


def _category_reason(feat: Feature, value: Any) -> str:
    text = f"must be one of {', '.join(feat.categories)}"
    if isinstance(value, str) and (
        close := _close(_norm_category(value), list(feat.categories), 0.6)
    ):
        text += f"; did you mean {close!r}?"
    return f"{text} ({feat.label})"


def is_outcome_column(name: Any) -> bool:
    """True for a column of the event history or the oracle at a horizon
    (``true_risk_12m``): accepted with a cohort, never a model input."""
    return isinstance(name, str) and (
        name in OUTCOME_COLUMNS or bool(_ORACLE_AT.match(name))
    )


def _required_reason(feat: Feature) -> str:
    return f"is required ({feat.label})"


def _close(word: str, choices: list[str], cutoff: float) -> str | None:
    """The closest of ``choices`` to ``word``, or None; a word much longer than
    every choice is no misspelling of one, and comparing it would cost its length."""
    if len(word) > 2 * max(map(len, choices)) + 8:
        return None
    close = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return close[0] if close else None


def _unknown_field_problem(
    name: Any, catalog: Catalog, what: str = "field", value: Any = NO_VALUE
) -> Problem:
    known = catalog.names + list(_PASSTHROUGH)
    reason = f"unknown {what}"
    if isinstance(name, str) and (close := _close(name, known, 0.6)):
        reason += f"; did you mean {close!r}?"
    return Problem(_show_name(name), value, reason)


def _show_name(name: Any) -> str:
    """A column or key as a message names it: as is when it is short text."""
    if isinstance(name, str) and name.strip() and len(name) <= 60:
        return name
    return _show(name)


class _Unknowns:
    """Problems for unknown names: the first :data:`MAX_UNKNOWN_NAMED` one by one
    (with the closest known name), then one line counting the rest, so a record of
    200,000 unknown keys costs (and says) what 20 do."""

    def __init__(self, catalog: Catalog, what: str, plural: str) -> None:
        self.catalog, self.what, self.plural = catalog, what, plural
        self.count = 0

    def problem(self, name: Any, value: Any = NO_VALUE) -> Problem | None:
        self.count += 1
        if self.count > MAX_UNKNOWN_NAMED:
            return None
        return _unknown_field_problem(name, self.catalog, self.what, value)

    def rest(self) -> list[Problem]:
        more = self.count - MAX_UNKNOWN_NAMED
        if more <= 0:
            return []
        return [Problem("...", NO_VALUE, f"and {more:,} more unknown {self.plural}")]


def _unit_problem(
    name: str, unit: Any, catalog: Catalog, unknowns: _Unknowns
) -> Problem | None:
    """Check one entry of ``units=``; None when it is fine."""
    if name not in catalog:
        return unknowns.problem(name)
    feat = catalog[name]
    allowed = [feat.unit, *feat.alt_units] if feat.is_numeric else []
    if not isinstance(unit, str) or unit not in allowed:
        if not allowed:
            reason = "has no unit; remove it from units="
        else:
            reason = f"unit must be one of {', '.join(allowed)}"
            if isinstance(unit, str) and (close := _close(unit, allowed, 0.5)):
                reason += f"; did you mean {close!r}?"
        return Problem(name, unit, f"{reason} (in units=)")
    return None


def check_units(units: Mapping[str, str] | None, catalog: Catalog) -> dict[str, str]:
    """Check a ``units=`` mapping against the catalog; every bad entry at once.

    Raises
    ------
    ValidationError
        Naming each unknown field or unit, with the allowed units.
    """
    if units is None:
        return {}
    if not isinstance(units, Mapping):
        raise ValidationError(
            [Problem("units", units, "must be a mapping of field name to unit")]
        )
    unknowns = _Unknowns(catalog, "field in units=", "fields in units=")
    problems = [
        p for n, u in units.items() if (p := _unit_problem(n, u, catalog, unknowns))
    ]
    problems += unknowns.rest()
    if problems:
        raise ValidationError(problems)
    return dict(units)


_LONGEST_MISSING_WORD = max(map(len, MISSING_TEXT))


def is_missing(value: Any) -> bool:
    """True for a value that means "not given", in any field, on every path.

    ``None``, ``pd.NA``, ``NaT``, a float or Decimal NaN, or text that is blank or one of
    :data:`MISSING_TEXT` (``NA``, ``N/A``, ``NaN``, ``NULL``, ``None``, ... in any
    case, spaces around ignored). A CSV is read as text, so a ``NULL`` cell of a
    file and ``"NULL"`` in a record get the same verdict.

    Examples
    --------
    >>> [is_missing(v) for v in [None, float("nan"), " n/a ", "NULL", "0", "no"]]
    [True, True, True, True, False, False]
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)  # reads a float subclass's value, never __float__
    if isinstance(value, decimal.Decimal):
        return value.is_nan()
    if isinstance(value, str):
        text = value.strip()
        return not text or (
            len(text) <= _LONGEST_MISSING_WORD and text.lower() in MISSING_TEXT
        )
    return False


# ---------------------------------------------------------------- scalar coercion
# The scalar rules below are the definition; the vectorized frame path applies the
# same function to object columns and an equivalent numpy rule to typed columns.


def _norm_category(value: str) -> str:
    return value.strip().lower().replace(" ", "_").replace("-", "_")


def _coerce_scalar(feat: Feature, value: Any) -> tuple[Any, str | None]:
    """Return ``(value_or_MISSING, None)`` or ``(MISSING, reason)``."""
    if is_missing(value):  # the one rule for "not given", every field, every path
        return MISSING, None
    if feat.dtype == "category":
        if not isinstance(value, str):
            return MISSING, _category_reason(feat, value)
        norm = _norm_category(value)
        if norm in feat.categories:
            return norm, None
        return MISSING, _category_reason(feat, value)
    if feat.dtype == "bool":
        if isinstance(value, (bool, np.bool_)):
            return bool(value), None
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE_WORDS:
                return True, None
            if word in _FALSE_WORDS:
                return False, None
            return MISSING, _type_reason(feat)
        if isinstance(value, _REALS):
            x = _real_as_float(value)
            if x is None:
                return MISSING, _type_reason(feat)
            if math.isnan(x):
                return MISSING, None
            if x in (0.0, 1.0):
                return x == 1.0, None
        return MISSING, _type_reason(feat)
    # numeric
    if isinstance(value, (bool, np.bool_)):
        return MISSING, _type_reason(feat)
    if isinstance(value, str):
        text = value.strip()
        if "_" in text:  # Python's float("3_3") is 33; no extract means that
            return MISSING, _type_reason(feat)
        try:
            x = float(text)
        except (ValueError, OverflowError):
            return MISSING, _type_reason(feat)
        if not math.isfinite(x):
            return MISSING, _type_reason(feat)
    elif isinstance(value, _REALS):
        x = _real_as_float(value)
        if x is None:
            return MISSING, _type_reason(feat)
        if math.isnan(x):
            return MISSING, None
        if not math.isfinite(x):
            return MISSING, _type_reason(feat)
    else:
        return MISSING, _type_reason(feat)
    if feat.dtype == "int" and not x.is_integer():
        return MISSING, _type_reason(feat)
    return x, None


_ID_REASON = (
    f"must be text or a whole number of at most {MAX_ID_LENGTH} characters "
    "(the patient's id)"
)


def _id_reason(value: Any) -> str | None:
    """Why ``value`` cannot be a ``patient_id``, or None. Costs O(1) per id."""
    if isinstance(value, str):
        return _ID_REASON if len(value) > MAX_ID_LENGTH else None
    if isinstance(value, (bool, np.bool_)):
        return _ID_REASON
    if isinstance(value, (int, np.integer)):
        n = int(value)
        # Past about 1,000 bits the digits are too many anyway (and str() of a
        # 5,000-digit integer raises).
        if n.bit_length() > 1000 or len(str(abs(n))) > MAX_ID_LENGTH:
            return _ID_REASON
        return None
    if is_missing(value) or isinstance(value, numbers.Number):
        return None  # a missing id is allowed; a float id is the reader's matter
    return _ID_REASON


def _id_cells(s: pd.Series) -> list:
    """The bad cells of a ``patient_id`` column (too long, or not text or a number)."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_object_dtype(
        s.dtype
    ):
        return []  # a typed number column: at most 20 digits
    if isinstance(s.dtype, pd.StringDtype) or (
        isinstance(s.dtype, pd.ArrowDtype) and pd.api.types.is_string_dtype(s.dtype)
    ):
        bad = (s.str.len() > MAX_ID_LENGTH).fillna(False).to_numpy(dtype=bool)
    else:
        raw = s.astype(object).to_numpy()
        bad = np.fromiter(
            (_id_reason(v) is not None for v in raw), dtype=bool, count=len(raw)
        )
    return [(ID_COLUMN, bad, s, _ID_REASON)] if bad.any() else []


# An exact decimal (a database's NUMERIC, Parquet decimal128) is a number too.
_REALS = (numbers.Real, decimal.Decimal)


def _real_as_float(value: numbers.Real) -> float | None:
    """``float(value)``, or None when that fails: a 400-digit integer overflows, and
    a ``numbers.Real`` from elsewhere may raise anything from ``__float__``."""
    try:
        return float(value)
    except Exception:
        return None


# --------------------------------------------------------------- BMD <-> T/Z scores


def _outside_range(
    derived: np.ndarray, where: np.ndarray, feat: Feature
) -> np.ndarray | None:
    """Row mask of derived values (at the rows ``where``) outside ``feat.range``."""
    lo, hi = feat.range  # type: ignore[misc]
    out = (derived < lo) | (derived > hi)
    if not out.any():
        return None
    mask = np.zeros(len(where), dtype=bool)
    mask[np.flatnonzero(where)[out]] = True
    return mask


def _derive_scores(
    cols: dict[str, np.ndarray], catalog: Catalog
) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """Fill missing BMD / T / Z of each site in place (float arrays, NaN = missing).

    BMD (g/cm2) missing but a score given: BMD = mean + score * sd (T first, then Z).
    Scores missing but BMD known: score = (BMD - mean) / sd. Z uses the same
    young-adult reference as T: for women of 20-40 the age-matched mean equals the
    young-adult mean ([@varatharajan2026, Table 3]; NHANES women 21-30 vs 31-40 lumbar spine:
    1.064 vs 1.065 g/cm2).

    Returns the derived values that fall outside the catalog range, as
    ``(source field, row mask, source values, reason)``.
    """
    bad = []
    for site in catalog.bmd_sites:
        mean, sd = site.bmd_reference  # type: ignore[misc]
        bmd = cols[site.name]
        scores = sorted(catalog.scores_of(site.name), key=lambda f: f.score != "t")
        need = np.isnan(bmd)
        for score in scores:
            s = cols[score.name]
            take = need & ~np.isnan(s)
            if take.any():
                derived = mean + s[take] * sd
                mask = _outside_range(derived, take, site)
                if mask is not None:
                    reason = (
                        f"implies {site.name} outside {site.range[0]:g} to "
                        f"{site.range[1]:g} {site.unit} "
                        f"(reference mean {mean:g}, SD {sd:g})"
                    )
                    bad.append((score.name, mask, s, reason))
                bmd[take] = derived
                need = need & ~take
        known = ~np.isnan(bmd)
        for score in scores:
            s = cols[score.name]
            fill = known & np.isnan(s)
            if fill.any():
                derived = (bmd[fill] - mean) / sd
                mask = _outside_range(derived, fill, score)
                if mask is not None:
                    reason = (
                        f"implies {score.name} outside {score.range[0]:g} to "
                        f"{score.range[1]:g} "
                        f"(reference mean {mean:g}, SD {sd:g} {site.unit})"
                    )
                    bad.append((site.name, mask, bmd.copy(), reason))
                s[fill] = derived
    return bad


# ------------------------------------------------------------ cross-field rules


def rule_failures(
    cols: Mapping[str, np.ndarray], catalog: Catalog
) -> list[tuple[str, np.ndarray, str]]:
    """The catalog's cross-field rules that rows break (:mod:`plo_risk.data.rules`).

    Parameters
    ----------
    cols : Mapping
        Every catalog field as a float array of canonical values as given (NaN
        missing, bools 0/1, categories as codes), before any derivation.
    catalog : Catalog

    Returns
    -------
    list of (field, row mask, reason)
        One entry per broken rule: the field it reports, the rows, the message.
    """
    out = []
    for rule in catalog.rules:
        mask = rule.broken(cols, catalog)
        if mask.any():
            out.append((rule.fields[0], mask, rule.reason()))
    return out


def _record_columns(parsed: Mapping[str, Any], catalog: Catalog) -> dict:
    """One validated record as the one-row arrays :func:`rule_failures` reads."""
    cols = {}
    for f in catalog:
        v = parsed.get(f.name)
        if v is None:
            x = np.nan
        elif f.dtype == "category":
            x = float(f.categories.index(v))
        else:
            x = float(v)
        cols[f.name] = np.array([x])
    return cols


# ------------------------------------------------------------------ one record


@lru_cache(maxsize=8)
def record_model(catalog: Catalog | None = None):
    """The pydantic model of one record, generated from the catalog.

    Values are coerced by the catalog's rules (units from the validation context),
    then range-checked in canonical units. Useful for an app's JSON schema:
    ``record_model().model_json_schema()``.

    Parameters
    ----------
    catalog : Catalog, default=None
        ``None`` uses the shipped catalog.

    Returns
    -------
    type[pydantic.BaseModel]
    """
    catalog = catalog or load_catalog()

    def coercer(feat: Feature):
        def coerce(value: Any, info) -> Any:
            out, reason = _coerce_scalar(feat, value)
            if reason is not None:
                raise PydanticCustomError("plo_type", reason)
            if out is MISSING:
                return None
            unit = ((info.context or {}).get("units") or {}).get(feat.name)
            if unit and feat.is_numeric:
                out = out * feat.unit_factor(unit)
            if feat.is_numeric:
                lo, hi = feat.range  # type: ignore[misc]
                if not lo <= out <= hi:
                    raise PydanticCustomError("plo_range", _range_reason(feat, unit))
                if feat.dtype == "int":
                    return int(round(out))
            return out

        return coerce

    py_types = {"float": float, "int": int, "bool": bool, "category": str}
    fields = {}
    for feat in catalog:
        annotated = (py_types[feat.dtype] | None, BeforeValidator(coercer(feat)))
        fields[feat.name] = (
            Annotated[annotated[0], annotated[1]],
            Field(default=None, description=feat.label),
        )
    return create_model(
        "PLORecord",
        __config__=ConfigDict(extra="forbid", frozen=True),
        **fields,
    )


def validate_record(
    record: Mapping[str, Any],
    *,
    units: Mapping[str, str] | None = None,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """Validate one patient record and return it in canonical units.

    Parameters
    ----------
    record : Mapping
        Field name to value. Missing fields, ``None``, NaN, blank text and the
        words of :data:`MISSING_TEXT` (``NA``, ``NULL``, ...; see
        :func:`is_missing`) count as not given. Booleans accept true/false, yes/no, 1/0; numbers accept
        numeric strings. ``patient_id`` is passed through.
    units : Mapping, default=None
        Field name to the unit its value is given in, one of the catalog's
        ``alt_units`` (e.g. ``{"vitamin_d_25oh": "nmol/L"}``). Omitted fields are
        in the canonical unit.
    catalog : Catalog, default=None
        ``None`` uses the shipped catalog.

    Returns
    -------
    dict
        Every catalog field (``None`` when not given), in canonical units, with BMD
        and T/Z scores derived from each other where one is missing.

    Raises
    ------
    ValidationError
        Listing every bad field: unknown fields (the first
        :data:`MAX_UNKNOWN_NAMED` with the closest known name, the rest counted),
        wrong types, out-of-range values, missing required fields, bad units, a
        ``patient_id`` longer than :data:`MAX_ID_LENGTH` characters.

    Examples
    --------
    >>> from plo_risk import validate_record
    >>> rec = validate_record(
    ...     {"age_years": 33, "parity": 2, "months_postpartum": 3,
    ...      "vitamin_d_25oh": 45, "bmd_lumbar_spine": 0.852},
    ...     units={"vitamin_d_25oh": "nmol/L"})
    >>> round(rec["vitamin_d_25oh"], 2), round(rec["z_lumbar_spine"], 2)
    (18.03, -2.0)
    """
    catalog = catalog or load_catalog()
    if not isinstance(record, Mapping):
        raise ValidationError(
            [Problem("record", record, "must be a mapping of field names to values")]
        )
    units = check_units(units, catalog)
    problems: list[Problem] = []
    data: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    unknowns = _Unknowns(catalog, "field", "fields")
    for key, value in record.items():
        if key in catalog:
            data[key] = value
        elif key in _PASSTHROUGH:
            passthrough[key] = value
        elif is_outcome_column(key):
            continue  # an outcome, not an input: a record's risk does not use it
        elif problem := unknowns.problem(key, value):
            problems.append(problem)
    problems += unknowns.rest()
    if ID_COLUMN in passthrough and (reason := _id_reason(passthrough[ID_COLUMN])):
        problems.append(Problem(ID_COLUMN, passthrough[ID_COLUMN], reason))
    model = record_model(catalog)
    try:
        parsed = model.model_validate(data, context={"units": units}).model_dump()
    except PydanticError as exc:
        parsed = None
        for err in exc.errors(include_url=False):
            name = err["loc"][0]
            feat = catalog[name]
            problems.append(
                Problem(name, record[name], err["msg"], _unit_label(feat, units))
            )
    for feat in catalog:
        if not feat.missing:
            value = record.get(feat.name)
            if is_missing(value):
                problems.append(Problem(feat.name, MISSING, _required_reason(feat)))
    if OUTCOME_COLUMN in passthrough:
        out, reason = _coerce_scalar(_OUTCOME, passthrough[OUTCOME_COLUMN])
        if reason or out is MISSING:
            problems.append(
                Problem(OUTCOME_COLUMN, passthrough[OUTCOME_COLUMN], _OUTCOME_REASON)
            )
        else:
            passthrough[OUTCOME_COLUMN] = int(out)
    if problems:
        raise ValidationError(_order(problems, catalog))
    broken = rule_failures(_record_columns(parsed, catalog), catalog)
    if broken:
        raise ValidationError(
            [
                Problem(
                    name, record.get(name), reason, _unit_label(catalog[name], units)
                )
                for name, _, reason in broken
            ]
        )
    cols = {
        f.name: np.array(
            [np.nan if parsed[f.name] is None else parsed[f.name]], dtype=float
        )
        for f in _bmd_fields(catalog)
    }
    bad = _derive_scores(cols, catalog)
    if bad:
        raise ValidationError(
            [
                Problem(
                    name, record.get(name), reason, _unit_label(catalog[name], units)
                )
                for name, _, _, reason in bad
            ]
        )
    for name, arr in cols.items():
        parsed[name] = None if np.isnan(arr[0]) else float(arr[0])
    return {
        **({ID_COLUMN: passthrough[ID_COLUMN]} if ID_COLUMN in passthrough else {}),
        **parsed,
        **{k: v for k, v in passthrough.items() if k != ID_COLUMN},
    }


_OUTCOME = Feature(
    name=OUTCOME_COLUMN,
    group="demographic",
    dtype="bool",
    label="outcome",
    missing=False,
    modifiable=False,
    direction="none",
    reference="",
)
_OUTCOME_REASON = f"must be 0 or 1 ({OUTCOME_DEFINITION})"


def _unit_label(feat: Feature, units: Mapping[str, str]) -> str | None:
    unit = units.get(feat.name)
    return unit if unit and unit != feat.unit else None


def _bmd_fields(catalog: Catalog) -> list[Feature]:
    return [f for f in catalog if f.bmd_reference is not None or f.derived_from]


def _order(problems: list[Problem], catalog: Catalog) -> list[Problem]:
    rank = {n: i for i, n in enumerate(catalog.names)}
    return sorted(problems, key=lambda p: rank.get(p.field, -1))


# -------------------------------------------------------------------- frames


@dataclass
class ValidatedFrame:
    """Result of :func:`validate_frame`.

    Attributes
    ----------
    valid : pandas.DataFrame
        Rows without problems, in canonical units, original index kept. Numeric and
        boolean fields are float64 (booleans as 0/1, NaN when not given); the
        category field is a pandas Categorical of the catalog's categories.
    rejects : pandas.DataFrame
        One row per bad cell: ``row`` (the original index label), ``field``,
        ``value`` (as text), ``reason`` and ``message`` (``field=value: reason``).
    n_input : int
        Rows in the input; ``len(valid) + n_rejected_rows == n_input``.
    index : pandas.Index
        The input's index, in input order (valid and rejected rows).
    ids : pandas.Series or None
        The input's ``patient_id`` column as given (every row), if it had one.
    derived : pandas.DataFrame or None
        Indexed like ``valid``, one bool column per BMD and T/Z field: True where
        the value was not given but derived (a T-score from the BMD, or the BMD
        from a score). Explanations fold a derived value into the one it came
        from (:func:`plo_risk.explain.fold_contributions`).
    outcomes : pandas.DataFrame or None
        Indexed like ``valid``: the input's event-history columns
        (:data:`OUTCOME_COLUMNS`, ``true_risk_<h>m``) as given, when it had any.
        They are outcomes, so never in ``valid`` beside the inputs.
    """

    valid: pd.DataFrame
    rejects: pd.DataFrame
    n_input: int
    _rejected_rows: np.ndarray = field(repr=False, default_factory=lambda: np.array([]))
    index: pd.Index | None = field(repr=False, default=None)
    ids: pd.Series | None = field(repr=False, default=None)
    _valid_mask: np.ndarray | None = field(repr=False, default=None)
    _reject_positions: np.ndarray | None = field(repr=False, default=None)
    derived: pd.DataFrame | None = field(repr=False, default=None)
    outcomes: pd.DataFrame | None = field(repr=False, default=None)

    @property
    def valid_mask(self) -> np.ndarray:
        """Per input row (by position): True where the row is in ``valid``."""
        if self._valid_mask is None:
            return np.ones(self.n_input, dtype=bool)
        return self._valid_mask

    @property
    def reject_positions(self) -> np.ndarray:
        """Per row of ``rejects``: the position of its row in the input."""
        if self._reject_positions is None:
            return np.empty(0, dtype=np.int64)
        return self._reject_positions

    @property
    def rejected_rows(self) -> pd.Index:
        """Index labels of the rejected rows, in input order."""
        return pd.Index(self._rejected_rows)

    @property
    def n_rejected(self) -> int:
        """Number of rejected rows (a row with several bad cells counts once)."""
        return len(self._rejected_rows)


@lru_cache(maxsize=8)
def frame_schema(catalog: Catalog | None = None):
    """The pandera schema of a canonical frame, generated from the catalog.

    Checks dtypes, ranges, categories and required fields of frames already in
    canonical units (what :func:`validate_frame` returns as ``valid``).

    Returns
    -------
    pandera.pandas.DataFrameSchema
    """
    catalog = catalog or load_catalog()
    columns = {}
    for feat in catalog:
        # Numeric checks pass missing cells themselves (ignore_na=False): pandera
        # would otherwise copy every column without its missing rows before each
        # check, which is half of its time on a 100k-row chunk. Missing cells of
        # required fields fail the column's nullable check as before.
        checks = []
        if feat.is_numeric:
            lo, hi = feat.range
            checks.append(
                pa.Check(
                    partial(_in_range, lo=float(lo), hi=float(hi)),
                    ignore_na=False,
                    error=f"in_range({float(lo)}, {float(hi)})",
                )
            )
            if feat.dtype == "int":
                checks.append(
                    pa.Check(_is_whole, ignore_na=False, error="whole number")
                )
        elif feat.dtype == "bool":
            checks.append(
                pa.Check(_is_zero_one, ignore_na=False, error="isin([0.0, 1.0])")
            )
        else:
            checks.append(pa.Check.isin(list(feat.categories)))
        dtype = (
            pd.CategoricalDtype(list(feat.categories))
            if feat.dtype == "category"
            else "float64"
        )
        columns[feat.name] = pa.Column(
            dtype, checks=checks, nullable=feat.missing, required=True
        )
    return pa.DataFrameSchema(columns, strict=False, ordered=False)


def _is_whole(s: pd.Series) -> pd.Series:
    return s.isna() | (s == np.round(s))


def _in_range(s: pd.Series, *, lo: float, hi: float) -> pd.Series:
    return s.isna() | ((s >= lo) & (s <= hi))


def _is_zero_one(s: pd.Series) -> pd.Series:
    return s.isna() | (s == 0.0) | (s == 1.0)


def validate_frame(
    df: pd.DataFrame,
    *,
    units: Mapping[str, str] | None = None,
    unknown: str = "error",
    catalog: Catalog | None = None,
) -> ValidatedFrame:
    """Validate a cohort frame: canonical rows out, bad rows rejected with reasons.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per patient episode; columns named as catalog fields, plus
        optionally ``patient_id`` (passed through; a row whose id is longer than
        :data:`MAX_ID_LENGTH` characters is rejected), ``fracture`` (checked to be 0/1)
        and ``true_risk`` (passed through). Catalog fields that may be missing can
        be absent as columns.
    units : Mapping, default=None
        Field name to the unit of its whole column (as in :func:`validate_record`).
    unknown : {"error", "ignore"}, default="error"
        What to do with columns that are not catalog fields: raise (naming them,
        with the closest known name) or drop them.
    catalog : Catalog, default=None
        ``None`` uses the shipped catalog.

    Returns
    -------
    ValidatedFrame
        ``valid`` rows in canonical units and ``rejects`` with one row per bad cell.

    Raises
    ------
    ValidationError
        Only for problems of the frame as a whole: not a DataFrame, unknown
        columns, a required column absent, a bad ``units=`` entry.

    Examples
    --------
    >>> import pandas as pd
    >>> from plo_risk import validate_frame
    >>> df = pd.DataFrame({"age_years": [31, 29], "parity": [1, 2],
    ...                    "months_postpartum": [2, 40]})
    >>> res = validate_frame(df)
    >>> len(res.valid), res.rejects.loc[0, "message"][:38]
    (1, 'months_postpartum=40: must be a number')
    """
    catalog = catalog or load_catalog()
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(
            [Problem("df", type(df).__name__, "must be a pandas DataFrame")]
        )
    if unknown not in ("error", "ignore"):
        raise ValueError(
            "The 'unknown' parameter of validate_frame must be one of 'error', "
            f"'ignore'. Got {unknown!r} instead."
        )
    units = check_units(units, catalog)
    frame_problems = []
    unknowns = _Unknowns(catalog, "column", "columns")
    for col in df.columns:
        known = col in catalog or col in _PASSTHROUGH or is_outcome_column(col)
        if not known and unknown == "error" and (problem := unknowns.problem(col)):
            frame_problems.append(problem)
    frame_problems += unknowns.rest()
    if df.columns.duplicated().any():
        twice = df.columns[df.columns.duplicated()].unique()
        for col in twice[:MAX_UNKNOWN_NAMED]:
            frame_problems.append(
                Problem(_show_name(col), NO_VALUE, "column appears twice")
            )
        if len(twice) > MAX_UNKNOWN_NAMED:
            more = len(twice) - MAX_UNKNOWN_NAMED
            frame_problems.append(
                Problem("...", NO_VALUE, f"and {more:,} more columns that appear twice")
            )
    for feat in catalog:
        if not feat.missing and feat.name not in df.columns:
            frame_problems.append(
                Problem(
                    feat.name, NO_VALUE, f"required column is absent ({feat.label})"
                )
            )
    if frame_problems:
        raise ValidationError(frame_problems)

    n = len(df)
    cols: dict[str, np.ndarray] = {}
    bad_cells: list[tuple[str, np.ndarray, Any, str]] = []
    for feat in catalog:
        if feat.name in df.columns:
            values, errors = _coerce_column(feat, df[feat.name])
            bad_cells.extend(errors)
        else:
            values = np.full(n, np.nan)
        if feat.is_numeric and feat.name in units:
            values = values * feat.unit_factor(units[feat.name])
        cols[feat.name] = values
    outcome = None
    if OUTCOME_COLUMN in df.columns:
        outcome, errors = _coerce_column(_OUTCOME, df[OUTCOME_COLUMN])
        missing = np.isnan(outcome) & ~_any_mask(errors, n)
        errors = [
            (OUTCOME_COLUMN, m, df[OUTCOME_COLUMN], _OUTCOME_REASON)
            for _, m, _, _ in errors
        ]
        if missing.any():
            errors.append(
                (OUTCOME_COLUMN, missing, df[OUTCOME_COLUMN], _OUTCOME_REASON)
            )
        bad_cells.extend(errors)

    if ID_COLUMN in df.columns:
        bad_cells.extend(_id_cells(df[ID_COLUMN]))
    canonical = _canonical_frame(cols, catalog, df.index)
    bad_cells.extend(_schema_failures(canonical, catalog, df, units, bad_cells))
    # A row already bad is rejected for that; derived values are checked on the rest
    # (as validate_record, which stops before deriving when a field is bad).
    type_or_range_bad = _any_mask(bad_cells, n)
    # Cross-field rules on the values as given (before T/Z are derived from BMD).
    for name, mask, reason in rule_failures(cols, catalog):
        bad_cells.append((name, mask & ~type_or_range_bad, df[name], reason))
    # As validate_record, which stops at a broken rule before deriving.
    type_or_range_bad = _any_mask(bad_cells, n)
    derivable = {f.name: cols[f.name] for f in _bmd_fields(catalog)}
    given_before = {k: ~np.isnan(v) for k, v in derivable.items()}
    for name, mask, source, reason in _derive_scores(derivable, catalog):
        original = df[name] if name in df.columns else pd.Series(source, index=df.index)
        bad_cells.append((name, mask & ~type_or_range_bad, original, reason))
    bad_rows = _any_mask(bad_cells, n)
    keep = ~bad_rows
    if bad_rows.any():
        valid = _canonical_frame(
            {k: v[keep] for k, v in cols.items()}, catalog, df.index[keep]
        )
    else:  # the common case: no row to drop, no copies
        valid = _canonical_frame(cols, catalog, df.index)
    front = [c for c in (ID_COLUMN,) if c in df.columns]
    back = [c for c in (OUTCOME_COLUMN, "true_risk") if c in df.columns]
    extras = {c: df.loc[keep, c] if bad_rows.any() else df[c] for c in front + back}
    if outcome is not None:
        extras[OUTCOME_COLUMN] = pd.Series(outcome[keep], index=valid.index).astype(
            "int64"
        )
    if extras:
        valid = pd.concat(
            [
                pd.DataFrame({c: extras[c] for c in front}, index=valid.index),
                valid,
                pd.DataFrame({c: extras[c] for c in back}, index=valid.index),
            ],
            axis=1,
        )
    outcome_cols = [c for c in df.columns if is_outcome_column(c)]
    outcomes = (
        pd.DataFrame(
            {
                c: (df[c][keep] if bad_rows.any() else df[c]).to_numpy()
                for c in outcome_cols
            },
            index=valid.index,
        )
        if outcome_cols
        else None
    )
    rejects, positions = _rejects_frame(bad_cells, df.index, units, catalog)
    derived = pd.DataFrame(
        {k: (~np.isnan(v) & ~given_before[k])[keep] for k, v in derivable.items()},
        index=valid.index,
    )
    return ValidatedFrame(
        valid,
        rejects,
        n,
        np.asarray(df.index[bad_rows]),
        index=df.index,
        ids=df[ID_COLUMN] if ID_COLUMN in df.columns else None,
        _valid_mask=keep,
        _reject_positions=positions,
        derived=derived,
        outcomes=outcomes,
    )


def _any_mask(cells, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for _, mask, _, _ in cells:
        out |= mask
    return out


def _coerce_column(feat: Feature, s: pd.Series) -> tuple[np.ndarray, list]:
    """Coerce one column to float64 (category: codes later); collect bad cells."""
    dtype = s.dtype
    n = len(s)
    errors = []
    if feat.dtype != "category" and (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    ):
        values = s.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        bad = np.isinf(values)
        if feat.dtype == "bool":
            bad |= ~np.isnan(values) & (values != 0.0) & (values != 1.0)
        elif feat.dtype == "int":
            with np.errstate(invalid="ignore"):
                bad |= np.isfinite(values) & (values != np.round(values))
        if bad.any():
            errors.append((feat.name, bad, s, _type_reason(feat)))
            values = np.where(bad, np.nan, values)
        return values, errors
    if pd.api.types.is_bool_dtype(dtype) and feat.dtype != "category":
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        if feat.dtype != "bool":
            bad = ~np.isnan(values)
            if bad.any():
                errors.append((feat.name, bad, s, _type_reason(feat)))
            return np.full(n, np.nan), errors
        return values, errors
    # Object, string or categorical columns: apply the scalar rule per distinct value.
    if isinstance(dtype, pd.StringDtype):
        # Text only (or missing): no types to keep apart, factorize directly.
        codes, values = pd.factorize(s, use_na_sentinel=False)
        uniques = np.empty(len(values), dtype=object)
        uniques[:] = [None if v is pd.NA or v is None else v for v in values]
        inverse = np.asarray(codes, dtype=np.int64)
    else:
        raw = s.astype(object).to_numpy()
        uniques, inverse = _factorize_by_type(raw)
    coded = np.empty(len(uniques), dtype=object)
    reasons: dict[int, str] = {}
    for i, u in enumerate(uniques):
        out, reason = _coerce_scalar(feat, u)
        if reason is not None:
            reasons[i] = reason
            coded[i] = np.nan
        elif out is MISSING:
            coded[i] = np.nan
        elif feat.dtype == "category":
            coded[i] = float(feat.categories.index(out))
        else:
            coded[i] = float(out)
    values = coded.astype("float64")[inverse]
    by_reason: dict[str, list[int]] = {}
    for i, reason in reasons.items():
        by_reason.setdefault(reason, []).append(i)
    for reason, idx in by_reason.items():
        errors.append((feat.name, np.isin(inverse, idx), s, reason))
    return values, errors


def _factorize_by_type(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of an object array, keeping types apart (True is not 1)."""
    # Compare type identities as integers: comparing an object array with a numpy
    # scalar type (np.bool_) is not an elementwise comparison.
    kinds = np.fromiter((id(type(v)) for v in raw), dtype=np.int64, count=len(raw))
    inverse = np.empty(len(raw), dtype=np.int64)
    uniques: list[Any] = []
    for kind in np.unique(kinds):
        at = np.flatnonzero(kinds == kind)
        codes, values = _factorize(raw[at])
        inverse[at] = codes + len(uniques)
        uniques.extend(values)
    out = np.empty(len(uniques), dtype=object)
    out[:] = uniques
    return out, inverse


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of cells of one type; cells that cannot be hashed (lists,
    dicts, sets, deeply nested tuples) are each their own distinct value, so each
    is judged (and rejected) by the scalar rule instead of failing the column."""
    try:
        return pd.factorize(values, use_na_sentinel=False)
    except Exception:  # unhashable or hostile cells: TypeError, RecursionError, ...
        return np.arange(len(values), dtype=np.int64), values


def _canonical_frame(
    cols: dict[str, np.ndarray], catalog: Catalog, index: pd.Index
) -> pd.DataFrame:
    data = {}
    for feat in catalog:
        v = cols[feat.name]
        if feat.dtype == "category":
            codes = np.where(np.isnan(v), -1, v).astype("int8")
            data[feat.name] = pd.Categorical.from_codes(
                codes, categories=list(feat.categories)
            )
        else:
            data[feat.name] = v
    return pd.DataFrame(data, index=index, copy=False)


def _schema_failures(
    canonical: pd.DataFrame,
    catalog: Catalog,
    df: pd.DataFrame,
    units: Mapping[str, str],
    already: list,
) -> list:
    """Run the pandera schema; turn its failure cases into bad cells."""
    try:
        frame_schema(catalog).validate(canonical, lazy=True, inplace=True)
        return []
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    cells = []
    n = len(canonical)
    positional = canonical.index.equals(pd.RangeIndex(n))
    for name, group in cases.groupby("column", sort=False):
        if name not in catalog:
            continue
        feat = catalog[name]
        source = df[name] if name in df.columns else None
        if (group["check"] == "not_nullable").any():
            # A required cell that was given but bad is reported once, as bad.
            nulls = np.isnan(_as_float(canonical[name]))
            nulls &= ~_any_mask([c for c in already if c[0] == name], n)
            cells.append((name, nulls, source, _required_reason(feat)))
        idx = group.loc[group["check"] != "not_nullable", "index"].dropna()
        if len(idx):
            if positional:
                rows = idx.to_numpy(dtype=np.int64)
            else:
                rows = canonical.index.get_indexer(pd.Index(idx.to_numpy()))
            mask = np.zeros(n, dtype=bool)
            mask[rows] = True
            cells.append((name, mask, source, _range_reason(feat, units.get(name))))
    return cells


def _as_float(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return np.where(s.cat.codes.to_numpy() < 0, np.nan, 0.0)
    return s.to_numpy(dtype="float64", na_value=np.nan)


def _rejects_frame(
    cells, index: pd.Index, units: Mapping[str, str], catalog: Catalog
) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per bad cell, in input order, and each one's position in the input."""
    parts = []
    for name, mask, source, reason in cells:
        pos = np.flatnonzero(mask)
        if not len(pos):
            continue
        if source is None:
            values = [MISSING] * len(pos)
        else:
            values = (
                np.asarray(source.astype(object))[pos]
                if not isinstance(source, np.ndarray)
                else source[pos]
            )
        feat = catalog[name] if name in catalog else None
        unit = _unit_label(feat, units) if feat is not None else None
        msgs = []
        shown = []
        for v in values:
            if is_missing(v):
                v = MISSING
            p = Problem(name, v, reason, unit)
            msgs.append(p.message)
            shown.append("" if v is MISSING else _show(v))
        parts.append(
            pd.DataFrame(
                {
                    "_pos": pos,
                    "row": index[pos],
                    "field": name,
                    "value": shown,
                    "reason": reason,
                    "message": msgs,
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {
                "row": pd.Series([], dtype=index.dtype),
                "field": pd.Series([], dtype=object),
                "value": pd.Series([], dtype=object),
                "reason": pd.Series([], dtype=object),
                "message": pd.Series([], dtype=object),
            }
        ), np.empty(0, dtype=np.int64)
    rank = {n: i for i, n in enumerate([ID_COLUMN, *catalog.names, OUTCOME_COLUMN])}
    out = pd.concat(parts, ignore_index=True)
    out["_rank"] = out["field"].map(rank)
    out = out.sort_values(["_pos", "_rank"], kind="stable")
    positions = out["_pos"].to_numpy(dtype=np.int64)
    return out.drop(columns=["_pos", "_rank"]).reset_index(drop=True), positions

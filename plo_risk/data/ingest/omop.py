"""OMOP CDM v5.4: write a cohort into OMOP tables and read one back.

:func:`to_omop` writes a cohort (e.g. ``generate_cohort(..., style="clean")``) into
the OMOP tables ``person``, ``measurement``, ``observation``,
``condition_occurrence``, ``drug_exposure`` and ``procedure_occurrence``, with the
column types of OHDSI's v5.4 DDL, through SQLAlchemy, and adds the ``concept`` rows
of the concepts it uses (and the ``vocabulary`` row of the local vocabulary
``PLO``) where they are missing: vocabulary tables are never dropped or replaced.
:func:`read_omop` reads them back into a flat frame of catalog fields;
:func:`plo_risk.data.ingest.ingest` uses it when its source is a database URL and
adds validation and the quality report.

Where each field lives is the concept map ``registry/omop_concepts.yaml`` (shipped;
its header gives the source of every concept id, and which ids are local concepts,
>= 2,000,000,000, awaiting a standard mapping). DuckDB through duckdb-engine is the
embedded default: ``duckdb:///registry.duckdb``.

One episode per person:

* the *index date* is the assessment observation (the latest one); without it, the
  latest record of a mapped field;
* the *delivery* of the episode is a delivery procedure or delivery-outcome
  condition within the episode window around the index date (the latest on or
  before it, else the first after it): ``months_postpartum`` is the time from it to
  the index date, in months of 30.436875 days; ``age_years`` is the time from the
  birth date, in years of 365.2425 days;
* a field's value is its latest record from ``lookback_days`` before the index date
  to the end of the index day, in the unit of ``unit_source_value`` (converted with
  the catalog's alternate units);
* a yes/no field is its latest answer (``value_as_concept_id``); without one, a
  clinical event of the field (a drug exposure, a condition) means yes;
* ``parity`` without an observation counts the deliveries up to this one;
* ``fracture`` is 1 when an outcome condition falls in the episode window around
  the delivery, else 0;
* ``ancestry`` is ``race_source_value`` when it names a category, else the
  category of the ethnicity concept when only one has it (Hispanic or Latino),
  else the first category of the map with the race concept (White: european);
* records of ``condition_occurrence`` and ``procedure_occurrence`` under a concept
  the map does not read that look like a fracture or a delivery (by concept name
  or ICD-10 source code) are not read, but counted per concept in
  :attr:`QualityReport.unmapped_concepts` and warned about
  (:class:`UnmappedConceptWarning`).

Examples
--------
>>> import tempfile, pathlib
>>> from plo_risk.data.synthetic import generate_cohort
>>> from plo_risk.data.ingest.omop import read_omop, to_omop
>>> cohort = generate_cohort(50, seed=2)
>>> with tempfile.TemporaryDirectory() as d:
...     url = f"duckdb:///{pathlib.Path(d) / 'omop.duckdb'}"
...     counts = to_omop(cohort, url)
...     back = read_omop(url)
>>> counts["person"], len(back), list(back["patient_id"][:2])
(50, 50, ['P0000001', 'P0000002'])
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from plo_risk.data.catalog import Catalog, load_catalog
from plo_risk.data.ingest.common import (
    DAYS_PER_UNIT,
    MappingError,
    Prepared,
    RegistryError,
    UnmappedConceptWarning,
    closest,
    norm,
    read_yaml,
)
from plo_risk.data.schema import ID_COLUMN, OUTCOME_COLUMN, validate_frame
from plo_risk.utils.resources import shipped_file
from plo_risk.utils.version import __version__

__all__ = ["default_concepts_path", "load_concepts", "read_omop", "to_omop"]

TABLES = (
    "person",
    "measurement",
    "observation",
    "condition_occurrence",
    "drug_exposure",
    "procedure_occurrence",
)
_EVENT_TABLES = ("condition_occurrence", "drug_exposure", "procedure_occurrence")
_DOMAIN = {
    "measurement": "Measurement",
    "observation": "Observation",
    "condition_occurrence": "Condition",
    "drug_exposure": "Drug",
    "procedure_occurrence": "Procedure",
}
# Per table: (concept column, date column, datetime column).
_COLS = {
    "measurement": (
        "measurement_concept_id",
        "measurement_date",
        "measurement_datetime",
    ),
    "observation": (
        "observation_concept_id",
        "observation_date",
        "observation_datetime",
    ),
    "condition_occurrence": (
        "condition_concept_id",
        "condition_start_date",
        "condition_start_datetime",
    ),
    "drug_exposure": (
        "drug_concept_id",
        "drug_exposure_start_date",
        "drug_exposure_start_datetime",
    ),
    "procedure_occurrence": (
        "procedure_concept_id",
        "procedure_date",
        "procedure_datetime",
    ),
}
DAYS_PER_YEAR = DAYS_PER_UNIT["years"]  # mean Gregorian year
DAYS_PER_MONTH = DAYS_PER_UNIT["months"]
LOCAL_CONCEPT_MIN = 2_000_000_000  # OMOP convention for site-defined concepts

# OMOP CDM v5.4 columns of the tables written, as in OHDSI's official DDL
# (inst/csv/OMOP_CDMv5.4_Field_Level.csv of OHDSI/CommonDataModel, the source of
# inst/ddl/5.4/*): i integer, d date, t datetime (TIMESTAMP), f float, sN
# varchar(N), x varchar(MAX) (TEXT); "!" marks NOT NULL. The DDL writes float as
# NUMERIC, which DuckDB reads as DECIMAL(18,3) (rounding a BMD of 0.9234 to
# 0.923): float columns are DOUBLE here.
_DDL = {
    "person": "person_id i!,gender_concept_id i!,year_of_birth i!,month_of_birth i,"
    "day_of_birth i,birth_datetime t,race_concept_id i!,ethnicity_concept_id i!,"
    "location_id i,provider_id i,care_site_id i,person_source_value s50,"
    "gender_source_value s50,gender_source_concept_id i,race_source_value s50,"
    "race_source_concept_id i,ethnicity_source_value s50,"
    "ethnicity_source_concept_id i",
    "measurement": "measurement_id i!,person_id i!,measurement_concept_id i!,"
    "measurement_date d!,measurement_datetime t,measurement_time s10,"
    "measurement_type_concept_id i!,operator_concept_id i,value_as_number f,"
    "value_as_concept_id i,unit_concept_id i,range_low f,range_high f,provider_id i,"
    "visit_occurrence_id i,visit_detail_id i,measurement_source_value s50,"
    "measurement_source_concept_id i,unit_source_value s50,unit_source_concept_id i,"
    "value_source_value s50,measurement_event_id i,meas_event_field_concept_id i",
    "observation": "observation_id i!,person_id i!,observation_concept_id i!,"
    "observation_date d!,observation_datetime t,observation_type_concept_id i!,"
    "value_as_number f,value_as_string s60,value_as_concept_id i,"
    "qualifier_concept_id i,unit_concept_id i,provider_id i,visit_occurrence_id i,"
    "visit_detail_id i,observation_source_value s50,observation_source_concept_id i,"
    "unit_source_value s50,qualifier_source_value s50,value_source_value s50,"
    "observation_event_id i,obs_event_field_concept_id i",
    "condition_occurrence": "condition_occurrence_id i!,person_id i!,"
    "condition_concept_id i!,condition_start_date d!,condition_start_datetime t,"
    "condition_end_date d,condition_end_datetime t,condition_type_concept_id i!,"
    "condition_status_concept_id i,stop_reason s20,provider_id i,"
    "visit_occurrence_id i,visit_detail_id i,condition_source_value s50,"
    "condition_source_concept_id i,condition_status_source_value s50",
    "drug_exposure": "drug_exposure_id i!,person_id i!,drug_concept_id i!,"
    "drug_exposure_start_date d!,drug_exposure_start_datetime t,"
    "drug_exposure_end_date d!,drug_exposure_end_datetime t,verbatim_end_date d,"
    "drug_type_concept_id i!,stop_reason s20,refills i,quantity f,days_supply i,"
    "sig x,route_concept_id i,lot_number s50,provider_id i,visit_occurrence_id i,"
    "visit_detail_id i,drug_source_value s50,drug_source_concept_id i,"
    "route_source_value s50,dose_unit_source_value s50",
    "procedure_occurrence": "procedure_occurrence_id i!,person_id i!,"
    "procedure_concept_id i!,procedure_date d!,procedure_datetime t,"
    "procedure_end_date d,procedure_end_datetime t,procedure_type_concept_id i!,"
    "modifier_concept_id i,quantity i,provider_id i,visit_occurrence_id i,"
    "visit_detail_id i,procedure_source_value s50,procedure_source_concept_id i,"
    "modifier_source_value s50",
    "concept": "concept_id i!,concept_name s255!,domain_id s20!,vocabulary_id s20!,"
    "concept_class_id s20!,standard_concept s1,concept_code s50!,"
    "valid_start_date d!,valid_end_date d!,invalid_reason s1",
    "vocabulary": "vocabulary_id s20!,vocabulary_name s255!,"
    "vocabulary_reference s255,vocabulary_version s255,vocabulary_concept_id i!",
}
# The standardized vocabulary tables: never dropped or replaced (a site loads them
# from Athena); to_omop only adds the rows it needs that are missing.
VOCABULARY_TABLES = (
    "concept",
    "vocabulary",
    "domain",
    "concept_class",
    "concept_relationship",
    "relationship",
    "concept_synonym",
    "concept_ancestor",
    "drug_strength",
)
# The local vocabulary of the concepts >= 2,000,000,000 (OHDSI Themis custom
# concepts: non-standard, concept_class_id "Undefined").
LOCAL_VOCABULARY = "PLO"
LOCAL_CONCEPT_CLASS = "Undefined"
# concept_class_id of a standard concept whose map entry names none.
_DEFAULT_CLASS = {"LOINC": "Lab Test", "RxNorm": "Ingredient"}
_VALID_FROM, _VALID_TO = pd.Timestamp("1970-01-01"), pd.Timestamp("2099-12-31")


def _sql_type(kind: str):
    if kind.startswith("s"):
        return sa.String(int(kind[1:]))
    return {
        "i": sa.Integer,
        "d": sa.Date,
        "t": sa.TIMESTAMP,
        "f": sa.Double,
        "x": sa.Text,
    }[kind]()


def _columns(table: str) -> list[tuple[str, str, bool]]:
    out = []
    for item in _DDL[table].split(","):
        name, kind = item.strip().split(" ")
        out.append((name, kind.rstrip("!"), kind.endswith("!")))
    return out


# ------------------------------------------------------------------ concept map


@dataclass(frozen=True)
class _Field:
    name: str
    table: str
    concept_id: int
    ids: tuple[int, ...]
    unit: str | None
    unit_concept_id: int
    source_value: str
    event_id: int | None
    event_table: str | None
    # The concept row: concept_name, vocabulary_id (of a standard concept; the
    # code system of `code` for a local one), concept_code, concept_class_id.
    concept_name: str = ""
    vocabulary: str | None = None
    code: str | None = None
    concept_class: str | None = None


@dataclass(frozen=True)
class Concepts:
    """A checked OMOP concept map (see ``registry/omop_concepts.yaml``)."""

    fields: dict[str, _Field]
    events: dict[int, dict[str, Any]]
    assessment: dict[str, Any]
    delivery: tuple[dict[str, Any], ...]
    outcome: dict[str, Any]
    answers: dict[str, int]
    gender_concept_id: int
    ancestry: dict[str, dict[str, int]]
    window_months: tuple[float, float]
    lookback_days: float
    type_concept_id: int
    schema: str | None
    where: str

    @property
    def outcome_ids(self) -> tuple[int, ...]:
        """The outcome's concept id and its ``also`` ids."""
        return (self.outcome["concept_id"], *self.outcome.get("also", ()))

    def delivery_ids(self, table: str) -> set[int]:
        """Concept ids (with ``also``) read as a delivery in ``table``."""
        return {
            cid
            for d in self.delivery
            if d["table"] == table
            for cid in (d["concept_id"], *d.get("also", ()))
        }


def default_concepts_path() -> Path:
    """Path of the shipped concept map (``registry/omop_concepts.yaml``)."""
    return shipped_file(
        "registry/omop_concepts.yaml", Path("registry") / "omop_concepts.yaml"
    )


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MappingError(
            f"{key}={value!r}: must be a non-negative integer concept id"
        )
    return value


# Map keys that become the concept row: their column and its length (v5.4 DDL).
_CONCEPT_TEXT = {
    "name": ("concept_name", 255),
    "vocabulary": ("vocabulary_id", 20),
    "code": ("concept_code", 50),
    "concept_class": ("concept_class_id", 20),
}


def _entry(entry: Any, key: str, tables: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise MappingError(f"{key}: must be a mapping with table and concept_id")
    if entry.get("table") not in tables:
        raise MappingError(
            f"{key}.table={entry.get('table')!r}: must be one of {', '.join(tables)}"
        )
    cid = _int(entry.get("concept_id"), f"{key}.concept_id")
    if entry.get("local") and cid < LOCAL_CONCEPT_MIN:
        raise MappingError(
            f"{key}.concept_id={cid}: a local concept must be >= {LOCAL_CONCEPT_MIN:,}"
        )
    also = entry.get("also") or []
    if not isinstance(also, list):
        raise MappingError(f"{key}.also={also!r}: must be a list of concept ids")
    out = dict(entry)
    out["also"] = tuple(_int(a, f"{key}.also") for a in also)
    if 0 in out["also"]:
        raise MappingError(
            f"{key}.also={also!r}: 0 is 'No matching concept', never one concept"
        )
    return out


def _described(entry: dict[str, Any], key: str) -> dict[str, Any]:
    """Check the keys of ``entry`` that become its concept row."""
    for name, (column, limit) in _CONCEPT_TEXT.items():
        value = entry.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise MappingError(f"{key}.{name}={value!r}: must be text")
        if len(str(value)) > limit:
            raise MappingError(
                f"{key}.{name}={value!r}: longer than {limit} characters, the "
                f"OMOP CDM v5.4 length of concept.{column}"
            )
    if entry["concept_id"] < LOCAL_CONCEPT_MIN:
        # A standard concept: its row must be the one Athena has.
        missing = [k for k in ("name", "vocabulary", "code") if not entry.get(k)]
        if missing:
            raise MappingError(
                f"{key}: standard concept {entry['concept_id']} needs "
                f"{', '.join(missing)} (its concept_name, vocabulary_id and bare "
                "concept_code, e.g. name: 25-hydroxyvitamin D3 [Mass/volume] in "
                'Serum or Plasma, vocabulary: LOINC, code: "1989-3"); or mark it '
                "local: true with an id >= 2,000,000,000"
            )
    return entry


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _source_value(entry: Mapping[str, Any]) -> str:
    vocab, code = entry.get("vocabulary"), entry.get("code")
    return f"{vocab}:{code}" if vocab and code else str(entry.get("concept_id"))


def load_concepts(
    concepts: str | Path | Mapping | None = None, *, catalog: Catalog | None = None
) -> Concepts:
    """Load and check an OMOP concept map.

    Parameters
    ----------
    concepts : str, Path or dict, default=None
        A concept-map YAML or its content; ``None`` loads the shipped one.
    catalog : Catalog, default=None

    Returns
    -------
    Concepts

    Raises
    ------
    MappingError
        Naming the key: an unknown catalog field, table or unit, a bad concept id,
        a standard concept without its name, vocabulary or code.
    """
    catalog = catalog or load_catalog()
    doc, where = read_yaml(
        concepts if concepts is not None else default_concepts_path(), "concept map"
    )
    if "columns" in doc:
        raise MappingError(
            f"{where}: this is a flat-extract mapping; a database source needs an "
            "OMOP concept map (registry/omop_concepts.yaml)"
        )
    for key in ("fields", "assessment", "delivery", "outcome", "answers", "person"):
        if key not in doc:
            raise MappingError(f"{where}: missing key {key!r}")
    events: dict[int, dict[str, Any]] = {}
    for i, e in enumerate(doc.get("events") or []):
        key = f"{where}: events[{i}]"
        e = _described(_entry(e, key, _EVENT_TABLES), key)
        events[e["concept_id"]] = e
    if not isinstance(doc["delivery"], list):
        raise MappingError(f"{where}: delivery: must be a list of concepts")
    delivery = []
    for i, e in enumerate(doc["delivery"]):
        key = f"{where}: delivery[{i}]"
        e = _entry(e, key, ("procedure_occurrence", "condition_occurrence"))
        delivery.append(_described(e, key))
        events.setdefault(e["concept_id"], e)
    fields: dict[str, _Field] = {}
    if not isinstance(doc["fields"], dict):
        raise MappingError(f"{where}: fields: must map catalog fields to concepts")
    for name, e in doc["fields"].items():
        key = f"{where}: fields.{name}"
        if name not in catalog:
            raise MappingError(
                f"{key}: not a catalog field{closest(name, catalog.names)}"
            )
        e = _described(_entry(e, key, ("measurement", "observation")), key)
        feat = catalog[name]
        unit = e.get("unit")
        if feat.is_numeric:
            allowed = [feat.unit, *feat.alt_units]
            if unit is None:
                unit = feat.unit
            if unit not in allowed:
                raise MappingError(
                    f"{key}.unit={unit!r}: {name} accepts {', '.join(allowed)}"
                )
        elif unit is not None:
            raise MappingError(f"{key}.unit: {name} has no unit")
        ids = (e["concept_id"], *e["also"])
        event = e.get("event")
        event_id = event_table = None
        if event is not None:
            event = _entry(event, f"{key}.event", _EVENT_TABLES)
            if feat.dtype != "bool":
                raise MappingError(f"{key}.event: only yes/no fields have events")
            event_id, event_table = event["concept_id"], event["table"]
            if event_id not in events:
                raise MappingError(
                    f"{key}.event.concept_id={event_id}: not listed under events"
                )
        fields[name] = _Field(
            name,
            e["table"],
            e["concept_id"],
            ids,
            unit,
            _int(e.get("unit_concept_id", 0), f"{key}.unit_concept_id"),
            _source_value(e),
            event_id,
            event_table,
            concept_name=str(e.get("name") or feat.label or name),
            vocabulary=e.get("vocabulary"),
            code=None if e.get("code") is None else str(e["code"]),
            concept_class=e.get("concept_class"),
        )
    assessment = _described(
        _entry(doc["assessment"], f"{where}: assessment", ("observation",)),
        f"{where}: assessment",
    )
    outcome = _described(
        _entry(doc["outcome"], f"{where}: outcome", ("condition_occurrence",)),
        f"{where}: outcome",
    )
    answers = doc["answers"]
    if not isinstance(answers, dict) or set(answers) != {"yes", "no"}:
        raise MappingError(f"{where}: answers: must be {{yes: <id>, no: <id>}}")
    person = doc["person"]
    if not isinstance(person, dict):
        raise MappingError(f"{where}: person: must be {{gender_concept_id, ancestry}}")
    ancestry = person.get("ancestry") or {}
    if not isinstance(ancestry, dict):
        raise MappingError(f"{where}: person.ancestry: must map categories to ids")
    cat = catalog["ancestry"].categories if "ancestry" in catalog else ()
    for name, ids in ancestry.items():
        if name not in cat:
            raise MappingError(
                f"{where}: person.ancestry.{name}: must be one of {', '.join(cat)}"
            )
        if not isinstance(ids, dict):
            raise MappingError(
                f"{where}: person.ancestry.{name}: must be {{race_concept_id, "
                "ethnicity_concept_id}"
            )
        for k in ("race_concept_id", "ethnicity_concept_id"):
            _int(ids.get(k, 0), f"{where}: person.ancestry.{name}.{k}")
    schema = doc.get("schema")
    if schema is not None and (not isinstance(schema, str) or not schema.strip()):
        raise MappingError(f"{where}: schema={schema!r}: must be a schema name or null")
    window = doc.get("window_months", [-3, 18])
    if not (
        isinstance(window, list)
        and len(window) == 2
        and all(_is_number(w) for w in window)
        and window[0] < window[1]
    ):
        raise MappingError(f"{where}: window_months={window!r}: must be [min, max]")
    lookback = doc.get("lookback_days", 730)
    if not _is_number(lookback) or lookback < 0:
        raise MappingError(
            f"{where}: lookback_days={lookback!r}: must be a non-negative number"
        )
    return Concepts(
        fields=fields,
        events=events,
        assessment=assessment,
        delivery=tuple(delivery),
        outcome=outcome,
        answers={k: _int(v, f"{where}: answers.{k}") for k, v in answers.items()},
        gender_concept_id=_int(person.get("gender_concept_id", 8532), "gender"),
        ancestry={k: dict(v) for k, v in ancestry.items()},
        window_months=(float(window[0]), float(window[1])),
        lookback_days=float(lookback),
        type_concept_id=_int(doc.get("type_concept_id", 32817), "type_concept_id"),
        schema=schema,
        where=where,
    )


# ------------------------------------------------------------------- engines


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for messages
        return url


def _file_database(url) -> Path | None:
    if url.get_backend_name() in ("duckdb", "sqlite") and url.database not in (
        None,
        "",
        ":memory:",
    ):
        return Path(url.database)
    return None


def _engine(url: str, *, read_only: bool, database: Path | None = None):
    """An engine for ``url``; reading never creates a database file."""

    shown = _redact(url)
    try:
        u = make_url(url)
    except ArgumentError:
        raise RegistryError(
            f"{url!r} is not a database URL (e.g. duckdb:///registry.duckdb)"
        ) from None
    path = _file_database(u)
    if database is not None:
        u = u.set(database=str(database))
    elif read_only and path is not None and not path.is_file():
        raise RegistryError(
            f"cannot connect to database {shown}: the file {path} does not exist"
        )
    connect_args: dict[str, Any] = {}
    backend = u.get_backend_name()
    if backend == "duckdb" and read_only:
        connect_args["read_only"] = True
    elif backend in ("postgresql", "mysql"):
        connect_args["connect_timeout"] = 5
    try:
        return sa.create_engine(u, connect_args=connect_args)
    except (NoSuchModuleError, ImportError) as exc:
        raise RegistryError(
            f"cannot connect to database {shown}: no driver for "
            f"{u.drivername!r} is installed ({exc})"
        ) from None


def _connect(engine, shown: str):

    try:
        return engine.connect()
    except (SQLAlchemyError, OSError) as exc:
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        raise RegistryError(
            f"cannot connect to database {shown}: it does not answer "
            f"({type(orig).__name__}: {text[:200]})"
        ) from None


def _sa_table(name: str, schema: str | None, metadata):
    """The OMOP table ``name`` as a SQLAlchemy ``Table`` (names quoted as needed)."""

    return sa.Table(
        name,
        metadata,
        *(
            sa.Column(col, _sql_type(k), nullable=not nn)
            for col, k, nn in _columns(name)
        ),
        schema=schema,
    )


# --------------------------------------------------------------------- write


def _dates(ts: pd.Series) -> pd.Series:
    return ts.dt.normalize()


def to_omop(
    frame: pd.DataFrame,
    url: str,
    *,
    concepts: str | Path | Mapping | None = None,
    if_exists: str = "fail",
    start_date: str = "2024-01-01",
) -> dict[str, int]:
    """Write a cohort into OMOP CDM v5.4 tables.

    Parameters
    ----------
    frame : pandas.DataFrame
        A cohort with catalog columns (``generate_cohort(...)`` or a validated
        frame); ``patient_id`` becomes ``person_source_value`` and ``fracture`` an
        outcome condition.
    url : str
        SQLAlchemy URL, e.g. ``duckdb:///registry.duckdb`` (the embedded default)
        or ``sqlite:///x.db``.
    concepts : str, Path or dict, default=None
        The concept map; ``None`` uses the shipped one.
    if_exists : {"fail", "replace"}, default="fail"
        What to do when the database already holds OMOP clinical tables
        (``person``, ``measurement``, ...): fail, or drop and write them again.
        The vocabulary tables (``concept``, ``vocabulary``, ``concept_ancestor``,
        ...) are never dropped or replaced, with either value: a table that is
        absent is created, and only the ``concept`` rows (by ``concept_id``) and
        the ``vocabulary`` row of the local vocabulary that are missing are added.
    start_date : str, default="2024-01-01"
        Assessment dates are ``start_date`` plus 0-364 days (row number mod 365).

    Returns
    -------
    dict
        Rows written per table (``concept``: the rows added).

    Raises
    ------
    RegistryError
        Invalid rows in ``frame``, clinical tables already present, a value
        longer than its OMOP column, or a database error. Nothing is
        half-written: a new database file appears only when complete, an existing
        one is changed in one transaction.

    Notes
    -----
    Column types follow OHDSI's OMOP CDM v5.4 DDL (integer ids, ``varchar(n)``,
    ``date``, ``TIMESTAMP``), except that ``float`` columns are ``DOUBLE``:
    the DDL's bare ``NUMERIC`` is ``DECIMAL(18,3)`` in DuckDB. A concept row
    carries the map entry's ``name``, ``vocabulary`` and bare ``code``; a local
    concept (>= 2,000,000,000) is in the vocabulary ``PLO``, class
    ``Undefined``, not standard.
    """

    if if_exists not in ("fail", "replace"):
        raise ValueError(
            "The 'if_exists' parameter of to_omop must be one of 'fail', 'replace'. "
            f"Got {if_exists!r} instead."
        )
    catalog = load_catalog()
    c = load_concepts(concepts, catalog=catalog)
    res = validate_frame(frame, unknown="ignore", catalog=catalog)
    if res.n_rejected:
        first = res.rejects["message"].iloc[0]
        raise RegistryError(
            f"to_omop: {res.n_rejected:,} row(s) of the frame are invalid (first: "
            f"{first}); validate the cohort first"
        )
    tables = _omop_tables(res.valid.reset_index(drop=True), c, catalog, start_date)
    for name, df in tables.items():
        _check_lengths(name, df)
    written: dict[str, int] = {}

    shown = _redact(url)
    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001
        raise RegistryError(f"{url!r} is not a database URL") from None
    path = _file_database(u)
    tmp = None
    if path is not None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            if leftover.exists():
                leftover.unlink()
    engine = _engine(url, read_only=False, database=tmp)
    try:
        with _connect(engine, shown) as conn:
            with conn.begin():
                existing = set(sa.inspect(conn).get_table_names(schema=c.schema))
                present = [t for t in TABLES if t in existing]
                if present and if_exists == "fail":
                    raise RegistryError(
                        f"database {shown} already holds OMOP tables "
                        f"({', '.join(present)}); pass if_exists='replace'"
                    )
                metadata = sa.MetaData()
                for name, df in tables.items():
                    tbl = _sa_table(name, c.schema, metadata)
                    if name in VOCABULARY_TABLES:
                        if name in existing:
                            df = _missing_rows(conn, tbl, df)
                        else:
                            tbl.create(conn)
                    else:
                        if name in existing:
                            tbl.drop(conn)
                        tbl.create(conn)
                    _insert(conn, tbl, df)
                    written[name] = len(df)
        engine.dispose()
        if tmp is not None:
            os.replace(tmp, path)
    except RegistryError:
        raise
    except Exception as exc:  # noqa: BLE001 - database drivers raise many types
        orig = getattr(exc, "orig", None) or exc
        raise RegistryError(
            f"cannot write OMOP tables to {shown}: {type(orig).__name__}: "
            f"{str(orig).strip()[:200]}"
        ) from None
    finally:
        engine.dispose()
        if tmp is not None:
            for leftover in (tmp, Path(str(tmp) + ".wal")):
                if leftover.exists():
                    leftover.unlink()
    return written


def _check_lengths(table: str, df: pd.DataFrame) -> None:
    """Text longer than its OMOP column is an error (PostgreSQL would refuse it)."""
    for col, kind, _ in _columns(table):
        if not kind.startswith("s") or col not in df or not len(df):
            continue
        limit = int(kind[1:])
        text = df[col].dropna().astype(str)
        long = text[text.str.len() > limit]
        if len(long):
            raise RegistryError(
                f"to_omop: {table}.{col} is varchar({limit}) in OMOP CDM v5.4; "
                f"{len(long):,} value(s) are longer, e.g. {long.iloc[0]!r}"
            )


def _missing_rows(conn, tbl, df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` whose key (first column) ``tbl`` does not hold yet."""
    key = tbl.columns[0]
    wanted = df[key.name].tolist()
    have: set = set()
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        rows = conn.execute(sa.select(key).where(key.in_(chunk)))
        have.update(r[0] for r in rows)
    return df[~df[key.name].isin(have)]


def _insert(conn, tbl, df: pd.DataFrame) -> None:
    cols = _columns(tbl.name)
    full = pd.DataFrame({col: df[col] if col in df else None for col, _, _ in cols})
    if not len(full):
        return
    if conn.dialect.name == "duckdb":
        raw = conn.connection.driver_connection
        view = f"_plo_{tbl.name}"
        raw.register(view, full)
        try:
            rows = sa.select(*(sa.cast(sa.column(c.name), c.type) for c in tbl.columns))
            conn.execute(
                tbl.insert().from_select(
                    [c.name for c in tbl.columns], rows.select_from(sa.table(view))
                )
            )
        finally:
            raw.unregister(view)
        return
    for col, k, _ in cols:
        if k == "d" and pd.api.types.is_datetime64_any_dtype(full[col].dtype):
            full[col] = full[col].dt.date.astype(object)
        elif k == "t" and pd.api.types.is_datetime64_any_dtype(full[col].dtype):
            full[col] = full[col].dt.to_pydatetime()
    full = full.astype(object).where(full.notna(), None)
    records = full.to_dict(orient="records")
    for i in range(0, len(records), 5000):
        conn.execute(tbl.insert(), records[i : i + 5000])


def _omop_tables(
    df: pd.DataFrame, c: Concepts, catalog: Catalog, start_date: str
) -> dict[str, pd.DataFrame]:
    n = len(df)
    pid = np.arange(1, n + 1, dtype=np.int64)
    index = pd.Timestamp(start_date) + pd.to_timedelta(np.arange(n) % 365, unit="D")
    index = pd.Series(index)
    birth = index - pd.to_timedelta(
        df["age_years"].to_numpy() * DAYS_PER_YEAR, unit="D"
    )
    delivery = index - pd.to_timedelta(
        df["months_postpartum"].to_numpy() * DAYS_PER_MONTH, unit="D"
    )
    ids = (
        df[ID_COLUMN].astype(str).to_numpy()
        if ID_COLUMN in df
        else pid.astype(str).astype(object)
    )
    ancestry = (
        df["ancestry"].astype(object).to_numpy()
        if "ancestry" in df
        else np.full(n, None, dtype=object)
    )
    race = np.array(
        [
            c.ancestry.get(a, {}).get("race_concept_id", 0) if isinstance(a, str) else 0
            for a in ancestry
        ]
    )
    ethnicity = np.array(
        [
            c.ancestry.get(a, {}).get("ethnicity_concept_id", 0)
            if isinstance(a, str)
            else 0
            for a in ancestry
        ]
    )
    person = pd.DataFrame(
        {
            "person_id": pid,
            "gender_concept_id": c.gender_concept_id,
            "year_of_birth": birth.dt.year.to_numpy(),
            "month_of_birth": birth.dt.month.to_numpy(),
            "day_of_birth": birth.dt.day.to_numpy(),
            "birth_datetime": birth,
            "race_concept_id": race,
            "ethnicity_concept_id": ethnicity,
            "person_source_value": ids,
            "gender_source_value": "F",
            "race_source_value": [a if isinstance(a, str) else None for a in ancestry],
        }
    )
    obs_parts = [
        pd.DataFrame(
            {
                "person_id": pid,
                "observation_concept_id": c.assessment["concept_id"],
                "observation_date": _dates(index),
                "observation_datetime": index,
                "observation_source_value": _source_value(c.assessment),
            }
        )
    ]
    meas_parts = []
    events: dict[str, list[pd.DataFrame]] = {t: [] for t in _EVENT_TABLES}
    yes, no = c.answers["yes"], c.answers["no"]
    for name, f in c.fields.items():
        if name not in df:
            continue
        v = df[name].to_numpy(dtype="float64", na_value=np.nan)
        has = ~np.isnan(v)
        if not has.any():
            continue
        feat = catalog[name]
        rows = {
            "person_id": pid[has],
            "value_as_number": v[has] if feat.is_numeric else np.nan,
        }
        if feat.is_numeric:
            factor = feat.unit_factor(f.unit) if f.unit else 1.0
            rows["value_as_number"] = v[has] / factor
            rows["unit_source_value"] = f.unit
            rows["unit_concept_id"] = f.unit_concept_id
        else:
            rows["value_as_concept_id"] = np.where(v[has] == 1.0, yes, no)
            rows["value_source_value"] = np.where(v[has] == 1.0, "yes", "no")
        t = index[has].reset_index(drop=True)
        prefix = "measurement" if f.table == "measurement" else "observation"
        part = pd.DataFrame(rows)
        part[f"{prefix}_concept_id"] = f.concept_id
        part[f"{prefix}_date"] = _dates(t)
        part[f"{prefix}_datetime"] = t
        part[f"{prefix}_source_value"] = f.source_value
        (meas_parts if prefix == "measurement" else obs_parts).append(part)
        if f.event_id is not None:
            yes_rows = has & (v == 1.0)
            if f.event_table == "condition_occurrence" and f.event_id in {
                d["concept_id"] for d in c.delivery
            }:
                continue  # written with the delivery below
            events[f.event_table].append(
                _event_frame(
                    f.event_table, pid[yes_rows], index[yes_rows], f.event_id, c
                )
            )
    # The delivery: a procedure, and its outcome condition (single or multiple).
    multiple = (
        df["multiple_gestation"].to_numpy(dtype="float64", na_value=np.nan) == 1.0
        if "multiple_gestation" in df
        else np.zeros(n, dtype=bool)
    )
    for d in c.delivery:
        if d["table"] == "procedure_occurrence":
            events["procedure_occurrence"].append(
                _event_frame("procedure_occurrence", pid, delivery, d["concept_id"], c)
            )
    singles = [d for d in c.delivery if d["table"] == "condition_occurrence"]
    if singles:
        twin_id = (
            c.fields["multiple_gestation"].event_id
            if "multiple_gestation" in c.fields
            else None
        )
        single = next((d for d in singles if d["concept_id"] != twin_id), singles[0])
        for d, rows in ((single, ~multiple),) + (
            ((c.events[twin_id], multiple),) if twin_id in c.events else ()
        ):
            events["condition_occurrence"].append(
                _event_frame(
                    "condition_occurrence",
                    pid[rows],
                    delivery[rows],
                    d["concept_id"],
                    c,
                )
            )
    if OUTCOME_COLUMN in df:
        frac = df[OUTCOME_COLUMN].to_numpy() == 1
        events["condition_occurrence"].append(
            _event_frame(
                "condition_occurrence",
                pid[frac],
                delivery[frac],
                c.outcome["concept_id"],
                c,
            )
        )
    out = {"person": person}
    out["measurement"] = _stack(meas_parts, "measurement", c)
    out["observation"] = _stack(obs_parts, "observation", c)
    for t in _EVENT_TABLES:
        out[t] = _stack(events[t], t, c)
    out["concept"] = _concept_table(c)
    out["vocabulary"] = _vocabulary_table(out["concept"])
    return out


def _event_frame(table, pid, when, concept_id, c: Concepts) -> pd.DataFrame:
    concept, date_col, dt_col = _COLS[table]
    when = pd.Series(when).reset_index(drop=True)
    entry = c.events.get(concept_id) or (
        c.outcome if concept_id == c.outcome["concept_id"] else {}
    )
    part = pd.DataFrame(
        {
            "person_id": pid,
            concept: concept_id,
            date_col: _dates(when),
            dt_col: when,
            f"{table.split('_')[0]}_source_value": _source_value(entry)
            if entry
            else str(concept_id),
        }
    )
    if table == "drug_exposure":
        part["drug_exposure_end_date"] = part[date_col]
    return part


def _stack(parts: list[pd.DataFrame], table: str, c: Concepts) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({col: [] for col, _, _ in _columns(table)})
    out = pd.concat(parts, ignore_index=True)
    out[f"{table.split('_')[0]}_type_concept_id"] = c.type_concept_id
    out.insert(0, f"{table}_id", np.arange(1, len(out) + 1, dtype=np.int64))
    return out


def _concept_row(entry: Mapping[str, Any], table: str) -> dict[str, Any]:
    """The ``concept`` row of a map entry (checked by :func:`_described`)."""
    cid = entry["concept_id"]
    local = cid >= LOCAL_CONCEPT_MIN
    vocabulary = entry.get("vocabulary")
    return {
        "concept_id": cid,
        "concept_name": str(entry.get("name") or cid),
        "domain_id": _DOMAIN[table],
        "vocabulary_id": LOCAL_VOCABULARY if local else str(vocabulary),
        "concept_class_id": entry.get("concept_class")
        or (
            LOCAL_CONCEPT_CLASS
            if local
            else _DEFAULT_CLASS.get(str(vocabulary), LOCAL_CONCEPT_CLASS)
        ),
        "standard_concept": None if local else "S",
        "concept_code": str(entry.get("code") or cid),
        "valid_start_date": _VALID_FROM,
        "valid_end_date": _VALID_TO,
        "invalid_reason": None,
    }


def _concept_table(c: Concepts) -> pd.DataFrame:
    """One row per concept the map writes (the ``also`` ids are Athena's)."""
    entries: list[tuple[Mapping[str, Any], str]] = [(c.assessment, "observation")]
    for f in c.fields.values():
        entry = {
            "concept_id": f.concept_id,
            "name": f.concept_name,
            "vocabulary": f.vocabulary,
            "code": f.code,
            "concept_class": f.concept_class,
        }
        entries.append((entry, f.table))
    entries += [(e, e["table"]) for e in c.events.values()]
    entries.append((c.outcome, "condition_occurrence"))
    rows: dict[int, dict[str, Any]] = {}
    for entry, table in entries:
        rows.setdefault(entry["concept_id"], _concept_row(entry, table))
    return pd.DataFrame(
        list(rows.values()), columns=[n for n, _, _ in _columns("concept")]
    )


def _vocabulary_table(concept: pd.DataFrame) -> pd.DataFrame:
    """The row of the local vocabulary, when local concepts are written."""
    if not (concept["vocabulary_id"] == LOCAL_VOCABULARY).any():
        return pd.DataFrame(columns=[n for n, _, _ in _columns("vocabulary")])
    return pd.DataFrame(
        [
            {
                "vocabulary_id": LOCAL_VOCABULARY,
                "vocabulary_name": "plo_risk local concepts (PLO)",
                "vocabulary_reference": "registry/omop_concepts.yaml of plo_risk",
                "vocabulary_version": f"plo_risk {__version__}",
                # Themis custom concepts: vocabulary_concept_id can be 0.
                "vocabulary_concept_id": 0,
            }
        ]
    )


# ---------------------------------------------------------------------- read


def read_omop(url: str, concepts: str | Path | Mapping | None = None) -> pd.DataFrame:
    """Read OMOP CDM tables into a flat cohort frame (one row per person).

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the database (``duckdb:///registry.duckdb``...). A
        database file that does not exist is an error, never created.
    concepts : str, Path or dict, default=None
        The concept map; ``None`` uses the shipped one.

    Returns
    -------
    pandas.DataFrame
        ``patient_id`` (``person_source_value``), the catalog fields in canonical
        units (NaN when not recorded or not readable) and ``fracture``. Not
        validated: use :func:`plo_risk.data.ingest.ingest` for that and the report.

    Raises
    ------
    RegistryError
        The database does not answer, or OMOP tables are missing.
    """
    catalog = load_catalog()
    prep = prepare_omop(url, concepts, catalog)
    return prep.frame


def prepare_omop(url: str, concepts: Any, catalog: Catalog) -> Prepared:
    c = load_concepts(concepts, catalog=catalog)
    shown = _redact(url)
    engine = _engine(url, read_only=True)
    try:
        with _connect(engine, shown) as conn:
            frames, unmapped = _query_all(conn, c, shown)
    finally:
        engine.dispose()
    prep = _assemble(frames, c, catalog, shown)
    prep.unmapped_concepts = unmapped
    if unmapped:
        listed = "; ".join(
            f"{u['table']}:{u['concept_id']}"
            + (f" {u['concept_name']!r}" if u["concept_name"] else "")
            + (f" ({u['source_value']})" if u["source_value"] else "")
            + f" looks like a {u['looks_like']}, {u['n_records']:,} record(s) of "
            f"{u['n_persons']:,} person(s)"
            for u in unmapped[:3]
        )
        more = f"; and {len(unmapped) - 3} more" if len(unmapped) > 3 else ""
        warnings.warn(
            f"{shown}: {len(unmapped)} concept(s) not in the concept map look like "
            f"fractures or deliveries and are not read: {listed}{more}. If they "
            "are, list their concept ids under outcome.also or a delivery entry's "
            f"also in the concept map ({c.where}); records of concept 0 need a "
            "concept first. QualityReport.unmapped_concepts lists them all",
            UnmappedConceptWarning,
            stacklevel=3,
        )
    return prep


def _query_all(
    conn, c: Concepts, shown: str
) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    try:
        existing = set(sa.inspect(conn).get_table_names(schema=c.schema))
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        raise RegistryError(f"cannot read database {shown}: {orig}") from None
    missing = [t for t in TABLES if t not in existing]
    if missing:
        raise RegistryError(
            f"database {shown} is missing OMOP CDM table(s): {', '.join(missing)} "
            f"(an OMOP CDM v5.4 database needs {', '.join(TABLES)})"
        )

    def q(stmt) -> pd.DataFrame:
        try:
            return pd.read_sql_query(stmt, conn)
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            first = str(orig).strip().splitlines()[0]
            raise RegistryError(
                f"cannot read OMOP tables of {shown}: {first[:200]}"
            ) from None

    person_cols = (
        "person_id",
        "person_source_value",
        "year_of_birth",
        "month_of_birth",
        "day_of_birth",
        "birth_datetime",
        "race_concept_id",
        "ethnicity_concept_id",
        "race_source_value",
    )
    frames = {
        "person": q(
            sa.select(*map(sa.column, person_cols)).select_from(
                sa.table("person", schema=c.schema)
            )
        )
    }
    by_table: dict[str, set[int]] = {t: set() for t in _COLS}
    for f in c.fields.values():
        by_table[f.table].update(f.ids)
        if f.event_id is not None:
            by_table[f.event_table].add(f.event_id)
    by_table["observation"].add(c.assessment["concept_id"])
    for table in ("procedure_occurrence", "condition_occurrence"):
        by_table[table].update(c.delivery_ids(table))
    by_table["condition_occurrence"].update(c.outcome_ids)
    for name, wanted in by_table.items():
        concept, date_col, dt_col = _COLS[name]
        cols = [
            sa.column("person_id"),
            sa.column(concept).label("concept_id"),
            sa.column(date_col).label("d"),
            sa.column(dt_col).label("dt"),
        ]
        if name in ("measurement", "observation"):
            cols += [
                sa.column("value_as_number").label("num"),
                sa.column("value_as_concept_id").label("vc"),
                sa.column("unit_source_value").label("unit"),
            ]
        frames[name] = q(
            sa.select(*cols)
            .select_from(sa.table(name, schema=c.schema))
            .where(sa.column(concept).in_(sorted(wanted)))
        )
    unmapped = _unmapped_concepts(q, c, by_table, "concept" in existing)
    return frames, unmapped


# What a fracture or a delivery recorded under a concept the map does not read
# looks like: its concept_name, or an ICD-10(-CM) code in its source value
# (fractures: S_2 of each body region, T02/T08/T10/T12, M80, M84.3-4, M48.5;
# deliveries: O80-O84, Z37).
_LOOKS_LIKE = {
    "fracture": (
        re.compile(r"fractur", re.IGNORECASE),
        re.compile(r"(?<![A-Z0-9])(S\d2|T0[28]|T1[02]|M80|M84\.?[34]|M48\.?5)"),
    ),
    "delivery": (
        re.compile(r"deliver|birth|cesarean|caesarean|parturition", re.IGNORECASE),
        re.compile(r"(?<![A-Z0-9])(O8[0-4]|Z37)"),
    ),
}
_SOURCE_VALUE = {
    "condition_occurrence": "condition_source_value",
    "procedure_occurrence": "procedure_source_value",
}


def _looks_like(name: Any, source_values: list[Any]) -> str | None:
    for kind, (by_name, by_code) in _LOOKS_LIKE.items():
        if isinstance(name, str) and by_name.search(name):
            return kind
        if any(isinstance(v, str) and by_code.search(v.upper()) for v in source_values):
            return kind
    return None


def _unmapped_concepts(
    q, c: Concepts, by_table: dict[str, set[int]], has_concept: bool
) -> list[dict[str, Any]]:
    """Records in the condition and procedure tables under a concept the map does
    not read that look like a fracture or a delivery, per concept (per source
    value for concept 0, "no matching concept"), most records first."""
    found = []
    for table, src_col in _SOURCE_VALUE.items():
        cid_col = _COLS[table][0]
        t = sa.table(
            table,
            sa.column(cid_col),
            sa.column(src_col),
            sa.column("person_id"),
            schema=c.schema,
        )
        cid, src = t.c[cid_col], t.c[src_col]
        counts = (
            sa.func.count().label("n_records"),
            sa.func.count(sa.distinct(t.c.person_id)).label("n_persons"),
        )
        known = sorted(by_table[table] | {0})
        if has_concept:
            con = sa.table(
                "concept",
                sa.column("concept_id"),
                sa.column("concept_name"),
                schema=c.schema,
            )
            name = con.c.concept_name
            source = t.outerjoin(con, con.c.concept_id == cid)
            group = (cid, name)
        else:
            name = sa.null()
            source = t
            group = (cid,)
        by_concept = q(
            sa.select(
                cid.label("concept_id"),
                name.label("concept_name"),
                sa.func.min(src).label("first"),
                sa.func.max(src).label("last"),
                *counts,
            )
            .select_from(source)
            .where(cid.not_in(known))
            .group_by(*group)
        )
        for r in by_concept.itertuples(index=False):
            kind = _looks_like(r.concept_name, [r.first, r.last])
            if kind:
                found.append(
                    {
                        "table": table,
                        "concept_id": int(r.concept_id),
                        "concept_name": r.concept_name
                        if isinstance(r.concept_name, str)
                        else None,
                        "source_value": r.first if isinstance(r.first, str) else None,
                        "looks_like": kind,
                        "n_records": int(r.n_records),
                        "n_persons": int(r.n_persons),
                    }
                )
        no_concept = q(
            sa.select(src.label("source_value"), *counts).where(cid == 0).group_by(src)
        )
        for r in no_concept.itertuples(index=False):
            kind = _looks_like(None, [r.source_value])
            if kind:
                found.append(
                    {
                        "table": table,
                        "concept_id": 0,
                        "concept_name": None,
                        "source_value": r.source_value,
                        "looks_like": kind,
                        "n_records": int(r.n_records),
                        "n_persons": int(r.n_persons),
                    }
                )
    return sorted(found, key=lambda u: -u["n_records"])


def _when(df: pd.DataFrame) -> pd.Series:
    dt = pd.to_datetime(df["dt"], errors="coerce")
    d = pd.to_datetime(df["d"], errors="coerce")
    return dt.fillna(d).astype("datetime64[us]")


def _assemble(
    frames: dict[str, pd.DataFrame], c: Concepts, catalog: Catalog, shown: str
) -> Prepared:
    person = (
        frames["person"].sort_values("person_id", kind="stable").reset_index(drop=True)
    )
    n = len(person)
    if n == 0:
        raise RegistryError(f"database {shown}: the person table is empty")
    pos = pd.Series(np.arange(n), index=person["person_id"].to_numpy())
    for t, df in frames.items():
        if t != "person":
            df["t"] = _when(df) if len(df) else pd.Series([], dtype="datetime64[us]")
            df["pos"] = pos.reindex(df["person_id"].to_numpy()).to_numpy()
            frames[t] = df[df["pos"].notna()].astype({"pos": "int64"})

    obs, meas = frames["observation"], frames["measurement"]
    # The index date: the latest assessment; else the latest record of a field.
    index = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    assess = obs[obs["concept_id"] == c.assessment["concept_id"]]
    if len(assess):
        last = assess.groupby("pos")["t"].max()
        index[last.index.to_numpy()] = last.to_numpy()
    records = pd.concat([obs[obs["concept_id"] != c.assessment["concept_id"]], meas])
    if len(records):
        fallback = records.groupby("pos")["t"].max()
        fill = np.isnat(index[fallback.index.to_numpy()])
        index[fallback.index.to_numpy()[fill]] = fallback.to_numpy()[fill]
    idx = pd.Series(index)

    # The delivery of the episode.
    dl_parts = []
    for table in ("procedure_occurrence", "condition_occurrence"):
        df = frames[table]
        dl_parts.append(
            df.loc[df["concept_id"].isin(c.delivery_ids(table)), ["pos", "t"]]
        )
    dl = pd.concat(dl_parts).dropna().drop_duplicates()
    w0, w1 = c.window_months
    delivery = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    n_deliveries = np.zeros(n)
    if len(dl):
        dl = dl.assign(index=idx.to_numpy()[dl["pos"].to_numpy()])
        lag = (dl["index"] - dl["t"]).dt.total_seconds() / 86400 / DAYS_PER_MONTH
        inside = dl[(lag >= w0) & (lag <= w1)]
        before = inside[inside["t"] <= inside["index"]].groupby("pos")["t"].max()
        after = inside[inside["t"] > inside["index"]].groupby("pos")["t"].min()
        chosen = pd.concat([after[~after.index.isin(before.index)], before])
        delivery[chosen.index.to_numpy()] = chosen.to_numpy()
        dl = dl.assign(chosen=delivery[dl["pos"].to_numpy()])
        counted = dl[dl["t"].dt.normalize() <= dl["chosen"].dt.normalize()]
        counts = (
            counted.assign(day=counted["t"].dt.normalize())
            .groupby("pos")["day"]
            .nunique()
        )
        n_deliveries[counts.index.to_numpy()] = counts.to_numpy()
    dlv = pd.Series(delivery)

    out: dict[str, Any] = {}
    ids = person["person_source_value"].astype(object)
    out[ID_COLUMN] = np.where(ids.notna(), ids, person["person_id"].astype(str)).astype(
        object
    )
    birth = pd.to_datetime(person["birth_datetime"], errors="coerce").astype(
        "datetime64[us]"
    )
    no_dt = birth.isna() & person["year_of_birth"].notna()
    if no_dt.any():
        parts = person.loc[no_dt, ["year_of_birth", "month_of_birth", "day_of_birth"]]
        birth.loc[no_dt] = pd.to_datetime(
            {
                "year": parts["year_of_birth"].astype(int),
                "month": parts["month_of_birth"].fillna(7).astype(int),
                "day": parts["day_of_birth"].fillna(1).astype(int),
            }
        )
    out["age_years"] = (
        (idx - birth).dt.total_seconds() / 86400 / DAYS_PER_YEAR
    ).to_numpy()
    out["months_postpartum"] = (
        (idx - dlv).dt.total_seconds() / 86400 / DAYS_PER_MONTH
    ).to_numpy()
    out["ancestry"] = _ancestry(person, c, catalog)

    problems: list[tuple[int, str, Any, str]] = []
    conversions: dict[tuple[str, str], int] = {}
    concept_to_field = {}
    for f in c.fields.values():
        for cid in f.ids:
            concept_to_field[(f.table, cid)] = f.name
    lo = idx - pd.to_timedelta(c.lookback_days, unit="D")
    hi = idx.dt.normalize() + pd.Timedelta(days=1)
    yes, no = c.answers["yes"], c.answers["no"]
    for table, df in (("observation", obs), ("measurement", meas)):
        if not len(df):
            continue
        df = df.assign(
            field=[concept_to_field.get((table, int(x))) for x in df["concept_id"]]
        )
        df = df[df["field"].notna()]
        p = df["pos"].to_numpy()
        df = df[
            (df["t"].to_numpy() >= lo.to_numpy()[p])
            & (df["t"].to_numpy() < hi.to_numpy()[p])
        ]
        df = df.sort_values("t", kind="stable").drop_duplicates(
            ["pos", "field"], keep="last"
        )
        for name, g in df.groupby("field", sort=False):
            feat = catalog[name]
            f = c.fields[name]
            col = out.setdefault(name, np.full(n, np.nan))
            rows = g["pos"].to_numpy()
            if feat.dtype == "bool":
                vc = pd.to_numeric(g["vc"], errors="coerce").to_numpy()
                num = pd.to_numeric(g["num"], errors="coerce").to_numpy()
                val = np.where(vc == yes, 1.0, np.where(vc == no, 0.0, np.nan))
                val = np.where(np.isnan(val) & np.isin(num, (0.0, 1.0)), num, val)
                col[rows] = val
                continue
            num = pd.to_numeric(g["num"], errors="coerce").to_numpy(dtype="float64")
            units = g["unit"].to_numpy(dtype=object)
            allowed = {norm(u): u for u in (feat.unit, *feat.alt_units)}
            for r, x, u in zip(rows, num, units, strict=True):
                if np.isnan(x):
                    continue
                unit = (
                    f.unit
                    if u is None
                    or (isinstance(u, float) and math.isnan(u))
                    or not str(u).strip()
                    else allowed.get(norm(u))
                )
                if unit is None:
                    problems.append(
                        (
                            int(r),
                            name,
                            x,
                            f"unit {u!r} in {table}.unit_source_value is not one of "
                            f"{', '.join(allowed.values())}",
                        )
                    )
                    continue
                col[r] = x * feat.unit_factor(unit)
                if unit != feat.unit:
                    conversions[(name, unit)] = conversions.get((name, unit), 0) + 1
    # Events stand for "yes" where no answer was recorded.
    for f in c.fields.values():
        if f.event_id is None:
            continue
        ev = frames[f.event_table]
        ev = ev[ev["concept_id"] == f.event_id]
        p = ev["pos"].to_numpy()
        ev = ev[
            (ev["t"].to_numpy() >= lo.to_numpy()[p])
            & (ev["t"].to_numpy() < hi.to_numpy()[p])
        ]
        col = out.setdefault(f.name, np.full(n, np.nan))
        rows = np.unique(ev["pos"].to_numpy())
        col[rows] = np.where(np.isnan(col[rows]), 1.0, col[rows])
    if "parity" in catalog:
        col = out.setdefault("parity", np.full(n, np.nan))
        fill = np.isnan(col) & (n_deliveries > 0)
        col[fill] = n_deliveries[fill]
    # The outcome: a fracture condition within the window around the delivery.
    fr = frames["condition_occurrence"]
    fr = fr[fr["concept_id"].isin(c.outcome_ids)]
    fracture = np.zeros(n)
    if len(fr):
        p = fr["pos"].to_numpy()
        anchor = np.where(np.isnat(delivery[p]), index[p], delivery[p])
        lag = (fr["t"].to_numpy() - anchor) / np.timedelta64(1, "D") / DAYS_PER_MONTH
        hit = (lag >= w0) & (lag <= w1)
        fracture[np.unique(p[hit])] = 1.0
    out[OUTCOME_COLUMN] = fracture
    ordered = {ID_COLUMN: out[ID_COLUMN]}
    for feat in catalog:
        if feat.name in out:
            ordered[feat.name] = out[feat.name]
    ordered[OUTCOME_COLUMN] = out[OUTCOME_COLUMN]
    frame = pd.DataFrame(ordered, index=pd.RangeIndex(n))
    columns = {name: f"{f.table}:{f.concept_id}" for name, f in c.fields.items()}
    columns.update(
        age_years="person.birth_datetime",
        months_postpartum="delivery",
        ancestry="person.race_source_value|race_concept_id|ethnicity_concept_id",
    )
    return Prepared(
        frame=frame,
        units={},
        columns=columns,
        problems=problems,
        conversions=[
            {
                "field": name,
                "column": columns.get(name, ""),
                "from_unit": unit,
                "to_unit": catalog[name].unit,
                "n_cells": k,
            }
            for (name, unit), k in conversions.items()
        ],
        missing_tokens={},
        recoded={},
        unmapped=[],
        absent=[],
        site=None,
        source_name=shown,
        duplicates="keep",
        invalid="blank",
    )


def _ancestry(person: pd.DataFrame, c: Concepts, catalog: Catalog) -> np.ndarray:
    """A person's ancestry category, in this order:

    1. ``race_source_value`` when it names a category (what to_omop writes);
    2. the ethnicity concept when exactly one category has it (38003563 Hispanic
       or Latino: ``hispanic``);
    3. the race concept: the first category of the map's ``person.ancestry`` with
       that ``race_concept_id`` (8527 White: ``european``, listed before
       ``middle_eastern``);
    4. else missing (race 0 is "no matching concept", never ``other``).
    """
    cats = catalog["ancestry"].categories if "ancestry" in catalog else ()
    by_ethnicity: dict[int, list[str]] = {}
    by_race: dict[int, str] = {}
    for name, ids in c.ancestry.items():  # map order
        by_ethnicity.setdefault(ids.get("ethnicity_concept_id", 0), []).append(name)
        race = ids.get("race_concept_id", 0)
        if race:
            by_race.setdefault(race, name)
    out = np.empty(len(person), dtype=object)
    out[:] = np.nan
    for i, (src, race, eth) in enumerate(
        zip(
            person["race_source_value"],
            person["race_concept_id"],
            person["ethnicity_concept_id"],
            strict=True,
        )
    ):
        if isinstance(src, str) and src.strip():
            key = src.strip().lower().replace(" ", "_").replace("-", "_")
            out[i] = key if key in cats else src
            continue
        eth = int(eth) if pd.notna(eth) else 0
        race = int(race) if pd.notna(race) else 0
        names = by_ethnicity.get(eth, [])
        if eth and len(names) == 1:
            out[i] = names[0]
        elif race in by_race:
            out[i] = by_race[race]
    return out

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
    decimal: "."             # "." | ",": the decimal mark of numbers written as text
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
* ``decimal: ","`` reads text numbers written with a decimal comma (``"30,5"``, as
  a European spreadsheet exports them; a CSV whose header has ``;`` and no ``,`` is
  split on ``;``). Only digits with one comma are read so (no thousands marks).
  Exact decimals (Python ``Decimal`` cells, Parquet ``decimal128`` columns, a
  database's ``NUMERIC``) are numbers whatever this says.
* ``duplicates: merge`` keeps one row per id (the first), each column taking the
  first non-missing value of that patient's rows; disagreements are counted.

The mapping is a typed document (:class:`~plo_risk.data.ingest.flat.MappingDocument`,
parsed with :func:`plo_risk.utils.config.parse_config`). Mapping mistakes (an
unknown or misspelled key, an unknown catalog field or unit, a field mapped twice,
a recode target the field does not allow, a required field not mapped, a token both
true and false) raise one :class:`MappingError` that lists every problem, each with
its key path (``columns.vitD.field='vitamin_d': not a catalog field; did you mean
'vitamin_d_25oh'?``); a mapped column absent from the source is a
:class:`MappingError` too. Unreadable sources raise :class:`RegistryError`.
``MappingError`` is a ``RegistryError`` and a
:class:`plo_risk.utils.config.ConfigError`; all are ``ValueError``.

OMOP
----
A source that is a database URL (``duckdb:///registry.duckdb``,
``sqlite:///x.db``, ``postgresql://...``) is read with
:func:`plo_risk.data.ingest.omop.read_omop` through the concept map
``registry/omop_concepts.yaml`` (the default ``mapping`` for a URL). Records that
look like a fracture or a delivery under a concept the map does not read are
listed in :attr:`QualityReport.unmapped_concepts` and warned about
(:class:`UnmappedConceptWarning`).

Examples
--------
>>> from plo_risk.data.ingest import ingest
>>> from plo_risk.data.synthetic import generate_cohort
>>> extract = generate_cohort(500, style="registry", seed=1)
>>> result = ingest(extract)          # the shipped mapping
>>> len(result.frame), result.quality.duplicates["n_rows_removed"] > 0
(500, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from plo_risk.data.catalog import Catalog, load_catalog
from plo_risk.data.ingest.common import (
    MappingError,
    RegistryError,
    UnmappedConceptWarning,
)
from plo_risk.data.ingest.flat import (
    RegistryMapping,
    default_mapping_path,
    load_mapping,
    prepare_flat,
    read_source,
)
from plo_risk.data.ingest.omop import (
    default_concepts_path,
    load_concepts,
    prepare_omop,
    read_omop,
    to_omop,
)
from plo_risk.data.ingest.quality import IngestResult, QualityReport, finish

__all__ = [
    "IngestResult",
    "MappingError",
    "QualityReport",
    "RegistryError",
    "RegistryMapping",
    "UnmappedConceptWarning",
    "default_concepts_path",
    "default_mapping_path",
    "ingest",
    "load_concepts",
    "load_mapping",
    "read_omop",
    "to_omop",
]


def _is_url(source: Any) -> bool:
    return isinstance(source, str) and "://" in source


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
        The mapping does not fit the catalog or the source (lists every problem,
        each with its key path).
    RegistryError
        The source cannot be read: no such file, empty, corrupt, no mappable
        columns, a database that does not answer, OMOP tables missing.
    """
    catalog = catalog or load_catalog()
    if _is_url(source):
        return finish(prepare_omop(str(source), mapping, catalog), catalog)
    m = load_mapping(mapping, catalog=catalog)
    df, name = read_source(source, m)
    prep = prepare_flat(df, name, m, catalog)
    return finish(prep, catalog)

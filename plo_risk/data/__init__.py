"""Stage 1, the data: the feature catalog, validation, the generator, ingestion.

Everything that knows about input fields is generated from the catalog
(``features/catalog.yaml``). Imports nothing of plo_risk but :mod:`plo_risk.utils`.
"""

from plo_risk.data.catalog import Catalog, CatalogError, Feature, load_catalog
from plo_risk.data.ingest import IngestResult, QualityReport, RegistryError, ingest
from plo_risk.data.reference import reference_values
from plo_risk.data.schema import (
    ID_COLUMN,
    OUTCOME_COLUMN,
    Problem,
    ValidatedFrame,
    ValidationError,
    validate_frame,
    validate_record,
)
from plo_risk.data.synthetic import generate_cohort

__all__ = [
    "ID_COLUMN",
    "OUTCOME_COLUMN",
    "Catalog",
    "CatalogError",
    "Feature",
    "IngestResult",
    "Problem",
    "QualityReport",
    "RegistryError",
    "ValidatedFrame",
    "ValidationError",
    "generate_cohort",
    "ingest",
    "load_catalog",
    "reference_values",
    "validate_frame",
    "validate_record",
]

"""plo_risk: explained fracture-risk prediction for pregnancy- and
lactation-associated osteoporosis (PLO).

The public API is what ``__all__`` lists; everything else is private.
"""

from plo_risk.catalog import Catalog, Feature, load_catalog
from plo_risk.schema import ValidatedFrame, ValidationError, validate_frame, validate_record

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "Feature",
    "ValidatedFrame",
    "ValidationError",
    "__version__",
    "load_catalog",
    "validate_frame",
    "validate_record",
]

"""plo_risk: explained fracture-risk prediction for pregnancy- and
lactation-associated osteoporosis (PLO).

The public API is what ``__all__`` lists; everything else is private.
"""

from plo_risk.assess import RiskAssessment, RiskModel
from plo_risk.catalog import Catalog, Feature, load_catalog
from plo_risk.models import make_model, recalibrate
from plo_risk.schema import (
    ValidatedFrame,
    ValidationError,
    validate_frame,
    validate_record,
)
from plo_risk.scoring import ScoreSummary, score_cohort
from plo_risk.synthetic import generate_cohort
from plo_risk.training import compare, load_experiment, train

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "Feature",
    "RiskAssessment",
    "RiskModel",
    "ScoreSummary",
    "ValidatedFrame",
    "ValidationError",
    "__version__",
    "compare",
    "generate_cohort",
    "load_catalog",
    "load_experiment",
    "make_model",
    "recalibrate",
    "score_cohort",
    "train",
    "validate_frame",
    "validate_record",
]

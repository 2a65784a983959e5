"""plo_risk: explained fracture-risk prediction for pregnancy- and
lactation-associated osteoporosis (PLO).

The package is built in stages, each importing only from the stages below it
(checked by import-linter, see ``.importlinter``):

``plo_risk.data``      catalog, validation, the synthetic generator, ingestion
``plo_risk.model``     feature pipeline, model families, calibration, bundles
``plo_risk.explain``   TreeSHAP in calibrated log-odds, grouped to input fields
``plo_risk.serve``     ``RiskModel`` (``predict_frame``, ``assess``), batch scoring
``plo_risk.evaluate``  metrics with CIs, plots, external validation
``plo_risk.report``    the model card (TRIPOD+AI)
``plo_risk.training``  experiments, MLflow, the champion
``plo_risk.cli``       the ``plo-risk`` command
``plo_risk.planning``  minimum development sample size (Riley et al.)

The public API is what ``__all__`` lists; everything else is private.
"""

from plo_risk.data import (
    Catalog,
    Feature,
    ValidatedFrame,
    ValidationError,
    generate_cohort,
    ingest,
    load_catalog,
    validate_frame,
    validate_record,
)
from plo_risk.evaluate import evaluate_model, external_validation
from plo_risk.model import (
    BundleError,
    SigningKeyError,
    bundle_digest,
    generate_signing_key,
    make_model,
    recalibrate,
    sign_bundle,
)
from plo_risk.planning import PlanningError, sample_size, simulation_check
from plo_risk.report import model_card
from plo_risk.serve import RiskAssessment, RiskModel, ScoreSummary, score_cohort
from plo_risk.training import compare, load_experiment, train
from plo_risk.utils.version import __version__

__all__ = [
    "BundleError",
    "PlanningError",
    "Catalog",
    "Feature",
    "RiskAssessment",
    "RiskModel",
    "ScoreSummary",
    "SigningKeyError",
    "ValidatedFrame",
    "ValidationError",
    "__version__",
    "bundle_digest",
    "compare",
    "evaluate_model",
    "external_validation",
    "generate_cohort",
    "generate_signing_key",
    "ingest",
    "load_catalog",
    "load_experiment",
    "make_model",
    "model_card",
    "recalibrate",
    "sample_size",
    "score_cohort",
    "sign_bundle",
    "simulation_check",
    "train",
    "validate_frame",
    "validate_record",
]

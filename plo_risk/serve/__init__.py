"""Stage 4, serving: the loaded model, one patient's assessment, batch scoring.

:class:`RiskModel` is the one door into a fitted model
(:meth:`RiskModel.predict_frame` for rows, :meth:`RiskModel.assess` for one
patient); batch scoring (:func:`score_cohort`) and the MLflow pyfunc
(:mod:`plo_risk.serve.pyfunc`, imported only by MLflow) go through it.
"""

from plo_risk.serve.assessment import (
    Consideration,
    Factor,
    MissingInput,
    RiskAssessment,
)
from plo_risk.serve.risk_model import PreparedFrame, RiskModel
from plo_risk.serve.scoring import ScoreSummary, ScoringError, score_cohort
from plo_risk.serve.tracking import (
    CHAMPION_ALIAS,
    REGISTERED_NAME,
    default_tracking_uri,
    ensure_tracking_uri,
)

__all__ = [
    "CHAMPION_ALIAS",
    "REGISTERED_NAME",
    "Consideration",
    "Factor",
    "MissingInput",
    "PreparedFrame",
    "RiskAssessment",
    "RiskModel",
    "ScoreSummary",
    "ScoringError",
    "default_tracking_uri",
    "ensure_tracking_uri",
    "score_cohort",
]

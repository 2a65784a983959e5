"""Stage 6, reports: the model card (TRIPOD+AI), rendered from one evaluation.

:func:`model_card` evaluates a model (:func:`plo_risk.evaluate.evaluate_model`)
and writes its card; :func:`render_card` renders a precomputed evaluation.
"""

from plo_risk.evaluate.external import ExternalValidation, external_validation
from plo_risk.report.card import SEED_CASE, ModelCard, model_card, render_card
from plo_risk.report.html import metric_label
from plo_risk.report.tripod import SECTIONS, TripodItem, tripod_checklist

__all__ = [
    "SECTIONS",
    "SEED_CASE",
    "ExternalValidation",
    "ModelCard",
    "TripodItem",
    "external_validation",
    "metric_label",
    "model_card",
    "render_card",
    "tripod_checklist",
]

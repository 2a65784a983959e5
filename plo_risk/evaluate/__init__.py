"""Stage 5, evaluation: metrics with CIs, plots, external validation, one
precomputed evaluation of a model for its report.

The metrics (:mod:`plo_risk.evaluate.metrics`) agree with scikit-learn,
statsmodels and R to 1e-8; the ICI is Austin & Steyerberg's loess ICI. Their
time-to-event counterparts at a horizon, from censored follow-up, are in
:mod:`plo_risk.evaluate.survival` (scikit-survival's AUC and Brier score).
"""

from plo_risk.evaluate.external import (
    EvalData,
    ExternalValidation,
    external_validation,
    load_eval_data,
)
from plo_risk.evaluate.metrics import (
    ThresholdMetrics,
    age_band,
    auprc,
    auroc,
    brier,
    calibration_curve,
    calibration_slope_intercept,
    decision_curve,
    evaluate,
    evaluate_subgroups,
    ici,
    net_benefit,
    parity_band,
    sensitivity_specificity,
    suppress_small_cells,
)
from plo_risk.evaluate.model_evaluation import ModelEvaluation, evaluate_model
from plo_risk.evaluate.screening import (
    ScreeningMetrics,
    ScreeningPolicy,
    ScreeningPolicyError,
    screening_curve,
    screening_metrics,
)
from plo_risk.evaluate.survival import (
    brier_at,
    evaluate_horizon_subgroups,
    evaluate_horizons,
    horizon_calibration,
    integrated_brier,
    km_risk,
    net_benefit_at,
    time_dependent_auroc,
)

__all__ = [
    "EvalData",
    "ExternalValidation",
    "ModelEvaluation",
    "ScreeningMetrics",
    "ScreeningPolicy",
    "ScreeningPolicyError",
    "ThresholdMetrics",
    "age_band",
    "auprc",
    "auroc",
    "brier",
    "brier_at",
    "calibration_curve",
    "calibration_slope_intercept",
    "decision_curve",
    "evaluate",
    "evaluate_horizon_subgroups",
    "evaluate_horizons",
    "evaluate_model",
    "evaluate_subgroups",
    "external_validation",
    "horizon_calibration",
    "ici",
    "integrated_brier",
    "km_risk",
    "load_eval_data",
    "net_benefit",
    "net_benefit_at",
    "parity_band",
    "screening_curve",
    "screening_metrics",
    "sensitivity_specificity",
    "suppress_small_cells",
    "time_dependent_auroc",
]

"""Stage 5, evaluation: metrics with CIs, plots, external validation, one
precomputed evaluation of a model for its report.

The metrics (:mod:`plo_risk.evaluate.metrics`) agree with scikit-learn,
statsmodels and R to 1e-8; the ICI is Austin & Steyerberg's loess ICI.
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

__all__ = [
    "EvalData",
    "ExternalValidation",
    "ModelEvaluation",
    "ThresholdMetrics",
    "age_band",
    "auprc",
    "auroc",
    "brier",
    "calibration_curve",
    "calibration_slope_intercept",
    "decision_curve",
    "evaluate",
    "evaluate_model",
    "evaluate_subgroups",
    "external_validation",
    "ici",
    "load_eval_data",
    "net_benefit",
    "parity_band",
    "sensitivity_specificity",
    "suppress_small_cells",
]

"""Every private scikit-learn name plo_risk uses, imported in one place.

scikit-learn's parameter validation, fit context and feature-name checks are not
public API, yet every estimator that follows scikit-learn's own conventions needs
them (imbalanced-learn keeps the same list in ``imblearn/utils/_sklearn_compat.py``).
A scikit-learn release that moves one of them breaks only this module.
"""

from __future__ import annotations

from sklearn.base import _fit_context as fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
    validate_params,
)
from sklearn.utils.validation import _check_feature_names_in as check_feature_names_in

__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "check_feature_names_in",
    "fit_context",
    "validate_parameter_constraints",
    "validate_params",
]

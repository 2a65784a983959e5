"""Input checks shared by the classifiers of :mod:`plo_risk.model`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    check_consistent_length,
    column_or_1d,
    validate_data,
)

__all__ = ["check_binary_fit"]


def check_binary_fit(est: BaseEstimator, X, y, *, keep_frame: bool):
    """Validate fit data of a binary classifier: ``(X, classes_, y as 0/1)``.

    With ``keep_frame`` a DataFrame is returned unchanged (the feature pipeline
    selects its columns by name); only ``feature_names_in_`` and ``n_features_in_``
    are recorded. Any other X is checked by :func:`validate_data`.
    """
    if keep_frame and isinstance(X, pd.DataFrame):
        X, y = validate_data(est, X, y, skip_check_array=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
    else:
        X, y = validate_data(est, X, y, ensure_all_finite="allow-nan")
    check_classification_targets(y)
    kind = type_of_target(y, input_name="y", raise_unknown=True)
    if kind != "binary":
        raise ValueError(
            "Only binary classification is supported. The type of the target is "
            f"{kind}; {type(est).__name__} predicts one yes/no outcome (fracture)."
        )
    classes, y = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"{type(est).__name__} needs samples of 2 classes, but the data contains "
            f"only one class: {classes.tolist()}."
        )
    return X, classes, y.astype(np.int64)

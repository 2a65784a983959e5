"""The model zoo: build an unfitted, Platt-calibrated model of any family.

``make_model("xgboost")`` is the champion; ``hist_gradient_boosting``,
``logistic_regression`` and ``clinical_rule`` are its comparators (see
:mod:`plo_risk.model.families` for what each is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.pipeline import Pipeline

from plo_risk.data.catalog import Catalog, load_catalog
from plo_risk.model.calibration import PlattCalibratedClassifier
from plo_risk.model.families import FAMILIES, MODEL_NAMES, get_family

__all__ = ["DEFAULT_PARAMS", "MODEL_NAMES", "make_model"]

#: Defaults of each family's hyperparameters; an experiment overrides any of them.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    name: dict(family.default_params) for name, family in FAMILIES.items()
}


def make_model(
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    catalog: Catalog | None = None,
    thresholds: Mapping[str, float] | None = None,
    cv: int = 5,
    random_state: int = 0,
) -> PlattCalibratedClassifier:
    """Build an unfitted model of the zoo.

    Parameters
    ----------
    name : {"xgboost", "hist_gradient_boosting", "logistic_regression", \
"clinical_rule"}
        The model family.
    params : dict, default=None
        Hyperparameters overriding :data:`DEFAULT_PARAMS` for that family.
    catalog : Catalog, default=None
        Feature catalog (default: the shipped one).
    thresholds : dict, default=None
        Risk category thresholds stored with the model.
    cv : int, default=5
        Folds for the out-of-fold Platt calibration.
    random_state : int, default=0

    Returns
    -------
    PlattCalibratedClassifier
        Whose ``estimator`` is ``Pipeline([("features", ...), ("model", ...)])``.

    Raises
    ------
    ValueError
        For an unknown model name or hyperparameter, or a value out of its
        allowed range (all of them at once).

    Examples
    --------
    >>> from plo_risk.model import make_model
    >>> model = make_model("xgboost", params={"n_estimators": 20})
    >>> [name for name, _ in model.estimator.steps]
    ['features', 'model']
    """
    family = get_family(name)
    catalog = catalog or load_catalog()
    known = family.known_params()
    unknown = set(params or {}) - known
    if unknown:
        raise ValueError(
            f"Unknown hyperparameters for {name}: {sorted(unknown)}. Known: "
            f"{sorted(known)}."
        )
    problems = family.check_params(params or {})
    if problems:
        raise ValueError("; ".join(problems))
    merged = {**family.default_params, **(params or {})}
    return PlattCalibratedClassifier(
        estimator=Pipeline(family.build(merged, catalog, random_state)),
        cv=cv,
        thresholds=dict(thresholds or {}) or None,
        random_state=random_state,
    )

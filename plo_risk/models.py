"""The model zoo: the xgboost champion and its comparators, all Platt-calibrated.

Every model is a :class:`PlattCalibratedClassifier` around a scikit-learn
:class:`~sklearn.pipeline.Pipeline` of the catalog's feature pipeline and a
classifier:

``xgboost``
    The champion: gradient-boosted trees with monotone constraints taken from the
    catalog's ``direction`` (lower BMD never lowers risk).
``hist_gradient_boosting``
    scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier`.
``logistic_regression``
    Median imputation with missing indicators, natural splines for the continuous
    predictors where a straight line is not plausible (Z-score, age, BMI, lactation,
    vitamin D, calcium), then a logistic regression.
``clinical_rule``
    The ISCD definition the seed's cohorts use: a Z-score of -2.0 or lower at any
    site (seed Table 3 row 4, ref 49). It needs no training; its three groups
    (positive, negative, no DXA) map to their observed fracture rates.

Calibration is logistic on the model's margin (Platt), fitted on out-of-fold
margins, so the calibrated log-odds are ``intercept_ + slope_ * margin`` and
explanations of the margin stay exactly additive. A prevalence shift is an
intercept change: :func:`recalibrate`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from plo_risk.catalog import Catalog, load_catalog

__all__ = [
    "MODEL_NAMES",
    "ClinicalRuleClassifier",
    "PlattCalibratedClassifier",
    "ensemble_risks",
    "fit_bootstrap_ensemble",
    "make_model",
    "margin",
    "recalibrate",
]

MODEL_NAMES = (
    "xgboost",
    "hist_gradient_boosting",
    "logistic_regression",
    "clinical_rule",
)

#: ISCD: in premenopausal women a Z-score of -2.0 or lower is "below the expected
#: range for age"; the PLO cohorts of seed Table 3 (row 4, ref 49) use it as the
#: case definition.
ISCD_Z_THRESHOLD = -2.0

# Defaults of each model's hyperparameters; a config file overrides any of them.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {
        # 150 trees: 300 overfit 50k rows (~2,500 events) by ~0.004 AUROC (tuned
        # against the generator's oracle, tests/test_training.py).
        "n_estimators": 150,
        "max_depth": 4,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 2.0,
        "reg_lambda": 1.0,
        "monotone": True,
        "n_jobs": 2,
    },
    "hist_gradient_boosting": {
        "max_iter": 300,
        "learning_rate": 0.05,
        "max_leaf_nodes": 15,
        "l2_regularization": 1.0,
        "early_stopping": False,
    },
    "logistic_regression": {
        "C": 1.0,
        "n_knots": 4,
        "spline_columns": [
            "lowest_z",
            "age_years",
            "bmi",
            "lactation_months",
            "vitamin_d_25oh",
            "calcium_intake_mg_day",
        ],
    },
    "clinical_rule": {"threshold": ISCD_Z_THRESHOLD, "column": "lowest_z"},
}


# ------------------------------------------------------------------ margins


def margin(estimator: Any, X: Any) -> np.ndarray:
    """The uncalibrated log-odds (margin) of a fitted classifier or pipeline.

    xgboost boosters give their raw margin; estimators with ``decision_function``
    give that; others the logit of ``predict_proba``.

    Parameters
    ----------
    estimator : fitted classifier or Pipeline
    X : array-like or DataFrame

    Returns
    -------
    numpy.ndarray of shape (n_samples,)
    """
    if isinstance(estimator, Pipeline):
        prepared, finish = split_margin(estimator, X)
        return finish(prepared)
    if _is_xgboost(estimator):
        booster = estimator.get_booster()
        validate = True
        if (
            isinstance(X, pd.DataFrame)
            and X.columns.tolist() == booster.feature_names
            and "c" not in (booster.feature_types or ())
            and all(dt in (np.float64, np.float32) for dt in X.dtypes)
        ):
            # A numeric frame with the booster's columns in order: a float32 array
            # gives the same margin as the frame (xgboost computes in float32)
            # without xgboost's per-call pandas conversion and name checks.
            X = np.ascontiguousarray(X.to_numpy(dtype=np.float32))
            validate = False
        out = booster.inplace_predict(
            X, predict_type="margin", validate_features=validate
        )
        return np.asarray(out, dtype=np.float64).reshape(-1)
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=np.float64).reshape(-1)
    p = estimator.predict_proba(X)[:, 1]
    return logit(np.clip(p, 1e-15, 1 - 1e-15))


def split_margin(estimator: Any, X: Any) -> tuple[Any, Any]:
    """:func:`margin` in two steps: ``finish(prepared) == margin(estimator, X)``.

    For a feature pipeline ending in xgboost, ``prepared`` is the model matrix
    (float32, built on numpy arrays: the same values as the pipeline's transform)
    and ``finish`` xgboost's prediction, which releases the GIL: batch scoring
    builds the next chunk's matrix on one thread while this chunk is predicted.
    Other estimators: ``prepared`` is X and ``finish`` computes the whole margin.

    Returns
    -------
    prepared : Any
    finish : callable
        ``finish(prepared) -> numpy.ndarray`` of shape (n_samples,).
    """
    if isinstance(estimator, Pipeline) and len(estimator) > 1:
        last = estimator[-1]
        if isinstance(X, pd.DataFrame) and _is_xgboost(last):
            # The feature pipeline on numpy arrays (the same values as its
            # transform, without pandas between the steps) straight into xgboost.
            from plo_risk.features import _ArrayPipeline

            try:
                arrays = _ArrayPipeline(estimator[:-1])
            except TypeError:  # not a pipeline of plo_risk.features: go step by step
                arrays = None
            booster = last.get_booster()
            if (
                arrays is not None
                and booster.feature_names == arrays.names
                and "c" not in (booster.feature_types or ())
            ):
                matrix = np.ascontiguousarray(arrays(X)[0], dtype=np.float32)

                def predict(m: np.ndarray) -> np.ndarray:
                    out = booster.inplace_predict(
                        m, predict_type="margin", validate_features=False
                    )
                    return np.asarray(out, dtype=np.float64).reshape(-1)

                return matrix, predict
        return estimator[:-1].transform(X), lambda Xt: margin(last, Xt)
    if isinstance(estimator, Pipeline):
        return X, lambda X_: margin(estimator[-1], X_)
    return X, lambda X_: margin(estimator, X_)


def _is_xgboost(est: Any) -> bool:
    return type(est).__module__.startswith("xgboost")


# -------------------------------------------------------------- calibration


def _fit_platt(m: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Unpenalised logistic regression of y on the margin: (intercept, slope)."""
    from plo_risk.evaluation import _logistic_irls

    design = np.column_stack([np.ones_like(m), m])
    beta, _, converged = _logistic_irls(
        design, y.astype(np.float64), np.ones_like(m), beta=np.array([0.0, 1.0])
    )
    if not converged or not np.all(np.isfinite(beta)):
        # Separable or degenerate margins: keep the margin's own scale and fit the
        # intercept only (calibration-in-the-large), which always exists.
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return float(logit(rate) - np.mean(m)), 1.0
    return float(beta[0]), float(beta[1])


def _check_binary_fit(est: BaseEstimator, X, y, *, keep_frame: bool):
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


class PlattCalibratedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose margin is calibrated by a logistic fit (Platt scaling).

    The calibration is fitted on out-of-fold margins (stratified K-fold), then the
    estimator is refitted on all rows, as
    ``CalibratedClassifierCV(method="sigmoid", ensemble=False)`` but without
    Platt's target smoothing, which biases rare outcomes. The calibrated log-odds
    are ``intercept_ + slope_ * margin``: additive explanations of the margin stay
    additive, and a prevalence shift is an intercept change (:func:`recalibrate`).

    Parameters
    ----------
    estimator : estimator, default=None
        Classifier or pipeline to calibrate; ``None`` means
        :class:`~sklearn.linear_model.LogisticRegression`. It is fitted on the
        outcome encoded as 0/1 and, when X is a DataFrame, on that DataFrame
        unchanged.
    cv : int, default=5
        Folds for the out-of-fold margins (fewer when a class has fewer rows).
    thresholds : dict, default=None
        Risk category thresholds stored with the model, e.g.
        ``{"moderate": 0.02, "high": 0.10}``; see :meth:`categorize`.
    random_state : int, RandomState instance or None, default=None
        Seed of the fold split.

    Attributes
    ----------
    estimator_ : estimator
        The estimator refitted on all rows.
    intercept_, slope_ : float
        The Platt calibration.
    prevalence_ : float
        Share of positive rows (``classes_[1]``, e.g. fracture = 1) in the
        training data.
    n_train_ : int
        Number of training rows.
    classes_ : ndarray of shape (2,)
        The two outcome values, sorted; the second is the positive one.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when X has feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.models import PlattCalibratedClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> y = (X[:, 0] + rng.normal(size=500) > 1).astype(int)
    >>> model = PlattCalibratedClassifier(random_state=0).fit(X, y)
    >>> bool(abs(model.predict_proba(X)[:, 1].mean() - y.mean()) < 0.02)
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"]), None],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "thresholds": [dict, None],
        "random_state": ["random_state"],
    }

    def __init__(self, *, estimator=None, cv=5, thresholds=None, random_state=None):
        self.estimator = estimator
        self.cv = cv
        self.thresholds = thresholds
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the calibration on out-of-fold margins, then the estimator on all rows.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            A DataFrame is passed to the estimator unchanged.
        y : array-like of shape (n_samples,)
            Binary outcome, e.g. 0/1; the larger value is the positive class.

        Returns
        -------
        self
        """
        self._check_thresholds()
        X, classes, y = _check_binary_fit(self, X, y, keep_frame=True)
        base = self.estimator if self.estimator is not None else LogisticRegression()
        counts = np.bincount(y, minlength=2)
        n_splits = int(min(self.cv, counts.min()))
        if n_splits < 2:
            raise ValueError(
                "PlattCalibratedClassifier needs at least 2 rows of each class to "
                "fit the calibration on out-of-fold margins; got class counts "
                f"{dict(zip(classes.tolist(), counts.tolist(), strict=True))}."
            )
        folds = StratifiedKFold(
            n_splits=n_splits, shuffle=True, random_state=self.random_state
        )
        oof = np.empty(len(y), dtype=np.float64)
        for train, test in folds.split(np.zeros(len(y)), y):
            est = clone(base).fit(_rows(X, train), y[train])
            oof[test] = margin(est, _rows(X, test))
        self.intercept_, self.slope_ = _fit_platt(oof, y)
        self.estimator_ = clone(base).fit(X, y)
        self.classes_ = classes
        self.prevalence_ = float(y.mean())
        self.n_train_ = int(len(y))
        return self

    def _check_thresholds(self) -> None:
        for name, value in (self.thresholds or {}).items():
            if (
                isinstance(value, bool)
                or not isinstance(value, Real)
                or not 0.0 < float(value) < 1.0
            ):
                raise ValueError(
                    f"The threshold {name!r} of PlattCalibratedClassifier must be a "
                    f"probability in (0, 1). Got {value!r} instead."
                )

    def margin(self, X) -> np.ndarray:
        """Uncalibrated margin of the refitted estimator, shape (n_samples,)."""
        check_is_fitted(self)
        return margin(self.estimator_, self._check_X(X))

    def _check_X(self, X):
        if isinstance(X, pd.DataFrame):
            # The estimator selects its columns by name: a frame goes on unchanged.
            return X
        return validate_data(self, X, reset=False, ensure_all_finite="allow-nan")

    def decision_function(self, X) -> np.ndarray:
        """Calibrated log-odds of the positive class: ``intercept_ + slope_ * margin``."""
        check_is_fitted(self)
        return self.intercept_ + self.slope_ * self.margin(X)

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated probability of each class, shape (n_samples, 2)."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """The positive class (``classes_[1]``) where the calibrated risk is >= 0.5."""
        positive = self.decision_function(X) >= 0.0
        return self.classes_[positive.astype(np.int64)]

    def categorize(self, risk) -> np.ndarray:
        """Risk category of each probability, from the stored ``thresholds``.

        A risk at or above a threshold takes that category (the highest such);
        below every threshold it is ``"low"``.

        Parameters
        ----------
        risk : array-like of float
            Probabilities, e.g. ``predict_proba(X)[:, 1]``.

        Returns
        -------
        numpy.ndarray of object (str), same shape as ``risk``
        """
        check_is_fitted(self)
        risk = np.asarray(risk, dtype=np.float64)
        out = np.full(risk.shape, "low", dtype=object)
        ordered = sorted((self.thresholds or {}).items(), key=lambda kv: kv[1])
        for name, value in ordered:
            out[risk >= value] = name
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator if self.estimator is not None else LogisticRegression()
        tags.input_tags.allow_nan = _allows_nan(inner)
        tags.classifier_tags.multi_class = False  # one yes/no outcome
        return tags


def _allows_nan(est: Any) -> bool:
    # A Pipeline does not pass on its first step's allow_nan tag; NaN reaches only
    # that step.
    if isinstance(est, Pipeline):
        steps = [step for _, step in est.steps if step not in (None, "passthrough")]
        return _allows_nan(steps[0]) if steps else False
    return get_tags(est).input_tags.allow_nan


def _rows(X, idx):
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def recalibrate(
    model: PlattCalibratedClassifier,
    *,
    prevalence: float | None = None,
    X=None,
    y=None,
) -> PlattCalibratedClassifier:
    """Move a model's intercept to a new setting; the slope and ranking are kept.

    With ``prevalence``: the prior-shift correction
    ``intercept += logit(prevalence) - logit(model.prevalence_)``, exact when the
    new setting differs only in how often the outcome occurs (e.g. a referral
    cohort enriched for cases vs the population). With ``X`` and ``y``: the
    intercept that makes the mean predicted risk on ``X`` match ``y``
    (calibration-in-the-large), for a setting that differs in more than that.

    Parameters
    ----------
    model : PlattCalibratedClassifier
        Fitted model; it is not changed.
    prevalence : float, default=None
        Outcome prevalence of the new setting, in (0, 1).
    X, y : default=None
        Data of the new setting (instead of ``prevalence``).

    Returns
    -------
    PlattCalibratedClassifier
        A copy with the new intercept (``prevalence_`` set to the new prevalence).

    Raises
    ------
    ValueError
        Naming the argument: both or neither of ``prevalence`` and ``X``/``y``, a
        prevalence outside (0, 1), ``y`` with values other than ``model.classes_``
        or with one class only, or ``X`` and ``y`` of different lengths.
    """
    check_is_fitted(model)
    if (prevalence is None) == (X is None and y is None) or (X is None) != (y is None):
        raise ValueError(
            "recalibrate needs either prevalence= or both X= and y=; got "
            f"prevalence={prevalence!r}, X={'None' if X is None else '...'}, "
            f"y={'None' if y is None else '...'}."
        )
    new = copy.deepcopy(model)
    if prevalence is not None:
        if (
            isinstance(prevalence, bool)
            or not isinstance(prevalence, Real)
            or not 0.0 < float(prevalence) < 1.0
        ):
            raise ValueError(
                "The 'prevalence' parameter of recalibrate must be a float in the "
                f"range (0, 1). Got {prevalence!r} instead."
            )
        _shift_intercept(
            new, float(logit(prevalence) - logit(model.prevalence_))
        )
        new.prevalence_ = float(prevalence)
        return new
    y = column_or_1d(y)
    unknown = sorted(set(np.unique(y).tolist()) - set(model.classes_.tolist()))
    if unknown:
        raise ValueError(
            f"The 'y' parameter of recalibrate has values {unknown} that are not "
            f"classes of the model {model.classes_.tolist()}."
        )
    target = float(np.mean(y == model.classes_[1]))
    if not 0.0 < target < 1.0:
        raise ValueError(
            "The 'y' parameter of recalibrate must contain both classes "
            f"{model.classes_.tolist()}; got only {np.unique(y).tolist()}."
        )
    lo = model.decision_function(X)
    check_consistent_length(lo, y)
    shift = 0.0
    for _ in range(100):  # Newton on mean(expit(lo + shift)) = target
        p = expit(lo + shift)
        step = (p.mean() - target) / max(float(np.mean(p * (1 - p))), 1e-12)
        shift -= step
        if abs(step) < 1e-12:
            break
    _shift_intercept(new, shift)
    new.prevalence_ = target
    return new


def _shift_intercept(model: PlattCalibratedClassifier, shift: float) -> None:
    """Move the model's intercept, and its interval ensemble's, by ``shift``.

    The bootstrap members (:func:`fit_bootstrap_ensemble`) move with the model, or
    its intervals would stay in the old setting.
    """
    model.intercept_ = float(model.intercept_) + shift
    members = getattr(model, "ensemble_", None)
    if members:
        model.ensemble_ = [
            {**m, "intercept": float(m["intercept"]) + shift} for m in members
        ]


# ----------------------------------------------------------------- the rule


class ClinicalRuleClassifier(ClassifierMixin, BaseEstimator):
    """The ISCD rule as a classifier: positive when a Z-score is <= -2.0.

    The rule is fixed; fitting only maps its three groups (positive, negative,
    no score) to their observed fracture rates (Jeffreys estimate
    ``(events + 0.5) / (n + 1)``), so that it gives probabilities to compare.
    :meth:`apply` gives each row's group (the rule itself); :meth:`predict`, as
    every scikit-learn classifier, agrees with :meth:`predict_proba`: the positive
    class where the group's observed rate is above 0.5.

    Parameters
    ----------
    column : str or int, default=None
        Column holding the lowest Z-score (name in a DataFrame, position in an
        array); ``None`` is the first column.
    threshold : float, default=-2.0
        Positive at or below this Z-score (seed Table 3 row 4: Z <= -2.0).

    Attributes
    ----------
    rates_ : dict
        Fracture rate (of ``classes_[1]``) in the ``positive``, ``negative`` and
        ``unknown`` groups; a group without training rows gets the overall rate.
    classes_ : ndarray of shape (2,)
        The two outcome values, sorted; the second is the positive one.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when X has feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.models import ClinicalRuleClassifier
    >>> X = np.array([[-2.5], [-1.0], [np.nan], [-3.0]])
    >>> rule = ClinicalRuleClassifier().fit(X, [1, 0, 0, 1])
    >>> rule.apply(X).tolist()
    ['positive', 'negative', 'unknown', 'positive']
    >>> rule.predict(X).tolist()
    [1, 0, 0, 1]
    """

    _parameter_constraints: dict = {
        "column": [str, Interval(Integral, 0, None, closed="left"), None],
        "threshold": [Interval(Real, None, None, closed="neither")],
    }

    _GROUPS = ("positive", "negative", "unknown")

    def __init__(self, *, column=None, threshold=ISCD_Z_THRESHOLD):
        self.column = column
        self.threshold = threshold

    def _by_name(self, X) -> bool:
        return isinstance(X, pd.DataFrame) and isinstance(self.column, str)

    def _scores(self, X) -> np.ndarray:
        """The Z-score column of X (validated unless taken by name from a frame)."""
        if self._by_name(X):
            if self.column not in X.columns:
                raise ValueError(
                    f"ClinicalRuleClassifier: the input has no column {self.column!r}."
                )
            return X[self.column].to_numpy(dtype=np.float64)
        Xa = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return self._column_of(Xa)

    def _column_of(self, Xa: np.ndarray) -> np.ndarray:
        col = self.column
        if col is None:
            col = 0
        elif isinstance(col, str):
            names = list(getattr(self, "feature_names_in_", []))
            if col not in names:
                raise ValueError(
                    f"ClinicalRuleClassifier: column={col!r} names a column, but X "
                    "has no column names; pass a DataFrame or the column's position."
                )
            col = names.index(col)
        if col >= Xa.shape[1]:
            raise ValueError(
                f"ClinicalRuleClassifier: column={col} is out of range; X has "
                f"{Xa.shape[1]} feature(s) (positions 0 to {Xa.shape[1] - 1})."
            )
        return np.asarray(Xa[:, col], dtype=np.float64)

    def _groups(self, s: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(s), 2, np.where(s <= self.threshold, 0, 1))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Record the observed fracture rate of each group of the rule.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Binary outcome, e.g. 0/1; the larger value is the positive class.

        Returns
        -------
        self
        """
        by_name = self._by_name(X)
        X, self.classes_, y = _check_binary_fit(self, X, y, keep_frame=by_name)
        if by_name:
            s = self._scores(X)
        else:
            if isinstance(self.column, str):
                self._column_of(X)  # raises: a name needs a DataFrame
            s = self._column_of(X)
        g = self._groups(s)
        overall = (y.sum() + 0.5) / (len(y) + 1.0)
        rates = {}
        for k, group in enumerate(self._GROUPS):
            n = int((g == k).sum())
            rates[group] = float((y[g == k].sum() + 0.5) / (n + 1.0) if n else overall)
        self.rates_ = rates
        return self

    def apply(self, X) -> np.ndarray:
        """The rule: each row's group, ``"positive"`` (Z-score <= threshold),
        ``"negative"`` or ``"unknown"`` (no Z-score).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray of object (str), shape (n_samples,)
        """
        check_is_fitted(self)
        return np.asarray(self._GROUPS, dtype=object)[self._groups(self._scores(X))]

    def _rate(self, X) -> np.ndarray:
        check_is_fitted(self)
        rates = np.array([self.rates_[group] for group in self._GROUPS])
        return rates[self._groups(self._scores(X))]

    def decision_function(self, X) -> np.ndarray:
        """Log-odds of the observed rate of each row's group."""
        return logit(self._rate(X))

    def predict_proba(self, X) -> np.ndarray:
        """Observed rate of each row's group, as (1 - p, p)."""
        p = self._rate(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """The positive class where the row's group has an observed rate above 0.5.

        Use :meth:`apply` for the rule itself.
        """
        positive = self._rate(X) > 0.5
        return self.classes_[positive.astype(np.int64)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False  # one yes/no outcome
        # A fixed rule on one column: its accuracy depends on that column being a
        # Z-score, not on what fitting learns (as for DummyClassifier).
        tags.classifier_tags.poor_score = True
        return tags


# -------------------------------------------------------------- the factory


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
    params : dict, default=None
        Hyperparameters overriding :data:`DEFAULT_PARAMS` for that model.
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
        For an unknown model name or hyperparameter.
    """
    from plo_risk.features import build_pipeline

    if name not in MODEL_NAMES:
        raise ValueError(
            f"The model name must be one of {', '.join(MODEL_NAMES)}. Got {name!r} "
            "instead."
        )
    catalog = catalog or load_catalog()
    merged = {**DEFAULT_PARAMS[name], **(params or {})}
    unknown = set(params or {}) - set(DEFAULT_PARAMS[name]) - _PASSTHROUGH_OK[name]
    if unknown:
        raise ValueError(
            f"Unknown hyperparameters for {name}: {sorted(unknown)}. Known: "
            f"{sorted(set(DEFAULT_PARAMS[name]) | _PASSTHROUGH_OK[name])}."
        )
    if name == "xgboost":
        steps = [
            ("features", build_pipeline(catalog)),
            ("model", _xgboost(merged, catalog, random_state)),
        ]
    elif name == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        steps = [
            ("features", build_pipeline(catalog)),
            (
                "model",
                HistGradientBoostingClassifier(random_state=random_state, **merged),
            ),
        ]
    elif name == "logistic_regression":
        steps = _logistic_steps(merged, catalog, random_state)
    else:
        steps = [
            ("features", build_pipeline(catalog)),
            ("model", ClinicalRuleClassifier(**merged)),
        ]
    return PlattCalibratedClassifier(
        estimator=Pipeline(steps),
        cv=cv,
        thresholds=dict(thresholds or {}) or None,
        random_state=random_state,
    )


# Hyperparameters passed straight to the underlying library beyond the defaults.
_PASSTHROUGH_OK: dict[str, set[str]] = {
    "xgboost": {
        "gamma",
        "max_bin",
        "reg_alpha",
        "min_split_loss",
        "max_delta_step",
        "colsample_bylevel",
        "tree_method",
        "scale_pos_weight",
    },
    "hist_gradient_boosting": {
        "max_depth",
        "min_samples_leaf",
        "max_bins",
        "max_features",
        "n_iter_no_change",
        "validation_fraction",
        "class_weight",
    },
    "logistic_regression": {"max_iter", "class_weight", "tol"},
    "clinical_rule": set(),
}


def _xgboost(params: dict, catalog: Catalog, random_state: int):
    from xgboost import XGBClassifier

    params = dict(params)
    monotone = params.pop("monotone")
    constraints = _feature_monotone(catalog) if monotone else None
    return XGBClassifier(
        objective="binary:logistic",
        tree_method=params.pop("tree_method", "hist"),
        random_state=random_state,
        monotone_constraints=constraints,
        eval_metric="logloss",
        **params,
    )


def _feature_monotone(catalog: Catalog) -> dict[str, int]:
    """Monotone sign of each model column that has one (from the catalog).

    A column takes the common direction of the fields it derives from, ignoring
    fields without a direction. Unlike :func:`plo_risk.features.monotone_constraints`
    (0 as soon as one source has no direction), this keeps the risk monotone in
    every field that has a direction: left free, ``cumulative_lactation_months``
    (prior + current lactation) would let the model lower the risk as
    ``lactation_months`` grows, and ``turnover_uncoupling`` as ``ctx`` grows.
    Columns whose directed sources disagree stay free.
    """
    from plo_risk.features import _derivations, build_pipeline

    fitted = build_pipeline(catalog).fit(_blank_frame(catalog))
    out = {}
    for column, roots in _derivations(fitted).items():
        signs = {catalog[root].monotone * sign for root, sign in roots.items()} - {0}
        if len(signs) == 1:
            out[column] = signs.pop()
    return out


def _blank_frame(catalog: Catalog) -> pd.DataFrame:
    # Output columns depend only on the catalog; fit the pipeline on one blank row.
    data: dict[str, Any] = {}
    for f in catalog:
        if f.dtype == "category":
            data[f.name] = pd.Categorical([None], categories=list(f.categories))
        else:
            data[f.name] = [np.nan if f.missing else 1.0]
    return pd.DataFrame(data)


def _logistic_steps(params: dict, catalog: Catalog, random_state: int) -> list:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import SplineTransformer, StandardScaler

    from plo_risk.features import build_pipeline

    params = dict(params)
    spline_cols = list(params.pop("spline_columns"))
    n_knots = params.pop("n_knots")
    splines = ColumnTransformer(
        [
            (
                "splines",
                SplineTransformer(n_knots=n_knots, degree=3, extrapolation="linear"),
                spline_cols,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return [
        ("features", build_pipeline(catalog, impute=True)),
        ("splines", splines),
        ("scale", StandardScaler().set_output(transform="pandas")),
        (
            "model",
            LogisticRegression(
                max_iter=params.pop("max_iter", 2000),
                random_state=random_state,
                **params,
            ),
        ),
    ]


def _test_instances() -> list[BaseEstimator]:
    """Extra instances for tests/test_common.py."""
    # On the checks' standardized blobs, column 1 at or below 0 separates the
    # two classes (97.5% of make_blobs(n_samples=300, random_state=0)).
    return [
        PlattCalibratedClassifier(cv=3, random_state=0),
        ClinicalRuleClassifier(column=1, threshold=0.0),
    ]


# ------------------------------------------------------- bootstrap ensemble


def fit_bootstrap_ensemble(
    model: PlattCalibratedClassifier,
    X,
    y,
    *,
    n_models: int = 20,
    random_state: int = 0,
) -> PlattCalibratedClassifier:
    """Attach a small bootstrap ensemble to a fitted model, for risk intervals.

    Each member refits the model's final estimator on a bootstrap resample of the
    transformed training rows and gets its own Platt calibration fitted on the rows
    it did not see (out of bag). The spread of the members' risks for a patient is
    the model's uncertainty about that patient (a percentile interval). The
    feature pipeline is shared: its fitted state does not depend on the rows.

    Parameters
    ----------
    model : PlattCalibratedClassifier
        Fitted, with a Pipeline estimator_ whose first step is ``features``.
    X, y
        The training data the model was fitted on.
    n_models : int, default=20
    random_state : int, default=0

    Returns
    -------
    PlattCalibratedClassifier
        ``model`` itself, with ``ensemble_``: a list of dicts with ``estimator``,
        ``intercept`` and ``slope``.
    """
    check_is_fitted(model)
    if not isinstance(n_models, Integral) or n_models < 2:
        raise ValueError(
            "The 'n_models' parameter of fit_bootstrap_ensemble must be "
            f"an int >= 2. Got {n_models!r} instead."
        )
    pipe = model.estimator_
    Xt = pipe[:-1].transform(X)
    y01 = (np.asarray(y) == model.classes_[1]).astype(np.int64)
    rng = np.random.default_rng(random_state)
    members = []
    n = len(y01)
    while len(members) < n_models:
        idx = rng.integers(0, n, n)
        oob = np.ones(n, dtype=bool)
        oob[idx] = False
        if len(np.unique(y01[idx])) < 2 or len(np.unique(y01[oob])) < 2:
            continue
        est = clone(pipe[-1])
        if hasattr(est, "random_state"):
            est.set_params(random_state=int(rng.integers(0, 2**31 - 1)))
        est.fit(_rows(Xt, idx), y01[idx])
        a, b = _fit_platt(margin(est, _rows(Xt, np.flatnonzero(oob))), y01[oob])
        members.append({"estimator": est, "intercept": a, "slope": b})
    model.ensemble_ = members
    return model


def ensemble_risks(model: PlattCalibratedClassifier, X) -> np.ndarray:
    """Calibrated risks of every ensemble member, shape (n_models, n_samples)."""
    check_is_fitted(model, "ensemble_")
    Xt = model.estimator_[:-1].transform(X)
    return np.vstack(
        [
            expit(m["intercept"] + m["slope"] * margin(m["estimator"], Xt))
            for m in model.ensemble_
        ]
    )

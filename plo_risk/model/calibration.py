"""Platt calibration: every model's margin, calibrated by a logistic fit.

Every model of :func:`plo_risk.model.make_model` is a
:class:`PlattCalibratedClassifier` around a scikit-learn
:class:`~sklearn.pipeline.Pipeline` of the catalog's feature pipeline and a
classifier of one of the :mod:`~plo_risk.model.families`. Calibration is logistic
on the model's margin (Platt), fitted on out-of-fold margins, so the calibrated
log-odds are ``intercept_ + slope_ * margin`` and explanations of the margin stay
exactly additive. A prevalence shift is an intercept change: :func:`recalibrate`.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from plo_risk.model._checks import check_binary_fit
from plo_risk.model.families import family_of
from plo_risk.model.glm import logistic_irls
from plo_risk.utils.sklearn_compat import HasMethods, Interval, fit_context

__all__ = [
    "PlattCalibratedClassifier",
    "fit_platt",
    "margin",
    "recalibrate",
    "split_margin",
    "take_rows",
]


# ------------------------------------------------------------------ margins


def margin(estimator: Any, X: Any) -> np.ndarray:
    """The uncalibrated log-odds (margin) of a fitted classifier or pipeline.

    The classifier's family gives it (:func:`plo_risk.model.families.family_of`):
    xgboost its raw margin, other estimators their ``decision_function`` or the
    logit of ``predict_proba``.

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
    return family_of(estimator).margin(estimator, X)


def split_margin(estimator: Any, X: Any) -> tuple[Any, Any]:
    """:func:`margin` in two steps: ``finish(prepared) == margin(estimator, X)``.

    For a feature pipeline ending in a family with an array path (xgboost),
    ``prepared`` is the model matrix (built on numpy arrays: the same values as
    the pipeline's transform) and ``finish`` the library's prediction, which
    releases the GIL: batch scoring builds the next chunk's matrix on one thread
    while this chunk is predicted. Otherwise ``prepared`` is the transformed X
    (or X) and ``finish`` computes the rest.

    Returns
    -------
    prepared : Any
    finish : callable
        ``finish(prepared) -> numpy.ndarray`` of shape (n_samples,).
    """
    if isinstance(estimator, Pipeline) and len(estimator) > 1:
        last = estimator[-1]
        family = family_of(last)
        if isinstance(X, pd.DataFrame):
            fast = family.array_margin(last, estimator[:-1])
            if fast is not None:
                matrix, predict = fast
                return matrix(X), predict
        return estimator[:-1].transform(X), lambda Xt: family.margin(last, Xt)
    if isinstance(estimator, Pipeline):
        return X, lambda X_: margin(estimator[-1], X_)
    return X, lambda X_: margin(estimator, X_)


# -------------------------------------------------------------- calibration


def fit_platt(m: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Unpenalised logistic regression of y on the margin: (intercept, slope)."""
    design = np.column_stack([np.ones_like(m), m])
    beta, _, converged = logistic_irls(
        design, y.astype(np.float64), np.ones_like(m), beta=np.array([0.0, 1.0])
    )
    if not converged or not np.all(np.isfinite(beta)):
        # Separable or degenerate margins: keep the margin's own scale and fit the
        # intercept only (calibration-in-the-large), which always exists.
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return float(logit(rate) - np.mean(m)), 1.0
    return float(beta[0]), float(beta[1])


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
    >>> from plo_risk.model.calibration import PlattCalibratedClassifier
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

    @fit_context(prefer_skip_nested_validation=False)
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
        X, classes, y = check_binary_fit(self, X, y, keep_frame=True)
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
            est = clone(base).fit(take_rows(X, train), y[train])
            oof[test] = margin(est, take_rows(X, test))
        self.intercept_, self.slope_ = fit_platt(oof, y)
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


def take_rows(X, idx):
    """Rows ``idx`` of a frame (by position) or an array."""
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
        _shift_intercept(new, float(logit(prevalence) - logit(model.prevalence_)))
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


def _test_instances() -> list[BaseEstimator]:
    """Extra instances for tests/test_common.py."""
    return [PlattCalibratedClassifier(cv=3, random_state=0)]

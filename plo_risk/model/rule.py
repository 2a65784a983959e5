"""The ISCD clinical rule as a classifier (the comparator every model must beat).

ISCD: in premenopausal women a Z-score of -2.0 or lower is "below the expected
range for age"; the PLO cohorts of the Mishra review's Table 3 (row 4, ref 49) use
it as the case definition (Mishra N, Masroor H, Gupta M. Turk J Osteoporos
2024;30(1):1-15, doi:10.4274/tod.galenos.2023.24392).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from plo_risk.model._checks import check_binary_fit

__all__ = ["ISCD_Z_THRESHOLD", "ClinicalRuleClassifier"]

#: ISCD: in premenopausal women a Z-score of -2.0 or lower is "below the expected
#: range for age" [@leslie2006iscd]; the PLO cohorts of [@mishra2024, Table 3
#: row 4, ref 49; @li2018] use it as the case definition.
ISCD_Z_THRESHOLD = -2.0


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
        Positive at or below this Z-score ([@mishra2024, Table 3 row 4]: Z <= -2.0).

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
        X, self.classes_, y = check_binary_fit(self, X, y, keep_frame=by_name)
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


def _test_instances() -> list[BaseEstimator]:
    """Extra instances for tests/test_common.py."""
    # On the checks' standardized blobs, column 1 at or below 0 separates the
    # two classes (97.5% of make_blobs(n_samples=300, random_state=0)).
    return [ClinicalRuleClassifier(column=1, threshold=0.0)]

"""Performance of a risk model at a time horizon, from censored follow-up.

The time-to-event counterparts of :mod:`plo_risk.evaluate.metrics`. For each woman
``time`` is the number of months from the assessment to her first fracture or to
the end of her follow-up (censoring), ``event`` is 1 for a fracture and 0 for
censored, and ``risk`` is the model's predicted probability of a fracture within
``horizon`` months (one array per horizon).

A woman whose follow-up ended before the horizon without a fracture has an unknown
status at the horizon. Dropping her biases every metric (she was fracture-free for
a while, so the observed risk comes out too high); counting her as fracture-free
biases it the other way. The estimators here keep the women whose status is known
and weight each by the inverse of the probability of having stayed under
follow-up that long (inverse probability of censoring weights, IPCW), with that
probability ``G`` estimated by the Kaplan-Meier estimator of the censoring times.
This assumes that censoring does not depend on the risk of fracture.

- observed risk: :func:`km_risk` (Kaplan-Meier);
- discrimination: :func:`time_dependent_auroc` (Uno's cumulative/dynamic AUC);
- overall accuracy: :func:`brier_at`, :func:`integrated_brier` (IPCW Brier score);
- calibration: :func:`horizon_calibration` (observed/expected, calibration in the
  large, slope, ICI);
- clinical utility: :func:`net_benefit_at`;
- all of them at several horizons with percentile-bootstrap confidence intervals,
  :func:`evaluate_horizons`, overall or per subgroup
  (:func:`evaluate_horizon_subgroups`, small cells suppressed).

The AUC and the Brier scores are scikit-survival's own
(:func:`sksurv.metrics.cumulative_dynamic_auc`, :func:`sksurv.metrics.brier_score`,
:func:`sksurv.metrics.integrated_brier_score`); the Kaplan-Meier estimates, the
calibration and the net benefit are written here with numpy. Every public function
checks its inputs once, at the top, and names the argument, the offending value and
what is allowed when it refuses them.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import expit, logit
from sksurv.metrics import brier_score, cumulative_dynamic_auc, integrated_brier_score

from plo_risk.evaluate.metrics import (
    MIN_CELL,
    _check_threshold,
    _fmt_value,
    _group_columns,
    _levels,
    _threshold_items,
    _to_1d,
    suppress_small_cells,
)
from plo_risk.model.glm import logistic_irls, one_blas_thread, rcs_design

__all__ = [
    "brier_at",
    "evaluate_horizon_subgroups",
    "evaluate_horizons",
    "horizon_calibration",
    "integrated_brier",
    "km_risk",
    "net_benefit_at",
    "time_dependent_auroc",
]

# Probabilities are clipped before the logit so that risk = 0 or 1 stays finite.
_CLIP = 1e-12
# Knots of the calibration curve's restricted cubic spline, as quantiles of
# logit(risk) (Harrell, Regression Modeling Strategies, 2nd ed., section 2.4.6);
# tied quantiles merge, leaving 3 knots (or a straight line).
_KNOT_QUANTILES = np.array([0.05, 0.35, 0.65, 0.95])
# "risk_3m", "risk_12m", "risk_1.5m": a DataFrame column of risks at 3, 12, 1.5 months.
_RISK_COLUMN = re.compile(r"^risk_(\d+(?:\.\d+)?)m$")
_BASE_METRICS = ("auroc_td", "brier", "observed", "expected", "citl", "slope", "ici")
_TABLE_COLUMNS = ("horizon", "metric", "estimate", "low", "high")
_SUBGROUP_COLUMNS = ("group", "level", *_TABLE_COLUMNS, "n", "events")


# --------------------------------------------------------------------------- input


class _Train(NamedTuple):
    """The training follow-up, from which the censoring distribution is estimated."""

    surv: np.ndarray  # scikit-survival's structured array
    max_time: float


def _check_time_event(
    time: Any, event: Any, *, names: tuple[str, str] = ("time", "event")
) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(time, event)``: float64 months >= 0 and a bool array."""
    t_name, e_name = names
    t = _to_1d(time, t_name)
    e = _to_1d(event, e_name)
    if t.shape[0] != e.shape[0]:
        raise ValueError(
            f"The '{t_name}' and '{e_name}' arguments must have the same length; got "
            f"{t.shape[0]} times and {e.shape[0]} event indicators."
        )
    if t.shape[0] == 0:
        raise ValueError(
            f"The '{t_name}' and '{e_name}' arguments are empty; at least one woman "
            "is needed."
        )
    bad = np.flatnonzero(~((t >= 0) & np.isfinite(t)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"The '{t_name}' argument must contain months >= 0 from the assessment "
            "to the first fracture or to the end of follow-up; got "
            f"{_fmt_value(t[i])} at index {i}."
        )
    bad = np.flatnonzero((e != 0) & (e != 1))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"The '{e_name}' argument must contain 1 (fracture) or 0 (censored), or "
            f"True/False; got {_fmt_value(e[i])} at index {i}."
        )
    return t, e == 1


def _check_probabilities(values: Any, name: str, n: int) -> np.ndarray:
    arr = _to_1d(values, name)
    if arr.shape[0] != n:
        raise ValueError(
            f"The '{name}' argument has {arr.shape[0]} values; expected {n}, one per "
            "row of 'time'."
        )
    bad = np.flatnonzero(~((arr >= 0) & (arr <= 1)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"The '{name}' argument must contain predicted probabilities in [0, 1]; "
            f"got {_fmt_value(arr[i])} at index {i}."
        )
    return arr


def _check_horizon(value: Any, name: str = "horizon") -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        h = float(value)
        ok = math.isfinite(h) and h > 0
    if not ok:
        raise ValueError(
            f"The '{name}' parameter must be a number of months > 0; got "
            f"{_fmt_value(value)}."
        )
    return h


def _check_train(train_time: Any, train_event: Any) -> _Train | None:
    if train_time is None and train_event is None:
        return None
    if train_time is None or train_event is None:
        given = "train_time" if train_event is None else "train_event"
        raise ValueError(
            "Pass both 'train_time' and 'train_event' (the training follow-up, for "
            f"the censoring distribution) or neither; got only '{given}'."
        )
    t, e = _check_time_event(
        train_time, train_event, names=("train_time", "train_event")
    )
    if not e.any():
        raise ValueError(
            f"The 'train_event' argument has no fracture in {e.shape[0]} rows; "
            "scikit-survival needs at least one to estimate the censoring "
            "distribution. Leave 'train_time' and 'train_event' out to estimate it "
            "from the evaluation data."
        )
    return _Train(_structured(e, t), float(t.max()))


def _structured(event: np.ndarray, time: np.ndarray) -> np.ndarray:
    """scikit-survival's outcome: a structured array of (event, time)."""
    out = np.empty(event.shape[0], dtype=[("event", np.bool_), ("time", np.float64)])
    out["event"] = event
    out["time"] = time
    return out


def _require_cases_controls(
    t: np.ndarray, e: np.ndarray, h: float, what: str, *, train: _Train | None = None
) -> None:
    """A fracture by ``h`` and a woman followed beyond it (scikit-survival's cases
    and controls), and training follow-up beyond ``h``."""
    if not (e & (t <= h)).any():
        raise ValueError(
            f"The 'event' argument has no fracture by horizon={h:g} months (of "
            f"{int(e.sum())} fractures in {e.shape[0]} women), so {what} cannot be "
            "computed; choose a longer horizon."
        )
    if not (t > h).any():
        raise ValueError(
            f"The 'horizon' parameter must be below the longest follow-up in 'time' "
            f"({t.max():g} months) to compute {what}: it needs women still followed "
            f"after the horizon; got {h:g}."
        )
    if train is not None and not h < train.max_time:
        raise ValueError(
            f"The 'horizon' parameter must be below the longest follow-up in "
            f"'train_time' ({train.max_time:g} months), where the censoring "
            f"distribution ends; got {h:g}."
        )


# ------------------------------------------------------------ Kaplan-Meier kernels


class _Curves(NamedTuple):
    """Kaplan-Meier curves of fracture-free survival and of censoring, as steps
    at the distinct observed times (rows sorted by time, positive weights)."""

    times: np.ndarray  # distinct, ascending
    surv: np.ndarray  # S(times[j]) after the fractures at times[j]
    cens: np.ndarray  # G(times[j]) after the censorings at times[j]


def _curves(t: np.ndarray, e: np.ndarray, w: np.ndarray) -> _Curves:
    """Both curves from rows sorted by ``t`` (ascending) with weights > 0.

    At a tied time fractures come before censorings: a woman censored at ``t`` was
    at risk of the fracture at ``t``, and a woman with a fracture at ``t`` is no
    longer at risk of censoring then (as scikit-survival's estimators do).
    """
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
    d = np.add.reduceat(w * e, starts)
    total = np.add.reduceat(w, starts)
    at_risk = np.cumsum(total[::-1])[::-1]
    c = total - d
    left = at_risk - d
    with np.errstate(divide="ignore", invalid="ignore"):
        cens_hazard = np.where(left > 0, c / np.where(left > 0, left, 1.0), 0.0)
    return _Curves(
        t[starts], np.cumprod(1.0 - d / at_risk), np.cumprod(1.0 - cens_hazard)
    )


def _surv_at(curves: _Curves, h: np.ndarray | float) -> np.ndarray:
    """S(h), NaN beyond the last time when the curve has not reached 0 there."""
    h = np.asarray(h, dtype=np.float64)
    idx = np.searchsorted(curves.times, h, side="right")
    s = np.r_[1.0, curves.surv][idx]
    beyond = (h > curves.times[-1]) & (curves.surv[-1] > 0)
    return np.where(beyond, np.nan, s)


def _cens_before(curves: _Curves, x: np.ndarray) -> np.ndarray:
    """G(x-): the probability of being still under follow-up just before x."""
    return np.r_[1.0, curves.cens][np.searchsorted(curves.times, x, side="left")]


def _km_risk_sorted(t: np.ndarray, e: np.ndarray, h: float) -> float:
    """1 - S(h) of rows sorted by time (unit weights); NaN if not estimable."""
    if t.shape[0] == 0:
        return math.nan
    return float(1.0 - _surv_at(_curves(t, e, np.ones_like(t)), h))


# --------------------------------------------------------- calibration kernels


def _ipcw(t: np.ndarray, e: np.ndarray, h: float, curves: _Curves) -> np.ndarray:
    """Weight 0 for a woman censored before ``h`` without a fracture (status
    unknown), else 1 / G(min(T, h)-)."""
    known = e | (t >= h)
    w = np.zeros_like(t)
    w[known] = 1.0 / _cens_before(curves, np.minimum(t[known], h))
    return w


def _slope_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the weighted logistic regression of y on x; NaN when
    they do not exist (one class, constant x, or x separating the classes)."""
    pos = y == 1
    if pos.all() or not pos.any() or x.min() == x.max():
        return math.nan, math.nan
    x_pos, x_neg = x[pos], x[~pos]
    if x_neg.max() <= x_pos.min() or x_pos.max() <= x_neg.min():
        return math.nan, math.nan
    design = np.column_stack([np.ones_like(x), x])
    beta, _, ok = logistic_irls(design, y, w, beta=np.array([0.0, 1.0]))
    if not ok:
        return math.nan, math.nan
    return float(beta[1]), float(beta[0])


def _ici_fit(
    x_all: np.ndarray, risk: np.ndarray, known: np.ndarray, y: np.ndarray, w: np.ndarray
) -> float:
    """Mean |risk - c(risk)| over every woman, c the IPCW-weighted logistic
    regression of the status on a restricted cubic spline of logit(risk), fitted
    on the women with a known status (``known``: their rows in ``x_all``)."""
    if y.all() or not y.any():
        return math.nan
    if x_all.min() == x_all.max():
        design_all = np.ones((x_all.shape[0], 1))
        start = np.zeros(1)
    else:
        knots = np.unique(np.quantile(x_all, _KNOT_QUANTILES))
        design_all = rcs_design(x_all, knots if knots.shape[0] >= 3 else knots[:0])
        start = np.zeros(design_all.shape[1])
        start[1] = 1.0  # the identity curve: the risk is calibrated
    beta, _, _ = logistic_irls(design_all[known], y, w, beta=start)
    curve = expit(design_all @ beta)
    return float(np.mean(np.abs(risk - curve)))


class _Calibration(NamedTuple):
    observed: float
    expected: float
    o_e: float
    citl: float
    slope: float
    intercept: float
    ici: float


def _calibration_sorted(
    t: np.ndarray, e: np.ndarray, risk: np.ndarray, h: float, curves: _Curves
) -> _Calibration:
    observed = float(1.0 - _surv_at(curves, h))
    expected = float(np.mean(risk))
    with np.errstate(divide="ignore", invalid="ignore"):
        o_e = observed / expected if expected > 0 else math.nan
    inside = 0 < observed < 1 and 0 < expected < 1
    citl = float(logit(observed) - logit(expected)) if inside else math.nan
    w = _ipcw(t, e, h, curves)
    known = w > 0
    y = (e & (t <= h))[known].astype(np.float64)
    x_all = logit(np.clip(risk, _CLIP, 1 - _CLIP))
    slope, intercept = _slope_fit(x_all[known], y, w[known])
    ici = _ici_fit(x_all, risk, known, y, w[known])
    return _Calibration(observed, expected, o_e, citl, slope, intercept, ici)


def _net_benefit_sorted(
    t: np.ndarray, e: np.ndarray, risk: np.ndarray, h: float, threshold: float
) -> float:
    pos = risk >= threshold
    n_pos = float(pos.mean())
    if n_pos == 0:
        return 0.0
    r_pos = _km_risk_sorted(t[pos], e[pos], h)
    return r_pos * n_pos - (1.0 - r_pos) * n_pos * threshold / (1.0 - threshold)


# ------------------------------------------------------------- scikit-survival


def _sksurv_scores(
    t: np.ndarray,
    e: np.ndarray,
    risks: np.ndarray,
    horizons: np.ndarray,
    train: _Train | None,
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-survival's cumulative/dynamic AUC and IPCW Brier score at each of the
    ascending ``horizons`` (``risks``: one column each); NaN where undefined.

    scikit-survival looks the censoring distribution up at every test time, even
    past the horizons where nothing uses it, and refuses times outside the
    training follow-up or where it is 0. Ending the test follow-up at ``tau``,
    the first time after the last horizon (or the end of the training follow-up if
    sooner), leaves the metrics at the horizons exactly as they are: cases,
    controls and the weights of the cases all lie before ``tau``.
    """
    k = horizons.shape[0]
    auc = np.full(k, np.nan)
    brier = np.full(k, np.nan)
    ok = np.array([(e & (t <= h)).any() and (t > h).any() for h in horizons])
    if train is not None:
        ok &= horizons < train.max_time
    if not ok.any():
        return auc, brier
    hs = horizons[ok]
    tau = t[t > hs[-1]].min()
    if train is not None:
        tau = min(tau, train.max_time)
    test = _structured(e & (t < tau), np.minimum(t, tau))
    reference = test if train is None else train.surv
    est = risks[:, ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        auc[ok] = cumulative_dynamic_auc(reference, test, est, hs)[0]
        brier[ok] = brier_score(reference, test, 1.0 - est, hs)[1]
    return auc, brier


def _sksurv_error(what: str, exc: Exception) -> ValueError:
    return ValueError(f"scikit-survival could not compute {what}: {exc}")


# --------------------------------------------------------------- public metrics


def km_risk(
    time: ArrayLike, event: ArrayLike, horizon: float, weights: ArrayLike | None = None
) -> float:
    """Observed risk of a fracture by ``horizon``: 1 - Kaplan-Meier survival.

    ``1 - prod_{t_j <= horizon} (1 - d_j / n_j)`` over the distinct fracture times
    ``t_j``, with ``d_j`` the fractures at ``t_j`` and ``n_j`` the women still
    followed then (Kaplan EL, Meier P. Nonparametric estimation from incomplete
    observations. J Am Stat Assoc 1958;53:457-481,
    doi:10.1080/01621459.1958.10501452). A woman censored at ``t_j`` counts as at
    risk of the fractures at ``t_j``. Equal to
    :func:`sksurv.nonparametric.kaplan_meier_estimator`.

    Parameters
    ----------
    time : array-like of shape (n,)
        Months from the assessment to the first fracture or to the end of
        follow-up, >= 0.
    event : array-like of shape (n,)
        1 (or True) for a fracture, 0 (or False) for censored.
    horizon : float
        Months after the assessment, > 0.
    weights : array-like of shape (n,), default=None
        Non-negative weight per woman (a woman of weight 2 counts as two); ``None``
        weighs everyone 1.

    Returns
    -------
    float
        The risk in [0, 1].

    Raises
    ------
    ValueError
        If the inputs are invalid, or ``horizon`` lies beyond the longest
        follow-up while the curve has not reached 0 (the estimate stops there).

    Examples
    --------
    >>> from plo_risk.evaluate.survival import km_risk
    >>> # Fractures at 2 and 6 months; censored at 4, 8 and 12 months.
    >>> time, event = [2, 4, 6, 8, 12], [1, 0, 1, 0, 0]
    >>> round(km_risk(time, event, horizon=6), 4)  # 1 - (4/5) * (2/3)
    0.4667
    >>> km_risk(time, event, horizon=1)
    0.0
    """
    h = _check_horizon(horizon)
    t, e = _check_time_event(time, event)
    if weights is None:
        w = np.ones_like(t)
    else:
        w = _to_1d(weights, "weights")
        if w.shape[0] != t.shape[0]:
            raise ValueError(
                f"The 'weights' argument has {w.shape[0]} values; expected "
                f"{t.shape[0]}, one per row of 'time'."
            )
        bad = np.flatnonzero(~((w >= 0) & np.isfinite(w)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                "The 'weights' argument must contain finite numbers >= 0; got "
                f"{_fmt_value(w[i])} at index {i}."
            )
        if not (w > 0).any():
            raise ValueError("The 'weights' argument is 0 for every woman.")
    keep = w > 0
    t, e, w = t[keep], e[keep], w[keep]
    order = np.argsort(t, kind="stable")
    risk = 1.0 - float(_surv_at(_curves(t[order], e[order], w[order]), h))
    if math.isnan(risk):
        raise ValueError(
            f"The 'horizon' parameter must be within the follow-up: the "
            f"Kaplan-Meier curve ends at the longest follow-up in 'time' "
            f"({t.max():g} months) without reaching 0; got {h:g}."
        )
    return risk


def time_dependent_auroc(
    time: ArrayLike,
    event: ArrayLike,
    risk: ArrayLike,
    horizon: float,
    *,
    train_time: ArrayLike | None = None,
    train_event: ArrayLike | None = None,
) -> float:
    """Cumulative/dynamic AUROC at ``horizon``, Uno's IPCW estimator.

    The probability that a woman with a fracture by the horizon (a case) has a
    higher predicted risk than a woman still fracture-free after it (a control),
    each case weighted by 1 / G(T), ties counting one half (Uno H, Cai T, Tian L,
    Wei LJ. Evaluating prediction rules for t-year survivors with censored
    regression models. J Am Stat Assoc 2007;102:527-537,
    doi:10.1198/016214507000000149). Computed by
    :func:`sksurv.metrics.cumulative_dynamic_auc`. With no censoring before the
    horizon it is the ordinary AUROC (:func:`plo_risk.evaluate.auroc`) of the
    status "fracture by the horizon".

    Parameters
    ----------
    time : array-like of shape (n,)
        Months from the assessment to the first fracture or to the end of
        follow-up, >= 0.
    event : array-like of shape (n,)
        1 (or True) for a fracture, 0 (or False) for censored.
    risk : array-like of shape (n,)
        Predicted probability of a fracture within ``horizon`` months, in [0, 1].
    horizon : float
        Months after the assessment, > 0 and below the longest follow-up.
    train_time, train_event : array-like of shape (m,), default=None
        The training data's follow-up, from which the censoring distribution G is
        estimated (scikit-survival's ``survival_train``); both or neither. By
        default G is estimated from ``time`` and ``event`` themselves.

    Returns
    -------
    float
        AUROC in [0, 1]; 0.5 is chance.

    Raises
    ------
    ValueError
        If the inputs are invalid, there is no fracture by the horizon, or no woman
        is followed beyond it (in ``time`` or in ``train_time``).

    Notes
    -----
    Controls are the women with ``time > horizon``, as in scikit-survival: a woman
    censored exactly at the horizon is left out.

    Examples
    --------
    >>> from plo_risk.evaluate.survival import time_dependent_auroc
    >>> time = [2, 5, 7, 9, 14, 15, 18, 20]
    >>> event = [1, 0, 1, 1, 0, 1, 0, 0]
    >>> risk = [0.30, 0.05, 0.20, 0.10, 0.15, 0.08, 0.02, 0.12]
    >>> # Cases (by 12 months): risks 0.30, 0.20, 0.10; the woman censored at 5
    >>> # months is neither a case nor a control.
    >>> round(time_dependent_auroc(time, event, risk, horizon=12), 4)
    0.825
    """
    return _score_at(
        time, event, risk, horizon, train_time, train_event, "the time-dependent AUROC"
    )[0]


def brier_at(
    time: ArrayLike,
    event: ArrayLike,
    risk: ArrayLike,
    horizon: float,
    *,
    train_time: ArrayLike | None = None,
    train_event: ArrayLike | None = None,
) -> float:
    """Brier score at ``horizon`` for censored data (inverse probability of
    censoring weights).

    ``mean_i [ I(T_i <= h, fracture) (1 - r_i)^2 / G(T_i) + I(T_i > h) r_i^2 /
    G(h) ]``: the squared error of the predicted risk ``r`` against the status by
    the horizon, each known status weighted by the inverse probability of being
    still followed then (Graf E, Schmoor C, Sauerbrei W, Schumacher M. Assessment
    and comparison of prognostic classification schemes for survival data. Stat
    Med 1999;18:2529-2545,
    doi:10.1002/(SICI)1097-0258(19990915/30)18:17/18<2529::AID-SIM274>3.0.CO;2-5).
    Computed by :func:`sksurv.metrics.brier_score` from the survival
    probabilities ``1 - risk``.

    Parameters
    ----------
    time, event, risk, horizon, train_time, train_event
        As in :func:`time_dependent_auroc`.

    Returns
    -------
    float
        Brier score; lower is better. With no censoring it is
        :func:`plo_risk.evaluate.brier` of the status by the horizon.

    Raises
    ------
    ValueError
        If the inputs are invalid, there is no fracture by the horizon (which
        scikit-survival needs) or no woman is followed beyond it.

    Examples
    --------
    >>> from plo_risk.evaluate.survival import brier_at
    >>> time = [2, 5, 7, 9, 14, 15, 18, 20]
    >>> event = [1, 0, 1, 1, 0, 1, 0, 0]
    >>> risk = [0.30, 0.05, 0.20, 0.10, 0.15, 0.08, 0.02, 0.12]
    >>> round(brier_at(time, event, risk, horizon=12), 4)
    0.2791
    """
    return _score_at(
        time, event, risk, horizon, train_time, train_event, "the Brier score"
    )[1]


def _score_at(time, event, risk, horizon, train_time, train_event, what: str):
    """(time-dependent AUROC, IPCW Brier) at one horizon, checked; ``what``
    names the metric in errors."""
    h = _check_horizon(horizon)
    t, e = _check_time_event(time, event)
    r = _check_probabilities(risk, "risk", t.shape[0])
    train = _check_train(train_time, train_event)
    _require_cases_controls(t, e, h, what, train=train)
    try:
        auc, brier = _sksurv_scores(t, e, r[:, None], np.array([h]), train)
    except ValueError as exc:
        raise _sksurv_error(what, exc) from exc
    return float(auc[0]), float(brier[0])


def integrated_brier(
    time: ArrayLike,
    event: ArrayLike,
    risks: ArrayLike,
    times: ArrayLike,
    *,
    train_time: ArrayLike | None = None,
    train_event: ArrayLike | None = None,
) -> float:
    """Integrated Brier score: the IPCW Brier score averaged over ``times``.

    ``integral of BS(t) dt / (times[-1] - times[0])`` by the trapezoidal rule over
    the Brier scores at ``times`` (see :func:`brier_at`), computed by
    :func:`sksurv.metrics.integrated_brier_score`.

    Parameters
    ----------
    time, event : array-like of shape (n,)
        As in :func:`brier_at`.
    risks : array-like of shape (n, len(times))
        ``risks[i, j]``: predicted probability that woman ``i`` has a fracture
        within ``times[j]`` months, in [0, 1].
    times : array-like of shape (k,)
        At least two months, increasing, from the shortest follow-up in ``time``
        to below the longest.
    train_time, train_event
        As in :func:`time_dependent_auroc`.

    Returns
    -------
    float
        The integrated Brier score; lower is better.

    Raises
    ------
    ValueError
        If the inputs are invalid, ``times`` is not increasing or lies outside the
        follow-up, or there is no fracture by ``times[-1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.evaluate.survival import brier_at, integrated_brier
    >>> time = [2, 5, 7, 9, 14, 15, 18, 20]
    >>> event = [1, 0, 1, 1, 0, 1, 0, 0]
    >>> risk6 = np.array([0.30, 0.05, 0.20, 0.10, 0.15, 0.08, 0.02, 0.12])
    >>> risks = np.column_stack([risk6, 1.5 * risk6])  # at 6 and 12 months
    >>> ibs = integrated_brier(time, event, risks, times=[6, 12])
    >>> bs = [brier_at(time, event, risks[:, j], h) for j, h in enumerate([6, 12])]
    >>> bool(np.isclose(ibs, np.mean(bs)))  # two points: their mean
    True
    """
    t, e = _check_time_event(time, event)
    grid = np.asarray(times, dtype=object)
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(
            "The 'times' parameter must be a sequence of at least two months; got "
            f"{_fmt_value(times) if grid.ndim == 0 else list(grid)}."
        )
    grid = np.array(
        [_check_horizon(v, f"times[{i}]") for i, v in enumerate(grid)], dtype=float
    )
    if (np.diff(grid) <= 0).any():
        raise ValueError(
            f"The 'times' parameter must be increasing; got {grid.tolist()}."
        )
    if grid[0] < t.min():
        raise ValueError(
            f"The 'times' parameter must start at or after the shortest follow-up "
            f"in 'time' ({t.min():g} months); got times[0]={grid[0]:g}."
        )
    arr = np.asarray(risks, dtype=object)
    if arr.ndim != 2 or arr.shape != (t.shape[0], grid.shape[0]):
        raise ValueError(
            f"The 'risks' argument must have shape ({t.shape[0]}, {grid.shape[0]}) "
            f"(one row per woman, one column per time); got shape {arr.shape}."
        )
    cols = [
        _check_probabilities(arr[:, j], f"risks[:, {j}]", t.shape[0])
        for j in range(grid.shape[0])
    ]
    est = np.column_stack(cols)
    train = _check_train(train_time, train_event)
    _require_cases_controls(t, e, grid[-1], "the integrated Brier score", train=train)
    tau = t[t > grid[-1]].min()
    if train is not None:
        tau = min(tau, train.max_time)
    test = _structured(e & (t < tau), np.minimum(t, tau))
    reference = test if train is None else train.surv
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(integrated_brier_score(reference, test, 1.0 - est, grid))
    except ValueError as exc:
        raise _sksurv_error("the integrated Brier score", exc) from exc


def horizon_calibration(
    time: ArrayLike, event: ArrayLike, risk: ArrayLike, horizon: float
) -> dict[str, float]:
    """Calibration at ``horizon``: observed against predicted risk, censoring
    handled by Kaplan-Meier and inverse probability of censoring weights.

    The status of a woman at the horizon (fracture by then or not) is known unless
    her follow-up ended before it without a fracture. The regressions below use the
    women with a known status, each weighted by ``1 / G(min(T, horizon)-)``, the
    inverse of the Kaplan-Meier probability of being still followed just before
    her status became known; the others get weight 0. A woman censored exactly at
    the horizon is known to be fracture-free by then.

    Parameters
    ----------
    time, event : array-like of shape (n,)
        As in :func:`km_risk`.
    risk : array-like of shape (n,)
        Predicted probability of a fracture within ``horizon`` months, in [0, 1].
    horizon : float
        Months after the assessment, > 0.

    Returns
    -------
    dict of str to float
        - ``observed``: :func:`km_risk` at the horizon;
        - ``expected``: the mean predicted risk;
        - ``o_e``: observed / expected (1 is ideal);
        - ``citl``: calibration in the large, ``logit(observed) - logit(expected)``
          (0 is ideal; below 0 the model over-predicts); NaN when either is 0 or 1;
        - ``slope``, ``intercept``: ``b`` and ``a`` of the weighted logistic
          recalibration ``logit P(fracture by horizon) = a + b logit(risk)``
          (ideal 1 and 0; ``b`` below 1: predictions too extreme). NaN, with a
          warning, when the fit does not exist (``risk`` constant or separating
          the statuses). ``a`` is not the calibration in the large unless ``b``
          is 1: report ``citl`` for that;
        - ``ici``: the integrated calibration index, ``mean_i |r_i - c(r_i)|`` over
          all women (Austin PC, Harrell FE Jr, van Klaveren D. Graphical
          calibration curves and the integrated calibration index (ICI) for
          survival models. Stat Med 2020;39:2714-2742, doi:10.1002/sim.8570). Here
          the smooth calibration curve ``c`` is the weighted logistic regression
          of the status on a restricted cubic spline of ``logit(risk)``, with 4
          knots at the 5th, 35th, 65th and 95th percentiles (3 when two
          coincide): see Notes.

    Raises
    ------
    ValueError
        If the inputs are invalid, or among the women with a known status there
        is no fracture by the horizon or no one without.

    Warns
    -----
    UserWarning
        When the slope does not exist and NaN is returned.

    Notes
    -----
    The ICI's curve is not one of the paper's two estimators (a hazard regression,
    or a Cox model on a restricted cubic spline of ``log(-log(1 - risk))``); it is
    the IPCW version of the spline estimate of
    :func:`plo_risk.evaluate.ici` with ``method="spline"``, which it equals when no
    one is censored before the horizon. Both estimate the same curve, so the ICIs
    agree in large samples, not to the digit.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.evaluate.survival import horizon_calibration
    >>> from scipy.special import expit, logit
    >>> rng = np.random.default_rng(3)
    >>> rate = np.exp(rng.normal(-4.5, 0.8, 20_000))  # fractures per month
    >>> risk = 1 - np.exp(-12 * rate)  # the true 12-month risk
    >>> fracture = rng.exponential(1 / rate)
    >>> end = rng.uniform(0, 36, 20_000)  # end of follow-up: 31% censored by 12
    >>> time, event = np.minimum(fracture, end), fracture <= end
    >>> cal = horizon_calibration(time, event, risk, horizon=12)
    >>> print(f"O/E {cal['o_e']:.2f}, slope {cal['slope']:.1f}, ICI {cal['ici']:.3f}")
    O/E 1.01, slope 1.0, ICI 0.003
    >>> # A model twice as confident on the logit scale: slope 0.5.
    >>> too_extreme = expit(2 * logit(risk))
    >>> cal = horizon_calibration(time, event, too_extreme, horizon=12)
    >>> print(f"O/E {cal['o_e']:.2f}, slope {cal['slope']:.1f}, ICI {cal['ici']:.3f}")
    O/E 2.49, slope 0.5, ICI 0.098
    """
    h = _check_horizon(horizon)
    t, e = _check_time_event(time, event)
    r = _check_probabilities(risk, "risk", t.shape[0])
    order = np.argsort(t, kind="stable")
    t, e, r = t[order], e[order], r[order]
    curves = _curves(t, e, np.ones_like(t))
    known = e | (t >= h)
    status = e & (t <= h)
    if not status.any() or status[known].all():
        missing = "no fracture" if not status.any() else "no woman fracture-free"
        raise ValueError(
            f"The 'event' argument has {missing} by horizon={h:g} months among the "
            f"{int(known.sum())} women whose status then is known, so the "
            "calibration cannot be computed."
        )
    with one_blas_thread():
        cal = _calibration_sorted(t, e, r, h, curves)
    if math.isnan(cal.slope):
        warnings.warn(
            "The calibration slope does not exist: 'risk' is constant or separates "
            "the women with a fracture by the horizon from the others. Returning "
            "NaN; report 'citl' and 'o_e' instead.",
            UserWarning,
            stacklevel=2,
        )
    return cal._asdict()


def net_benefit_at(
    time: ArrayLike, event: ArrayLike, risk: ArrayLike, horizon: float, threshold: float
) -> float:
    """Net benefit at ``horizon`` of treating the women with ``risk >= threshold``.

    ``NB = r_pos n_pos - (1 - r_pos) n_pos t / (1 - t)``, with ``n_pos`` the share
    of women at or above the threshold ``t`` and ``r_pos`` their Kaplan-Meier risk
    of a fracture by the horizon (Vickers AJ, Cronin AM, Elkin EB, Gonen M.
    Extensions to decision curve analysis, a novel method for evaluating diagnostic
    tests, prediction models and molecular markers. BMC Med Inform Decis Mak
    2008;8:53, doi:10.1186/1472-6947-8-53). With no censoring it is
    :func:`plo_risk.evaluate.net_benefit` of the status by the horizon.

    Parameters
    ----------
    time, event, risk, horizon
        As in :func:`horizon_calibration`.
    threshold : float
        Risk threshold ``t`` in (0, 1).

    Returns
    -------
    float
        Net benefit, in true positives per woman; 0 when no one is at or above
        the threshold.

    Raises
    ------
    ValueError
        If the inputs or the threshold are invalid, or the women at or above the
        threshold are all censored before the horizon (their risk then is
        unknown).

    Examples
    --------
    >>> from plo_risk.evaluate.survival import net_benefit_at
    >>> time = [2, 5, 7, 9, 14, 15, 18, 20]
    >>> event = [1, 0, 1, 1, 0, 1, 0, 0]
    >>> risk = [0.30, 0.05, 0.20, 0.10, 0.15, 0.08, 0.02, 0.12]
    >>> # Five women at >= 10%, three with a fracture by 12 months: r_pos = 0.6.
    >>> round(net_benefit_at(time, event, risk, horizon=12, threshold=0.1), 4)
    0.3472
    """
    thr = _check_threshold(threshold, "threshold", closed=False)
    h = _check_horizon(horizon)
    t, e = _check_time_event(time, event)
    r = _check_probabilities(risk, "risk", t.shape[0])
    order = np.argsort(t, kind="stable")
    nb = _net_benefit_sorted(t[order], e[order], r[order], h, thr)
    if math.isnan(nb):
        raise ValueError(
            f"The women with 'risk' >= threshold={thr:g} are all censored before "
            f"horizon={h:g} months, so their risk by then is unknown."
        )
    return float(nb)


# --------------------------------------------------------------- many horizons


class _Plan(NamedTuple):
    """Validated settings of :func:`evaluate_horizons`."""

    horizons: np.ndarray  # ascending
    nb: list[tuple[str, float]]  # (name, threshold)
    names: list[str]  # metric names, per horizon
    n_boot: int
    level: float
    seed: Any
    train: _Train | None


def _horizon_of(key: Any, where: str) -> float:
    if isinstance(key, str):
        m = _RISK_COLUMN.match(key)
        if m is None:
            raise ValueError(
                f"The 'risks' argument must name each {where} by its horizon in "
                f"months, as a number (12) or as 'risk_12m'; got {key!r}."
            )
        return _check_horizon(float(m.group(1)), f"risks[{key!r}]")
    return _check_horizon(key, f"risks[{key!r}]")


def _risk_matrix(risks: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``risks`` as (ascending horizons, matrix of shape (n, horizons))."""
    if isinstance(risks, pd.DataFrame):
        items = [(c, risks[c]) for c in risks.columns]
        where = "column"
    elif isinstance(risks, Mapping):
        items = list(risks.items())
        where = "key"
    else:
        raise ValueError(
            "The 'risks' argument must be a dict of horizon -> predicted risks or a "
            "DataFrame with one column per horizon ('risk_3m', 'risk_12m', ...); got "
            f"{type(risks).__name__}."
        )
    if not items:
        raise ValueError("The 'risks' argument has no horizon; give at least one.")
    horizons = [_horizon_of(key, where) for key, _ in items]
    if len(set(horizons)) != len(horizons):
        raise ValueError(
            f"The 'risks' argument gives a horizon twice: {[k for k, _ in items]}."
        )
    cols = [_check_probabilities(v, f"risks[{k!r}]", n) for k, v in items]
    order = np.argsort(horizons)
    return np.array(horizons)[order], np.column_stack(cols)[:, order]


def _make_plan(
    risks: Any,
    n: int,
    n_boot: Any,
    seed: Any,
    level: Any,
    thresholds: Any,
    train_time: Any,
    train_event: Any,
) -> tuple[_Plan, np.ndarray]:
    if (
        isinstance(n_boot, bool)
        or not isinstance(n_boot, numbers.Integral)
        or n_boot < 0
    ):
        raise ValueError(
            "The 'n_boot' parameter must be an int >= 0 (0 skips the confidence "
            f"intervals); got {_fmt_value(n_boot)}."
        )
    if (
        isinstance(level, bool)
        or not isinstance(level, numbers.Real)
        or not 0 < level < 1
    ):
        raise ValueError(
            "The 'level' parameter must be a confidence level in (0, 1), such as "
            f"0.95; got {_fmt_value(level)}."
        )
    if not (
        seed is None
        or isinstance(seed, np.random.Generator)
        or (
            isinstance(seed, numbers.Integral)
            and not isinstance(seed, bool)
            and seed >= 0
        )
    ):
        raise ValueError(
            "The 'seed' parameter must be an int >= 0, a numpy Generator or None; "
            f"got {_fmt_value(seed)}."
        )
    nb = _threshold_items(thresholds, "thresholds")
    horizons, matrix = _risk_matrix(risks, n)
    names = [*_BASE_METRICS, *(f"net_benefit@{key}" for key, _ in nb)]
    plan = _Plan(
        horizons,
        nb,
        names,
        int(n_boot),
        float(level),
        seed,
        _check_train(train_time, train_event),
    )
    return plan, matrix


def _metric_matrix(
    t: np.ndarray, e: np.ndarray, risks: np.ndarray, plan: _Plan
) -> np.ndarray:
    """Every metric at every horizon, shape (horizons, metrics); NaN where
    undefined."""
    out = np.full((plan.horizons.shape[0], len(plan.names)), np.nan)
    if t.shape[0] == 0:
        return out
    order = np.argsort(t, kind="stable")
    t, e, risks = t[order], e[order], risks[order]
    try:
        out[:, 0], out[:, 1] = _sksurv_scores(t, e, risks, plan.horizons, plan.train)
    except ValueError:  # scikit-survival refused this sample: NaN
        pass
    curves = _curves(t, e, np.ones_like(t))
    for j, h in enumerate(plan.horizons):
        cal = _calibration_sorted(t, e, risks[:, j], h, curves)
        out[j, 2:7] = (cal.observed, cal.expected, cal.citl, cal.slope, cal.ici)
        for m, (_, thr) in enumerate(plan.nb):
            out[j, 7 + m] = _net_benefit_sorted(t, e, risks[:, j], h, thr)
    return out


def _evaluate_arrays(
    t: np.ndarray, e: np.ndarray, risks: np.ndarray, plan: _Plan
) -> pd.DataFrame:
    """The long table of :func:`evaluate_horizons` on checked arrays."""
    k, m = plan.horizons.shape[0], len(plan.names)
    low = np.full((k, m), np.nan)
    high = np.full((k, m), np.nan)
    n = t.shape[0]
    with one_blas_thread(), np.errstate(all="ignore"):
        estimate = _metric_matrix(t, e, risks, plan)
        if n and plan.n_boot:
            rng = np.random.default_rng(plan.seed)
            reps = np.empty((plan.n_boot, k, m))
            for b in range(plan.n_boot):
                idx = rng.integers(0, n, n)
                reps[b] = _metric_matrix(t[idx], e[idx], risks[idx], plan)
            alpha = (1.0 - plan.level) / 2.0
            for j in range(k):
                for q in range(m):
                    col = reps[:, j, q]
                    col = col[~np.isnan(col)]
                    if col.size:
                        low[j, q], high[j, q] = np.quantile(col, [alpha, 1 - alpha])
    table = pd.DataFrame(
        {
            "horizon": np.repeat(plan.horizons, m),
            "metric": plan.names * k,
            "estimate": estimate.ravel(),
            "low": low.ravel(),
            "high": high.ravel(),
        }
    )
    table.attrs.update(level=plan.level, n_boot=plan.n_boot)
    return table


def evaluate_horizons(
    time: ArrayLike,
    event: ArrayLike,
    risks: Mapping[float, ArrayLike] | pd.DataFrame,
    *,
    n_boot: int = 200,
    seed: int | np.random.Generator | None = 0,
    level: float = 0.95,
    train_time: ArrayLike | None = None,
    train_event: ArrayLike | None = None,
    thresholds: Mapping[str, float] | Iterable[float] = (0.02, 0.10),
) -> pd.DataFrame:
    """Every time-to-event metric at each horizon, with bootstrap intervals.

    Women (rows) are resampled with replacement ``n_boot`` times; every metric at
    every horizon of a replicate is computed on the same resampled women.
    Intervals are the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of
    the replicates; a replicate in which a metric is undefined (no fracture by a
    horizon, say) is left out of that metric's interval. A training censoring
    distribution (``train_time``, ``train_event``) is held fixed; otherwise it is
    re-estimated in each replicate.

    Parameters
    ----------
    time, event : array-like of shape (n,)
        As in :func:`km_risk`.
    risks : dict of float to array-like, or DataFrame
        The predicted risk of a fracture within each horizon: a dict from the
        horizon in months to ``n`` risks, or a DataFrame with one column per
        horizon, named by the horizon (``12``) or as ``"risk_12m"``.
    n_boot : int, default=200
        Number of bootstrap replicates; 0 gives no intervals (NaN bounds).
    seed : int, numpy.random.Generator or None, default=0
        Seed of the resampling; the same seed gives the same intervals.
    level : float, default=0.95
        Confidence level of the intervals, in (0, 1).
    train_time, train_event : array-like of shape (m,), default=None
        As in :func:`time_dependent_auroc` (used by ``auroc_td`` and ``brier``).
    thresholds : dict of str to float, or sequence of float, default=(0.02, 0.10)
        Risk thresholds in (0, 1) for the net benefit, as ``[0.02, 0.1]`` (rows
        ``net_benefit@0.02``, ``net_benefit@0.1``) or ``{"high": 0.1}``
        (``net_benefit@high``).

    Returns
    -------
    pandas.DataFrame
        One row per horizon (ascending) and metric, with columns ``horizon``,
        ``metric``, ``estimate``, ``low`` and ``high``. The metrics, in this order:
        ``auroc_td`` (:func:`time_dependent_auroc`), ``brier`` (:func:`brier_at`),
        ``observed``, ``expected``, ``citl``, ``slope``, ``ici``
        (:func:`horizon_calibration`) and ``net_benefit@<threshold>``
        (:func:`net_benefit_at`). ``attrs`` records ``level`` and ``n_boot``.

    Raises
    ------
    ValueError
        If the inputs or a parameter are invalid, or a horizon has no fracture by
        it or no woman followed beyond it.

    See Also
    --------
    evaluate_horizon_subgroups : the same table per subgroup.

    Notes
    -----
    About 2 s for 2,000 women, 3 horizons and 200 replicates on one core.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.evaluate.survival import evaluate_horizons
    >>> rng = np.random.default_rng(0)
    >>> rate = np.exp(rng.normal(-4.5, 0.8, 2_000))
    >>> fracture, end = rng.exponential(1 / rate), rng.uniform(6, 36, 2_000)
    >>> time, event = np.minimum(fracture, end), fracture <= end
    >>> risks = {h: 1 - np.exp(-h * rate) for h in (6, 12)}
    >>> table = evaluate_horizons(time, event, risks, n_boot=20)
    >>> table.columns.tolist()
    ['horizon', 'metric', 'estimate', 'low', 'high']
    >>> table.metric.iloc[:9].tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['auroc_td', 'brier', 'observed', 'expected', 'citl', 'slope', 'ici',
     'net_benefit@0.02', 'net_benefit@0.1']
    >>> row = table.set_index(["horizon", "metric"]).loc[(12, "auroc_td")]
    >>> bool(row.low <= row.estimate <= row.high)
    True
    """
    t, e = _check_time_event(time, event)
    plan, matrix = _make_plan(
        risks, t.shape[0], n_boot, seed, level, thresholds, train_time, train_event
    )
    for h in plan.horizons:
        _require_cases_controls(t, e, h, "the metrics", train=plan.train)
    return _evaluate_arrays(t, e, matrix, plan)


def evaluate_horizon_subgroups(
    time: ArrayLike,
    event: ArrayLike,
    risks: Mapping[float, ArrayLike] | pd.DataFrame,
    groups: pd.DataFrame | Mapping[str, ArrayLike] | pd.Series,
    *,
    n_boot: int = 200,
    seed: int | np.random.Generator | None = 0,
    level: float = 0.95,
    train_time: ArrayLike | None = None,
    train_event: ArrayLike | None = None,
    thresholds: Mapping[str, float] | Iterable[float] = (0.02, 0.10),
    min_cell: int | None = MIN_CELL,
) -> pd.DataFrame:
    """:func:`evaluate_horizons` within each level of each grouping variable.

    For fairness and transportability reporting (TRIPOD+AI): performance by age
    band, ancestry, parity, ... A level without fractures by a horizon (or with no
    one followed beyond it) is still listed, with NaN for the metrics it cannot
    give, instead of an error. Small cells are suppressed as by
    :func:`plo_risk.evaluate.suppress_small_cells`, separately at each horizon.

    Parameters
    ----------
    time, event, risks
        As in :func:`evaluate_horizons`.
    groups : DataFrame, Series or dict of str to array-like
        One grouping variable per column (or key), ``n`` values each, aligned with
        ``time`` by position. Levels of a categorical follow its category order,
        unobserved categories included (``n = 0``); other levels are sorted.
        Missing values form the level ``"missing"``.
    n_boot, seed, level, train_time, train_event, thresholds
        As in :func:`evaluate_horizons`; every level is resampled with the same
        seed, and only within itself.
    min_cell : int or None, default=5
        A cell (one level at one horizon) with 1 to ``min_cell - 1`` women,
        fractures by the horizon or women without one has NaN estimates and
        bounds, and its small counts are shown as ``"<5"`` (see
        :func:`~plo_risk.evaluate.suppress_small_cells`, which also hides one more
        level where a single one is small). ``None`` keeps every number (for use
        in memory only).

    Returns
    -------
    pandas.DataFrame
        Long format with columns ``group`` (the variable name), ``level``,
        ``horizon``, ``metric``, ``estimate``, ``low``, ``high``, ``n`` (women in
        the level) and ``events`` (their fractures by the horizon), and, unless
        ``min_cell`` is None, a bool column ``suppressed``.

    Raises
    ------
    ValueError
        If the inputs or a parameter are invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.evaluate.survival import evaluate_horizon_subgroups
    >>> rng = np.random.default_rng(0)
    >>> rate = np.exp(rng.normal(-4.5, 0.8, 2_000))
    >>> fracture, end = rng.exponential(1 / rate), rng.uniform(6, 36, 2_000)
    >>> time, event = np.minimum(fracture, end), fracture <= end
    >>> parity = rng.choice(["1", "2", "3+"], 2_000, p=[0.45, 0.45, 0.1])
    >>> table = evaluate_horizon_subgroups(
    ...     time, event, {12: 1 - np.exp(-12 * rate)}, {"parity": parity}, n_boot=0
    ... )
    >>> auc = table[table.metric == "auroc_td"]
    >>> print(auc[["level", "n", "events", "suppressed"]].to_string(index=False))
    level   n events  suppressed
        1 918    131       False
        2 877    127       False
       3+ 205     22       False
    """
    if min_cell is not None and (
        isinstance(min_cell, bool)
        or not isinstance(min_cell, numbers.Integral)
        or min_cell < 1
    ):
        raise ValueError(
            "The 'min_cell' parameter must be an int >= 1 (the smallest count "
            f"shown) or None (no suppression); got {_fmt_value(min_cell)}."
        )
    t, e = _check_time_event(time, event)
    plan, matrix = _make_plan(
        risks, t.shape[0], n_boot, seed, level, thresholds, train_time, train_event
    )
    parts = []
    for name, col in _group_columns(groups, t.shape[0], of="time"):
        for value, mask in _levels(col):
            table = _evaluate_arrays(t[mask], e[mask], matrix[mask], plan)
            events = [int((e[mask] & (t[mask] <= h)).sum()) for h in plan.horizons]
            table["n"] = int(mask.sum())
            table["events"] = np.repeat(events, len(plan.names))
            table.insert(0, "level", [value] * len(table))
            table.insert(0, "group", name)
            parts.append(table)
    if not parts:
        out = pd.DataFrame(columns=list(_SUBGROUP_COLUMNS))
    else:
        out = pd.concat(parts, ignore_index=True)[list(_SUBGROUP_COLUMNS)]
    out.attrs.update(level=plan.level, n_boot=plan.n_boot)
    if min_cell is None or out.empty:
        return out
    return _suppress_by_horizon(out, min_cell)


def _suppress_by_horizon(table: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """:func:`suppress_small_cells` at each horizon: a cell is one level at one
    horizon, and the levels' fractures by a horizon add up to its total."""
    renamed = table.rename(columns={"group": "subgroup", "events": "n_events"})
    parts = [
        suppress_small_cells(part.drop(columns="horizon"), min_cell=min_cell).assign(
            horizon=part["horizon"]
        )
        for _, part in renamed.groupby("horizon", sort=False)
    ]
    out = pd.concat(parts).sort_index()
    out = out.rename(columns={"subgroup": "group", "n_events": "events"})
    out = out[[*_SUBGROUP_COLUMNS, "suppressed"]]
    out.attrs.update(table.attrs)
    return out

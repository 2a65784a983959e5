"""Bootstrap ensembles attached to a fitted model, for risk intervals."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.special import expit
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from plo_risk.model.calibration import (
    PlattCalibratedClassifier,
    fit_platt,
    margin,
    take_rows,
)
from plo_risk.model.families import family_of

__all__ = ["ensemble_risks", "fit_bootstrap_ensemble"]


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
        with family_of(est).fit_context():
            est.fit(take_rows(Xt, idx), y01[idx])
        a, b = fit_platt(margin(est, take_rows(Xt, np.flatnonzero(oob))), y01[oob])
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

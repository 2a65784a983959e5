"""Unpenalised weighted logistic regression (Newton's method with step halving).

The one logistic fitter of the package: the Platt calibration of every model
(:mod:`plo_risk.model.calibration`) and the calibration metrics of
:mod:`plo_risk.evaluate` use it, so a calibration slope measured on the training
rows equals the fitted one. :func:`rcs_design` builds the restricted cubic spline
design of the smoothed calibration curves (binary and time-to-event).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from threadpoolctl import threadpool_limits

__all__ = ["logistic_irls", "one_blas_thread", "rcs_design"]


def _fit_state(
    sign: np.ndarray, eta: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, float]:
    """Probability of the observed outcome per row, and the deviance."""
    z = sign * eta
    q = expit(z)
    with np.errstate(divide="ignore"):
        log_q = np.log(q)
    # log(expit(z)) -> z far in the lower tail, where expit underflows.
    log_q = np.where(z < -700.0, z, log_q)
    return q, -2.0 * float(np.dot(w, log_q))


def one_blas_thread() -> threadpool_limits:
    """Context in which BLAS runs on one thread.

    The logistic fits multiply long, thin matrices (n x 2 to n x 4); threaded
    BLAS only adds synchronisation there, which on a busy machine made the
    bootstrap of :func:`plo_risk.evaluate.evaluate` up to 8 times slower.
    """
    return threadpool_limits(limits=1, user_api="blas")


def _solve(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(h, g)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(h, g, rcond=None)[0]


def logistic_irls(
    design: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    *,
    beta: np.ndarray,
    offset: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Unpenalised weighted logistic regression by Newton's method.

    Step halving keeps the deviance from rising. Returns the coefficients, the
    linear predictor and whether the fit converged.
    """
    off = 0.0 if offset is None else offset
    sign = 2.0 * y - 1.0
    beta = np.array(beta, dtype=np.float64)
    eta = design @ beta + off
    q, dev = _fit_state(sign, eta, w)
    for _ in range(max_iter):
        mu = np.where(y == 1, q, 1.0 - q)
        grad = design.T @ (w * (y - mu))
        hess = (design.T * (w * q * (1.0 - q))) @ design
        step = _solve(hess, grad)
        scale = 1.0
        for _ in range(40):
            new_beta = beta + scale * step
            new_eta = design @ new_beta + off
            new_q, new_dev = _fit_state(sign, new_eta, w)
            if new_dev <= dev * (1 + 1e-15) + 1e-300:
                break
            scale /= 2.0
        else:  # no step lowers the deviance: at the optimum up to rounding
            return beta, eta, True
        small_step = np.max(np.abs(scale * step)) <= 1e-10 * (
            1.0 + np.max(np.abs(new_beta))
        )
        small_change = abs(dev - new_dev) <= tol * (abs(new_dev) + 0.1)
        beta, eta, q, dev = new_beta, new_eta, new_q, new_dev
        if small_step or small_change:
            return beta, eta, True
    return beta, eta, False


def rcs_design(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Intercept, ``x`` and the restricted (natural) cubic spline terms of ``x``.

    Harrell's parametrisation (Regression Modeling Strategies, 2nd ed., section
    2.4.5): with knots ``t_1 < ... < t_k`` the ``k - 2`` terms are linear beyond
    the outer knots, each divided by ``(t_k - t_1)**2`` to keep them on the scale
    of ``x``. Fewer than 3 knots give the linear design ``[1, x]``.

    Parameters
    ----------
    x : numpy.ndarray of shape (n,)
        The covariate (for a calibration curve, the logit of the predicted risk).
    knots : numpy.ndarray of shape (k,)
        Increasing knot positions.

    Returns
    -------
    numpy.ndarray of shape (n, k) (or (n, 2) when k < 3)
        Columns: 1, x, then the spline terms.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.model.glm import rcs_design
    >>> rcs_design(np.array([-1.0, 0.0, 2.0]), np.array([-1.0, 0.0, 1.0])).tolist()
    [[1.0, -1.0, 0.0], [1.0, 0.0, 0.25], [1.0, 2.0, 3.0]]
    """
    cols = [np.ones_like(x), x]
    k = knots.shape[0]
    if k >= 3:
        t_last, t_prev = knots[-1], knots[-2]
        norm = (t_last - knots[0]) ** 2
        tail_last = np.maximum(x - t_last, 0.0) ** 3
        tail_prev = np.maximum(x - t_prev, 0.0) ** 3
        for t in knots[: k - 2]:
            term = (
                np.maximum(x - t, 0.0) ** 3
                - tail_prev * (t_last - t) / (t_last - t_prev)
                + tail_last * (t_prev - t) / (t_last - t_prev)
            )
            cols.append(term / norm)
    return np.column_stack(cols)

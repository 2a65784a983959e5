"""Unpenalised weighted logistic regression (Newton's method with step halving).

The one logistic fitter of the package: the Platt calibration of every model
(:mod:`plo_risk.model.calibration`) and the calibration metrics of
:mod:`plo_risk.evaluate` use it, so a calibration slope measured on the training
rows equals the fitted one.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from threadpoolctl import threadpool_limits

__all__ = ["logistic_irls", "one_blas_thread"]


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

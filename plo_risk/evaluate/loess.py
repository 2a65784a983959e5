"""R's ``loess(y ~ x)`` with its defaults, for one predictor, in numpy.

The integrated calibration index of Austin & Steyerberg (Stat Med
2019;38:4051-4065, doi:10.1002/sim.8281) smooths the outcome on the predicted risk
with R's ``loess`` at its defaults: ``span = 0.75``, ``degree = 2``,
``family = "gaussian"``, ``surface = "interpolate"``, ``statistics =
"approximate"``, ``cell = 0.2`` (``normalize`` does nothing with one predictor).
This module is a port of what R computes then (Cleveland WS, Grosse E, Shyu WM.
Local regression models. In: Chambers JM, Hastie TJ, eds. Statistical Models in
S. Wadsworth; 1992, chapter 8; R's ``loessf.f``/``loessc.c``):

1. a k-d tree on x: a cell with more than ``floor(n * span * cell)`` points is
   split at its median order statistic (moved so that no run of ties is split);
   the bounding box is widened by 0.5%;
2. at each vertex, a local quadratic fit by weighted least squares over the
   ``floor(n * span)`` nearest points with tricube weights, solved like R's
   ``ehg127`` (columns equilibrated, SVD pseudo-inverse); its value and slope;
3. between vertices, cubic Hermite interpolation of those values and slopes.

It agrees with R 4.2.2 to about 1e-15 (``tests/test_evaluation.py`` compares it with
values computed by R and committed there). A fit at every point (``surface =
"direct"``) is *not* what R does by default and differs from it by up to 3.5e-3
in the ICI at n = 500.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CELL", "SPAN", "loess_fit"]

#: R's defaults.
SPAN = 0.75
CELL = 0.2
_EPS100 = 100.0 * np.finfo(np.float64).eps  # ehg127: tol = sigma_1 * 100 * d1mach(4)


def _windows(
    xs: np.ndarray, t: np.ndarray, span: float
) -> tuple[int, np.ndarray, np.ndarray]:
    """For each t: the start of its q nearest sorted points, and their radius h.

    q = floor(n * span + 1e-5) (R's loess_workspace); the q nearest points of t are
    contiguous in sorted order; h is the distance of the q-th nearest (times
    sqrt(span) when span > 1: R scales the squared distance by max(1, span)).
    """
    n = xs.size
    q = min(n, int(math.floor(n * span + 1e-5)))
    ends = xs[: n - q + 1] + xs[q - 1 :]  # non-decreasing in the start
    start = np.clip(np.searchsorted(ends, 2.0 * t, side="left"), 0, n - q)
    before = np.clip(start - 1, 0, n - q)
    reach = np.maximum(t - xs[start], xs[start + q - 1] - t)
    reach_before = np.maximum(t - xs[before], xs[before + q - 1] - t)
    use = reach_before < reach
    start = np.where(use, before, start)
    h = np.where(use, reach_before, reach)
    if span > 1.0:
        h = h * math.sqrt(span)
    if np.any(h <= 0):
        # R stops here too ("zero-width neighborhood. make span bigger").
        raise ValueError(
            "loess: more than a share `span` of the points sit at one value; "
            "no local fit exists there"
        )
    return q, start, h


def _local_fit(
    xw: np.ndarray, yw: np.ndarray, t: float, h: float
) -> tuple[float, float]:
    """The degree-2 local fit at t: value and slope.

    Weighted least squares on 1, d, d^2 (d = x - t) with tricube weights. A
    well-conditioned window is solved by its 3x3 normal equations in the scaled
    distance d / h (the same fit to ~1e-12); otherwise as R's ``ehg127`` does:
    rows sqrt(w) * [1, d, d^2], columns equilibrated to unit 2-norm, SVD, singular
    values at or below 100 eps sigma_1 dropped (R's pseudo-inverse).
    """
    u = (xw - t) / h
    au = np.abs(u)
    w = np.where(au < 1.0, (1.0 - au**3) ** 3, 0.0)
    wu = w * u
    wu2 = wu * u
    s0, s1, s2 = float(w.sum()), float(wu.sum()), float(wu2.sum())
    s3, s4 = float(wu2 @ u), float((wu2 * u) @ u)
    # The 3x3 normal equations by their cofactors, when the window is well
    # conditioned: determinant relative to the diagonal's product above 1e-6.
    c00 = s2 * s4 - s3 * s3
    c01 = s2 * s3 - s1 * s4
    c02 = s1 * s3 - s2 * s2
    det = s0 * c00 + s1 * c01 + s2 * c02
    if s0 > 0 and s2 > 0 and s4 > 0 and det > 1e-6 * s0 * s2 * s4:
        b0, b1, b2 = float(w @ yw), float(wu @ yw), float(wu2 @ yw)
        c11 = s0 * s4 - s2 * s2
        c12 = s1 * s2 - s0 * s3
        value = (c00 * b0 + c01 * b1 + c02 * b2) / det
        slope = (c01 * b0 + c11 * b1 + c12 * b2) / det
        return value, slope / h
    d = xw - t
    root = np.sqrt(w)
    design = np.column_stack([root, root * d, root * d * d])
    target = root * yw
    norms = np.sqrt((design * design).sum(0))
    norms[norms <= 0] = 1.0
    left, sig, vt = np.linalg.svd(design / norms, full_matrices=False)
    keep = sig > sig[0] * _EPS100
    gamma = np.where(keep, (left.T @ target) / np.where(keep, sig, 1.0), 0.0)
    coef = (vt.T @ gamma) / norms
    return float(coef[0]), float(coef[1])


def _vertices(xs: np.ndarray, span: float, cell: float) -> np.ndarray:
    """The vertices of R's k-d tree (``ehg126`` and ``ehg124``) for one predictor.

    A cell with more than ``floor(n * span * cell)`` points is split at its median
    order statistic ``m``; when ``x(m) == x(m + 1)`` (a run of ties), R tries the
    orders m+1, m-1, m+2, m-2, ... and cuts at the first that ends a run, giving up
    (keeping m) when the search leaves the cell. Found here with the sorted
    positions of the run ends instead of walking through the ties.
    """
    n = xs.size
    lo, hi = xs[0], xs[-1]
    margin = 0.005 * max(hi - lo, 1e-10 * max(abs(lo), abs(hi)) + 1e-30)
    vertices = [lo - margin, hi + margin]
    fc = int(math.floor(n * (span * cell)))
    # 1-based orders k with x(k) != x(k+1): where a cut may fall.
    ends = np.flatnonzero(xs[:-1] != xs[1:]) + 1
    queue = [(1, n, vertices[0], vertices[1])]  # 1-based inclusive ranks l..u
    i = 0
    while i < len(queue):  # first in, first out: Fortran's order
        first, last, v_lo, v_hi = queue[i]
        i += 1
        if (last - first) + 1 <= fc or not (v_hi - v_lo > 0.0):
            continue
        m = _cut(ends, first, last, (first + last) // 2)
        cut = xs[m - 1]
        if v_lo == cut or v_hi == cut:
            continue
        vertices.append(cut)
        queue.append((first, m, v_lo, cut))
        queue.append((m + 1, last, cut, v_hi))
    return np.unique(np.asarray(vertices))


def _cut(ends: np.ndarray, first: int, last: int, m: int) -> int:
    """R's cut order near m: the run end met first in the order m, m+1, m-1, ..."""
    j = int(np.searchsorted(ends, m, side="left"))
    if j < ends.size and ends[j] == m:
        return m
    # The search stops at the first order outside [first, last): +k is outside for
    # k >= last - m (scan step 2k - 1), -k for k > m - first (scan step 2k).
    stop = min(2 * (last - m) - 1, 2 * (m - first + 1))
    best, best_step = m, stop
    if j < ends.size:
        step = 2 * (int(ends[j]) - m) - 1
        if step < best_step:
            best, best_step = int(ends[j]), step
    if j > 0:
        step = 2 * (m - int(ends[j - 1]))
        if step < best_step:
            best, best_step = int(ends[j - 1]), step
    return best


def loess_fit(x: np.ndarray, y: np.ndarray, *, span: float = SPAN) -> np.ndarray:
    """Fitted values of R's ``loess(y ~ x)`` at every x (R's other defaults).

    Parameters
    ----------
    x, y : numpy.ndarray of shape (n,)
        Finite numbers; n >= 2.
    span : float, default=0.75
        Share of the points in each local fit.

    Returns
    -------
    numpy.ndarray of shape (n,)

    Raises
    ------
    ValueError
        Where more than a share ``span`` of the points share one x (R stops too).

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.evaluate.loess import loess_fit
    >>> x = np.linspace(0, 1, 50)
    >>> bool(np.allclose(loess_fit(x, 2 * x + 1), 2 * x + 1))  # a line is kept
    True
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size > 1 and np.all(x[1:] >= x[:-1]):  # already sorted (as the ICI's rows)
        xs, ys = x, y
    else:
        order = np.argsort(x, kind="stable")
        xs, ys = x[order], y[order]
    v = _vertices(xs, span, CELL)
    q, start, h = _windows(xs, v, span)
    value = np.empty(v.size)
    slope = np.empty(v.size)
    for k in range(v.size):
        window = slice(start[k], start[k] + q)
        value[k], slope[k] = _local_fit(xs[window], ys[window], v[k], h[k])
    # ehg128: locate each x's cell (x <= vertex goes low), cubic Hermite.
    j = np.clip(np.searchsorted(v, x, side="left") - 1, 0, v.size - 2)
    v0, v1 = v[j], v[j + 1]
    width = v1 - v0
    s = (x - v0) / width
    phi0 = (1 - s) ** 2 * (1 + 2 * s)
    phi1 = s**2 * (3 - 2 * s)
    psi0 = s * (1 - s) ** 2
    psi1 = s**2 * (s - 1)
    return (
        phi0 * value[j]
        + phi1 * value[j + 1]
        + (psi0 * slope[j] + psi1 * slope[j + 1]) * width
    )

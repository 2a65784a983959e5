"""Monitoring what is scored: compare a cohort with the model's training reference.

First step: the population stability index on reference quantile bins. The reference
in the bundle, the checks per field and the ``plo-risk monitor`` command are to come.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PSI_ALERT", "bin_shares", "psi", "quantile_edges"]

#: PSI above this is a major shift, the rule of thumb of credit scoring (below 0.10
#: little, 0.10-0.25 moderate, above 0.25 significant change), as stated and studied
#: by Yurdakul B, Statistical Properties of Population Stability Index, PhD thesis,
#: Western Michigan University 2018 (scholarworks.wmich.edu/dissertations/3208), and
#: Yurdakul B, Naranjo J, J Risk Model Valid (RePEc:rsk:journ5:7725371).
PSI_ALERT = 0.25
# Floor on a bin's share so an empty bin gives a finite PSI.
_EPS = 1e-4


def quantile_edges(values: np.ndarray, *, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates dropped).

    Examples
    --------
    >>> quantile_edges(np.arange(100.0), n_bins=4).tolist()
    [24.75, 49.5, 74.25]
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.empty(0)
    qs = np.linspace(0, 1, n_bins + 1)[1:-1]
    return np.unique(np.quantile(x, qs))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of the finite values in each bin defined by the inner ``edges``."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    counts = np.bincount(
        np.searchsorted(edges, x, side="right"), minlength=edges.size + 1
    )
    total = counts.sum()
    return counts / total if total else np.zeros(edges.size + 1)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins.

    Examples
    --------
    >>> psi(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    0.0
    """
    p = np.clip(np.asarray(reference, dtype=float), _EPS, None)
    q = np.clip(np.asarray(current, dtype=float), _EPS, None)
    p, q = p / p.sum(), q / q.sum()
    return float(max(np.sum((q - p) * np.log(q / p)), 0.0))

"""Confidence intervals shared by the layers (the data's literature check and the
evaluation's metrics)."""

from __future__ import annotations

import numpy as np

__all__ = ["Z95", "wilson"]

#: The two-sided 95% normal quantile, ``scipy.stats.norm.ppf(0.975)``.
Z95 = 1.959963984540054


def wilson(p, n, z: float = Z95):
    """The Wilson score interval of a proportion ``p`` of ``n`` (Wilson, J Am Stat
    Assoc 1927;22:209-212, doi:10.1080/01621459.1927.10502953), unclipped.

    Scalars or arrays (broadcast). Returns ``(low, high)``.

    Examples
    --------
    >>> [round(float(b), 4) for b in wilson(0.5, 100)]
    [0.4038, 0.5962]
    """
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half

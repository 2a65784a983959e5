"""Aggregates of the training data stored with a model: no row leaves the data.

:func:`reference_values` gives, per catalog field, the 10th, 50th and 90th
percentiles (numbers), the observed values (yes/no) or the most common categories.
The assessment probes a missing input with them (what to measure next) and the
model card shows them beside the evaluation data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plo_risk.data.catalog import Catalog, load_catalog

__all__ = ["PROBE_QUANTILES", "reference_values"]

#: Reference quantiles of the training data tried for a missing input: the 10th,
#: 50th and 90th percentile span the plausible range without outliers.
PROBE_QUANTILES = (0.1, 0.5, 0.9)


def reference_values(X: pd.DataFrame, catalog: Catalog | None = None) -> dict:
    """Quantiles (numbers) or categories of each field in training data.

    Aggregates only, for the bundle: used to probe how much a missing input could
    move a patient's risk.
    """
    catalog = catalog or load_catalog()
    out: dict[str, list] = {}
    for f in catalog:
        if f.name not in X.columns or f.derived_from:
            continue
        s = X[f.name]
        if f.dtype == "category":
            counts = s.value_counts()
            if len(counts):
                out[f.name] = [str(c) for c in counts.index[:3]]
        elif f.dtype == "bool":
            if s.notna().any():
                out[f.name] = [0.0, 1.0]
        else:
            v = pd.to_numeric(s, errors="coerce").dropna()
            if len(v) >= 10:
                qs = np.quantile(v, PROBE_QUANTILES)
                out[f.name] = [float(round(q, 6)) for q in qs]
    return out

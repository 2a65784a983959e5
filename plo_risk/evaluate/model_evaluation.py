"""One evaluation of one model on data with observed outcomes, computed once.

:func:`evaluate_model` computes every number a report of the model needs
(performance with confidence intervals before and after intercept recalibration,
subgroups, the generator's oracle when the data carry it, global importance, the
characteristics of the data and the cells validation rejected) and returns them as
one :class:`ModelEvaluation`. The model card (:mod:`plo_risk.report`) only renders
it: no section recomputes a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from plo_risk.data.catalog import Catalog
from plo_risk.evaluate.external import (
    EvalData,
    ExternalValidation,
    external,
    oe_ratio,
)
from plo_risk.evaluate.metrics import (
    age_band,
    auroc,
    brier,
    evaluate_subgroups,
    parity_band,
)
from plo_risk.explain import Explanation, contributions
from plo_risk.serve.risk_model import RiskModel

__all__ = ["IMPORTANCE_ROWS", "TYPICAL_FIELDS", "ModelEvaluation", "evaluate_model"]

#: Rows of the evaluation data sampled for the global importance (SHAP).
IMPORTANCE_ROWS = 1000
#: The fields of the "typical" example patient, built from aggregates.
TYPICAL_FIELDS = (
    "age_years",
    "parity",
    "months_postpartum",
    "lactation_months",
    "breastfeeding_now",
    "lactation_exclusive",
    "bmi",
    "calcium_intake_mg_day",
    "vitamin_d_25oh",
    "smoking",
    "family_history_osteoporosis",
)
_SUBGROUP_METRICS = ("auroc", "calibration_intercept", "brier")


@dataclass(frozen=True, eq=False)
class ModelEvaluation:
    """Everything measured about one model on one evaluation data set.

    Attributes
    ----------
    model : RiskModel
    data : EvalData
        The validated evaluation rows, outcome and rejects.
    external : ExternalValidation
        Performance with CIs as trained and after intercept recalibration, and the
        risks (``external.p``).
    n_boot, ci, seed : int, float, int
        The bootstrap of the confidence intervals.
    oracle : dict or None
        AUROC and Brier score of the generator's own risk on the same rows (the
        ceiling for these data), when the data carry ``true_risk``.
    subgroups : pandas.DataFrame
        Per subgroup (age band, ancestry, parity) and level: ``n``, ``n_events``,
        then ``<metric>``, ``<metric>_lower``, ``<metric>_upper`` for AUROC,
        calibration intercept, Brier and O/E.
    characteristics : pandas.DataFrame
        Per catalog field (derived scores left out): ``missing`` (share), and in
        ``values`` the 10th/50th/90th percentiles (numbers), the share yes
        (booleans) or the shares of the most common categories.
    rejected_cells : pandas.DataFrame
        ``field``, ``reason``, ``cells``: the most common reasons validation
        rejected a cell, most common first.
    sample : pandas.DataFrame
        The rows the importance was computed on (at most :data:`IMPORTANCE_ROWS`).
    explanation : Explanation
        Their field contributions in calibrated log-odds.
    importance : pandas.Series
        Mean |contribution| per field, largest first.
    typical_patient : dict
        Median (numbers), majority (yes/no) or most common value of each of
        :data:`TYPICAL_FIELDS`: aggregates, not a row of the data.
    """

    model: RiskModel
    data: EvalData
    external: ExternalValidation
    n_boot: int
    ci: float
    seed: int
    oracle: dict[str, float] | None
    subgroups: pd.DataFrame = field(repr=False)
    characteristics: pd.DataFrame = field(repr=False)
    rejected_cells: pd.DataFrame = field(repr=False)
    sample: pd.DataFrame = field(repr=False)
    explanation: Explanation = field(repr=False)
    importance: pd.Series = field(repr=False)
    typical_patient: dict[str, Any] = field(repr=False)

    @property
    def metrics(self) -> pd.DataFrame:
        """The performance table of the model as trained."""
        return self.external.metrics

    @property
    def p(self) -> np.ndarray:
        """The model's risk of every evaluated row."""
        return self.external.p


def evaluate_model(
    model: RiskModel,
    data: EvalData,
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> ModelEvaluation:
    """Evaluate a model once, for a report.

    Parameters
    ----------
    model : RiskModel
    data : EvalData
        From :func:`plo_risk.evaluate.load_eval_data`.
    n_boot : int, default=200
        Bootstrap replicates of the confidence intervals (at most 100 within
        subgroups).
    ci : float, default=0.95
        Confidence level.
    seed : int, default=0
        Seed of the bootstrap and of the rows sampled for the importance.

    Returns
    -------
    ModelEvaluation
    """
    ext = external(model, data, n_boot=n_boot, ci=ci, seed=seed)
    oracle = None
    if data.true_risk is not None:
        oracle = {
            "auroc": auroc(data.y, data.true_risk),
            "brier": brier(data.y, data.true_risk),
        }
    X = data.X
    sample = X.sample(min(len(X), IMPORTANCE_ROWS), random_state=seed) if len(X) else X
    explanation = contributions(model.model, sample, by="field")
    importance = (
        explanation.values.abs()
        .mean(axis=0)
        .sort_values(ascending=False, kind="stable")
    )
    return ModelEvaluation(
        model=model,
        data=data,
        external=ext,
        n_boot=n_boot,
        ci=ci,
        seed=seed,
        oracle=oracle,
        subgroups=_subgroups(data.y, ext.p, X, min(n_boot, 100), ci, seed),
        characteristics=_characteristics(X, model.catalog),
        rejected_cells=_rejected_cells(data.rejects),
        sample=sample,
        explanation=explanation,
        importance=importance,
        typical_patient=_typical_patient(X, model.catalog),
    )


def _subgroups(
    y: np.ndarray, p: np.ndarray, X: pd.DataFrame, n_boot: int, ci: float, seed: int
) -> pd.DataFrame:
    groups = {
        "age band": age_band(X["age_years"].to_numpy()),
        "ancestry": X["ancestry"] if "ancestry" in X else None,
        "parity": parity_band(X["parity"].to_numpy()),
    }
    groups = {k: v for k, v in groups.items() if v is not None}
    long = evaluate_subgroups(y, p, groups, n_boot=n_boot, ci=ci, seed=seed)
    rows = []
    for (sub, level), part in long.groupby(["subgroup", "level"], sort=False):
        by = part.set_index("metric")
        n, events = int(by["n"].iloc[0]), int(by["n_events"].iloc[0])
        if n == 0:
            continue
        mask = (
            np.asarray(groups[sub] == level)
            if level != "missing"
            else np.asarray(pd.isna(groups[sub]))
        )
        row: dict[str, Any] = {
            "subgroup": sub,
            "level": level,
            "n": n,
            "n_events": events,
        }
        for metric in _SUBGROUP_METRICS:
            for col, key in (
                ("estimate", ""),
                ("lower", "_lower"),
                ("upper", "_upper"),
            ):
                row[f"{metric}{key}"] = by.loc[metric, col]
        ratio, lo, hi = oe_ratio(y[mask], p[mask], ci)
        row.update({"oe_ratio": ratio, "oe_ratio_lower": lo, "oe_ratio_upper": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def _characteristics(X: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    rows = []
    for f in catalog:
        if f.name not in X.columns or f.derived_from:
            continue
        s = X[f.name]
        if f.dtype == "category":
            values: Any = s.value_counts(normalize=True).head(4)
        elif f.dtype == "bool":
            v = s.dropna()
            values = float(v.mean()) if len(v) else None
        else:
            v = pd.to_numeric(s, errors="coerce").dropna()
            values = np.quantile(v, [0.1, 0.5, 0.9]).tolist() if len(v) else None
        rows.append(
            {"field": f.name, "missing": float(s.isna().mean()), "values": values}
        )
    return pd.DataFrame(rows, columns=["field", "missing", "values"])


def _rejected_cells(rejects: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    if not len(rejects):
        return pd.DataFrame({"field": [], "reason": [], "cells": []})
    counts = (
        rejects.groupby(["field", "reason"])
        .size()
        .sort_values(ascending=False)
        .head(top)
    )
    return pd.DataFrame(
        {
            "field": [str(k[0]) for k in counts.index],
            "reason": [str(k[1]) for k in counts.index],
            "cells": counts.to_numpy(),
        }
    )


def _typical_patient(X: pd.DataFrame, catalog: Catalog) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for name in TYPICAL_FIELDS:
        if name not in X.columns or name not in catalog:
            continue
        s = X[name].dropna()
        if not len(s):
            continue
        f = catalog[name]
        if f.dtype == "bool":
            rec[name] = bool(s.mean() >= 0.5)
        elif f.dtype == "int":
            rec[name] = int(round(float(s.median())))
        elif f.dtype == "category":
            rec[name] = str(s.mode().iloc[0])
        else:
            rec[name] = round(float(s.median()), 1)
    return rec

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
from plo_risk.evaluate.survival import evaluate_horizons
from plo_risk.explain import Explanation, contributions, horizon_contributions
from plo_risk.model.horizon import END, horizon_label
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
    #: The horizon model on these data (:func:`plo_risk.evaluate.evaluate_horizons`:
    #: time-dependent AUROC, IPCW Brier, observed by Kaplan-Meier vs expected,
    #: calibration slope and ICI, net benefit, with bootstrap CIs), or None.
    horizons: pd.DataFrame | None = field(default=None, repr=False)
    #: Per horizon, the share of the oracle's true risks inside their 90% interval
    #: overall and per tertile of true risk, and the median width (synthetic data
    #: with the horizon oracle only), or None.
    interval_coverage: pd.DataFrame | None = field(default=None, repr=False)

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
    hm = model.horizon_model
    if hm is not None:
        # The risk evaluated is the horizon model's: explain that one.
        explanation = horizon_contributions(hm, sample, model.default_horizon)
    else:
        explanation = contributions(model.model, sample, by="field")
    horizons, coverage = _horizon_tables(model, data, n_boot, ci, seed)
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
        horizons=horizons,
        interval_coverage=coverage,
    )


def _horizon_tables(
    model: RiskModel, data: EvalData, n_boot: int, ci: float, seed: int
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    hm = model.horizon_model
    if hm is None or not len(data.X):
        return None, None
    fixed = [h for h in hm.horizons if h != END]
    risks = model.horizon_risks(data.X, hm.horizons, intervals=True)
    table = None
    if data.time is not None and fixed:
        table = evaluate_horizons(
            data.time,
            data.event,
            {h: risks[f"risk_{horizon_label(h)}"].to_numpy() for h in fixed},
            n_boot=n_boot,
            seed=seed,
            level=ci,
            thresholds=tuple(sorted(model.thresholds.values())) or (0.02, 0.10),
        )
    coverage = None
    if data.true_risks is not None and f"risk_{horizon_label(fixed[0])}_low" in risks:
        rows = []
        for h in hm.horizons:
            label = horizon_label(h)
            if label not in data.true_risks:
                continue
            truth = data.true_risks[label]
            lo = risks[f"risk_{label}_low"].to_numpy()
            hi = risks[f"risk_{label}_high"].to_numpy()
            inside = (truth >= lo) & (truth <= hi)
            tertile = pd.qcut(truth, 3, labels=False, duplicates="drop")
            row = {
                "horizon": label,
                "coverage": float(inside.mean()),
                "median_width": float(np.median(hi - lo)),
            }
            for i in range(3):
                row[f"tertile_{i + 1}"] = float(inside[tertile == i].mean())
            rows.append(row)
        coverage = pd.DataFrame(rows)
    return table, coverage


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

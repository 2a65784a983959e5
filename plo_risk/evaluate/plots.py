"""Plots of a model's performance: calibration, ROC, decision curve, importance.

Every function returns a bare :class:`matplotlib.figure.Figure`, made without
pyplot, so no global backend or state is touched (a notebook's backend stays as
it is); save it with ``fig.savefig(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from plo_risk.evaluate.metrics import (
    calibration_curve,
    decision_curve,
    loess_calibration_curve,
)
from plo_risk.evaluate.screening import screening_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "calibration_figure",
    "decision_figure",
    "decision_range",
    "figure",
    "importance_figure",
    "roc_figure",
    "screening_figure",
    "smoothed_calibration",
]


def figure(width: float = 5.5, height: float = 4.5) -> Figure:
    # A bare Figure (no pyplot): no global backend or state is touched.
    from matplotlib.figure import Figure  # optional heavy import: plots only

    return Figure(figsize=(width, height))


def smoothed_calibration(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ICI's smoothed calibration curve (loess with R's defaults), thinned."""
    p_sorted, curve = loess_calibration_curve(y, p)
    idx = np.unique(np.linspace(0, len(p_sorted) - 1, 200).astype(int))
    return p_sorted[idx], curve[idx]


def calibration_figure(
    y: np.ndarray, curves: Mapping[str, np.ndarray], *, title: str
) -> Figure:
    fig = figure()
    ax = fig.add_subplot()
    top = 0.0
    for k, (name, p) in enumerate(curves.items()):
        colour = f"C{k}"
        cal = calibration_curve(y, p, n_bins=10)
        # Clipped: rounding can put a Wilson bound a hair past the rate.
        err = np.clip(
            np.vstack(
                [
                    cal["observed_rate"] - cal["observed_lower"],
                    cal["observed_upper"] - cal["observed_rate"],
                ]
            ),
            0.0,
            None,
        )
        ax.errorbar(
            cal["mean_predicted"],
            cal["observed_rate"],
            yerr=err,
            fmt="o",
            color=colour,
            ms=4,
            capsize=2,
            label=f"{name}: deciles (95% CI)",
        )
        xs, ys = smoothed_calibration(y, p)
        ax.plot(xs, ys, color=colour, lw=1.5, label=f"{name}: smoothed")
        # The axes span the deciles and 99% of the risks, not the far tail.
        top = max(
            top,
            float(cal["mean_predicted"].max()),
            float(cal["observed_rate"].max()),
            float(np.quantile(p, 0.99)),
        )
    top = top * 1.05 or 1.0
    ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="ideal")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted risk")
    ax.set_ylabel("observed fracture rate")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def roc_figure(y: np.ndarray, p: np.ndarray, auroc: float, name: str) -> Figure:
    fpr, tpr, _ = roc_curve(y, p)
    fig = figure(4.8, 4.5)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC curve")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def decision_range(prevalence: float, thresholds: Mapping[str, float]) -> np.ndarray:
    hi = min(max(max(thresholds.values(), default=0.1) * 2, 4 * prevalence), 0.5)
    lo = min(max(prevalence / 4, 1e-4), hi / 10)
    return np.linspace(lo, hi, 80)


def decision_figure(
    y: np.ndarray, p: np.ndarray, thresholds: Mapping[str, float], name: str
) -> Figure:
    grid = decision_range(float(y.mean()), thresholds)
    dc = decision_curve(y, p, grid)
    fig = figure(6, 4.2)
    ax = fig.add_subplot()
    ax.plot(dc["threshold"], dc["net_benefit_model"], lw=1.5, label=name)
    ax.plot(dc["threshold"], dc["net_benefit_all"], ls="--", lw=1, label="treat all")
    ax.axhline(0, color="grey", lw=1, label="treat none")
    for k, (cat, t) in enumerate(sorted(thresholds.items(), key=lambda kv: kv[1])):
        if grid[0] <= t <= grid[-1]:
            ax.axvline(t, color=f"C{k + 3}", ls=":", lw=1, label=f"threshold {cat}")
    best = float(dc["net_benefit_model"].max())
    ax.set_ylim(min(-0.1 * max(best, 1e-6), -1e-6), max(best, float(y.mean())) * 1.1)
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit (true positives per patient)")
    ax.set_title("Decision curve")
    ax.legend(fontsize=8)
    return fig


def screening_figure(y: np.ndarray, p: np.ndarray, name: str) -> Figure:
    """Cumulative gains: share of fractures found vs share sent for DXA."""
    curve = screening_curve(y, p)
    fig = figure(6, 4.2)
    ax = fig.add_subplot()
    ax.plot(curve["share_flagged"], curve["share_found"], lw=1.5, label=name)
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="random")
    for k, pct in enumerate((1, 5, 10)):
        ax.axvline(pct / 100, color=f"C{k + 3}", ls=":", lw=1, label=f"top {pct}%")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("share of the cohort screened (highest risk first)")
    ax.set_ylabel("share of fractures found")
    ax.set_title("Screening curve (cumulative gains)")
    ax.legend(fontsize=8)
    return fig


def importance_figure(importance: pd.Series, labels: Mapping[str, str]) -> Figure:
    top = importance.head(15)[::-1]
    fig = figure(6, 4.8)
    ax = fig.add_subplot()
    ax.barh([labels.get(f, f) for f in top.index], top.to_numpy(), color="C0")
    ax.set_xlabel("mean |contribution| to the log-odds of fracture")
    ax.set_title("Global importance (SHAP)")
    ax.tick_params(axis="y", labelsize=8)
    return fig

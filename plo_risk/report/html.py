"""HTML building blocks of the reports: escaping, numbers, tables, figures.

Every value that comes from data or a bundle is escaped (:func:`e`); figures are
embedded as base64 PNGs, so a report is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CSS",
    "METRIC_LABELS",
    "ci",
    "e",
    "fmt",
    "img",
    "metric_label",
    "metrics_table",
    "png",
    "table",
]

e = html.escape

#: Plain-language label and meaning of every metric a report shows.
METRIC_LABELS = {
    "auroc": (
        "AUROC (c-statistic)",
        "discrimination: chance that a random case "
        "has a higher risk than a random non-case; 0.5 is chance",
    ),
    "auprc": ("AUPRC", "average precision; its chance level is the prevalence"),
    "brier": ("Brier score", "mean squared error of the risk; lower is better"),
    "calibration_slope": (
        "Calibration slope",
        "1 is ideal; below 1 the risks are too extreme (overfitting)",
    ),
    "calibration_intercept": (
        "Calibration intercept (calibration-in-the-large)",
        "0 is ideal; below 0 the model over-predicts",
    ),
    "oe_ratio": (
        "Observed/expected ratio",
        "observed events / sum of predicted risks; 1 is ideal",
    ),
    "ici": (
        "ICI",
        "integrated calibration index: mean |predicted - observed smoothed by "
        "loess (R defaults)| (Austin & Steyerberg, Stat Med 2019;38:4051)",
    ),
    "sensitivity": ("Sensitivity", "share of cases at or above the threshold"),
    "specificity": ("Specificity", "share of non-cases below the threshold"),
    "ppv": ("PPV", "share of cases among those at or above the threshold"),
    "npv": ("NPV", "share of non-cases among those below the threshold"),
    "net_benefit": (
        "Net benefit",
        "true positives minus weighted false "
        "positives per patient (Vickers & Elkin, Med Decis Making "
        "2006;26:565)",
    ),
}
# Published case used as example patient 1, [@mishra2024, Table 3 row 9; @cerit2020]: 35 years,
# third pregnancy, 2 months postpartum, lumbar spine 0.687 g/cm2, total femur
# 0.815 g/cm2; breastfeeding for the 2 months is assumed.


def png(fig: Figure, *, close: bool = False) -> str:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        if close:  # a pyplot figure (plo_risk.explain's plots) stays open otherwise
            import matplotlib.pyplot as plt  # optional heavy import: plots only

            plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
max-width:1080px;margin:0 auto;padding:1.5rem 2rem 4rem;color:#1d2327;line-height:1.45}
h1{font-size:1.55rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem;
border-bottom:2px solid #d0d7de;padding-bottom:.2rem}h3{font-size:1.02rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.86rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}nav ol{columns:3;font-size:.9rem}.meta{color:#57606a;font-size:.9rem}
.warn{background:#fff8e1;border-left:4px solid #f0b429;padding:.5rem .8rem}
figure{margin:.8rem 0;display:inline-block;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.82rem;color:#57606a;max-width:520px}
code{background:#f3f5f7;padding:0 .2rem;border-radius:3px;font-size:.85em}
details pre{white-space:pre-wrap;font-size:.8rem;background:#f6f8fa;padding:.8rem}
.na{color:#8c6d1f}
"""


def fmt(x: Any) -> str:
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return e(str(x))
    if not math.isfinite(v):
        return "–"
    if abs(v) < 1e-9:  # rounding noise of an exact 0 (a refitted intercept)
        v = 0.0
    if v == 0 or abs(v) >= 0.1:
        return f"{v:.3f}"
    return f"{v:#.2g}"


def ci(row: Mapping[str, Any]) -> str:
    est, lo, hi = row.get("estimate"), row.get("lower"), row.get("upper")
    if (
        lo is None
        or hi is None
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi))
    ):
        return fmt(est)
    return f"{fmt(est)} ({fmt(lo)} to {fmt(hi)})"


def table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()):
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for j, cell in enumerate(row):
            cls = ' class="num"' if j in numeric else ""
            cells.append(f"<td{cls}>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def img(b64: str, alt: str, caption: str, plot_id: str) -> str:
    return (
        f'<figure id="plot-{plot_id}"><img alt="{e(alt)}" '
        f'src="data:image/png;base64,{b64}"><figcaption>{caption}</figcaption>'
        "</figure>"
    )


def metric_label(name: str) -> tuple[str, str]:
    base, _, at = name.partition("@")
    label, why = METRIC_LABELS.get(base, (base, ""))
    if at:
        label = f"{label} at the '{at}' threshold"
    return label, why


def metrics_table(metrics: pd.DataFrame, names: list[str] | None = None) -> str:
    rows = []
    for name in names or list(metrics.index):
        if name not in metrics.index:
            continue
        label, why = metric_label(str(name))
        row = metrics.loc[name]
        rows.append([e(label), ci(row.to_dict()), e(why)])
    level = metrics.attrs.get("ci", 0.95)
    return table(
        ["measure", f"estimate ({level:.0%} CI)", "what it measures"], rows, {1}
    )

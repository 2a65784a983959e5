"""The model card (TRIPOD+AI) of a fitted model: one self-contained HTML file.

:func:`model_card` evaluates a model on data with observed outcomes
(:func:`plo_risk.evaluate.evaluate_model`, every number computed once) and writes
one self-contained HTML file (:func:`render_card`): every plot is an embedded PNG,
the style sheet is inline, and nothing is fetched from the network (no scripts,
fonts or remote images). It holds the intended use, the data and their
datasheet, the predictors from the feature catalog with their sources, the
outcome, the handling of missing data, the model and its hyperparameters,
performance with bootstrap confidence intervals, calibration, ROC and decision
curves, SHAP explanations, a subgroup table, notes on recalibration, the
limitations and the TRIPOD+AI checklist (:mod:`plo_risk.report.tripod`), each
item linked to the section of the card that answers it or with the reason it does
not apply.

When the model came from MLflow (``models:/...`` or ``runs:/...``) the card is also
logged as an artifact (``model_card.html``) of the run that logged the model.

Example patients in the card are not rows of the evaluation data (which could be
patient data): one is a published case (Mishra et al. 2024, Table 3 row 9), the
other a "typical" woman built from medians and most common values of the
evaluation data.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from plo_risk.data.references import cite_keys, format_citation, load_references
from plo_risk.data.schema import ValidationError
from plo_risk.data.synthetic import expected_prevalence, shipped_reference_check
from plo_risk.evaluate.external import (
    TRANSPORT_METRICS,
    ExternalValidation,
    as_risk_model,
    load_eval_data,
)
from plo_risk.evaluate.metrics import MIN_CELL, suppress_small_cells
from plo_risk.evaluate.model_evaluation import ModelEvaluation, evaluate_model
from plo_risk.evaluate.plots import (
    calibration_figure,
    decision_figure,
    importance_figure,
    roc_figure,
)
from plo_risk.explain import plot_beeswarm
from plo_risk.model.features import ENGINEERED_FEATURES
from plo_risk.report.html import (
    CSS,
    ci,
    e,
    fmt,
    img,
    metric_label,
    metrics_table,
    png,
    table,
)
from plo_risk.report.tripod import SECTIONS, tripod_section
from plo_risk.serve.risk_model import RiskModel
from plo_risk.serve.tracking import ensure_tracking_uri
from plo_risk.utils.atomic import write_text_atomic
from plo_risk.utils.resources import shipped_file

__all__ = ["SECTIONS", "SEED_CASE", "ModelCard", "model_card", "render_card"]

_CARD_ARTIFACT = "model_card.html"
#: Example patient 1, a published case: Mishra et al. 2024, Table 3 row 9 (their
#: ref 12): 35 years, third pregnancy, 2 months postpartum, lumbar spine 0.687
#: g/cm2, total femur 0.815 g/cm2; breastfeeding for the 2 months is assumed.
SEED_CASE = {
    "age_years": 35,
    "parity": 3,
    "months_postpartum": 2,
    "lactation_months": 2,
    "breastfeeding_now": True,
    "bmd_lumbar_spine": 0.687,
    "bmd_total_hip": 0.815,
}


def section(anchor: str, body: str) -> str:
    """One card section: ``<section id=anchor>`` with the heading of :data:`SECTIONS`."""
    title = dict(SECTIONS)[anchor]
    return f'<section id="{anchor}"><h2>{e(title)}</h2>{body}</section>'


def _datasheet_text() -> str | None:
    # Shipped in the wheel as plo_risk/_data/DATASHEET.md (a checkout reads the
    # repository's data/synthetic/DATASHEET.md).
    try:
        path = shipped_file("DATASHEET.md", Path("data") / "synthetic" / "DATASHEET.md")
    except FileNotFoundError:
        return None
    return path.read_text(encoding="utf-8")


# ----------------------------------------------------------- card sections


def _model_params(rm: RiskModel) -> dict[str, Any]:
    info = rm.info
    params = (info.extra.get("params") if info else None) or None
    if params:
        return dict(params)
    est = getattr(rm.model, "estimator_", None)
    final = est[-1] if est is not None else None
    if final is None:
        return {}
    out = {}
    for k, v in final.get_params(deep=False).items():
        if v is None or callable(v):
            continue
        if isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif isinstance(v, (list, tuple, dict)) and len(str(v)) < 300:
            out[k] = v
    return out


def _source_run_id(rm: RiskModel) -> str | None:
    """The MLflow run that logged the model, when it was loaded from MLflow."""
    source = str(getattr(rm, "source", None) or "")
    if not source.startswith(("models:/", "runs:/")):
        return None
    run_id = (rm.info.extra.get("run_id") if rm.info else None) or None
    if run_id:
        return str(run_id)
    if source.startswith("runs:/"):
        return source[len("runs:/") :].split("/", 1)[0] or None
    import mlflow  # optional heavy import: only for models from MLflow

    ensure_tracking_uri()
    client = mlflow.MlflowClient()
    rest = source[len("models:/") :]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = rest.split("/", 1)
        mv = client.get_model_version(name, version)
    return mv.run_id or None


def _log_to_mlflow(html_text: str, run_id: str) -> None:
    import mlflow  # optional heavy import: only when the card is logged
    from mlflow.exceptions import MlflowException

    uri = ensure_tracking_uri()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / _CARD_ARTIFACT
        local.write_text(html_text, encoding="utf-8")
        try:
            mlflow.MlflowClient().log_artifact(run_id, str(local))
        except MlflowException as exc:
            raise ValueError(
                f"mlflow_run_id={run_id!r}: cannot log the model card to this run "
                f"at {uri} ({exc.message})"
            ) from None


@dataclass(frozen=True)
class ModelCard:
    """What :func:`model_card` wrote.

    Attributes
    ----------
    path : Path
        The HTML file.
    mlflow_run_id : str or None
        The MLflow run the card was logged to (artifact ``model_card.html``).
    n_input, n_rejected, n, n_events : int
        Rows of the evaluation data, rows rejected by validation, rows evaluated
        and their events.
    metrics : pandas.DataFrame
        The performance table of the card (as :func:`external_validation`).
    evaluation : ModelEvaluation
        Every number the card shows (:func:`plo_risk.evaluate.evaluate_model`).
    """

    path: Path
    mlflow_run_id: str | None
    n_input: int
    n_rejected: int
    n: int
    n_events: int
    metrics: pd.DataFrame = field(repr=False)
    evaluation: ModelEvaluation | None = field(default=None, repr=False)


def _example_html(rm: RiskModel, record: dict, title: str, source: str, key: str):
    try:
        a = rm.assess(record)
    except ValidationError as exc:
        return f"<h3>{e(title)}</h3><p>Not assessed: {e(str(exc))}</p>", None
    interval = a.interval
    risk = f"{a.risk:.2%} ({e(a.category)})"
    if interval:
        risk += f", 90% interval {interval[0]:.2%} to {interval[1]:.2%}"
    given = "; ".join(
        f"{e(rm.catalog[k].label)} = {e(str(v))}" for k, v in record.items()
    )
    factors = "".join(f"<li>{e(f.describe())}</li>" for f in a.top_factors(5))
    fig = a.plot_waterfall(max_display=10)
    b64 = png(fig, close=True)
    body = (
        f"<h3>{e(title)}</h3><p>{e(source)}</p><p>Inputs: {given}. "
        "Everything else not given.</p>"
        f"<p>Estimated risk: <strong>{risk}</strong>. Largest contributions:</p>"
        f"<ul>{factors}</ul>"
        + img(
            b64,
            f"SHAP waterfall of {title}",
            "From the model's base log-odds (bottom) to this patient's calibrated "
            "log-odds (top): each bar is one input field's contribution.",
            f"waterfall-{key}",
        )
    )
    return body, b64


def _explanations(ev: ModelEvaluation) -> str:
    rm = ev.model
    labels = {f.name: f.label for f in rm.catalog}
    sample, importance = ev.sample, ev.importance
    rows = [
        [e(labels.get(f, f)), f"<code>{e(f)}</code>", f"{v:.4f}"]
        for f, v in importance.head(15).items()
    ]
    bar = png(importance_figure(importance, labels))
    bee = png(
        plot_beeswarm(rm.model, sample, max_display=15, explanation=ev.explanation),
        close=True,
    )
    ex1, _ = _example_html(
        rm,
        dict(SEED_CASE),
        "Example patient 1: a published PLO case",
        "From [@mishra2024, Table 3 row 9; @cerit2020]: 35 years, third pregnancy, 2 months "
        "postpartum, lumbar spine BMD 0.687 g/cm², total femur BMD 0.815 g/cm²; "
        "2 months of breastfeeding are assumed.",
        "seed-case",
    )
    ex2, _ = _example_html(
        rm,
        dict(ev.typical_patient),
        "Example patient 2: a typical woman of the evaluation data",
        "Median (numbers) or most common value (yes/no) of each listed field in "
        "the evaluation data: aggregates, not a real row.",
        "typical",
    )
    return (
        "<p>Contributions are exact TreeSHAP values (or the exact linear terms) in "
        "calibrated log-odds, summed back to the input fields a clinician types, "
        f"over {len(sample):,} rows of the evaluation data "
        "(<code>plo_risk.explain</code>). A positive contribution raises the risk; "
        "the base value plus all contributions is the patient's log-odds.</p>"
        + table(["field", "name", "mean |contribution|"], rows, {2})
        + img(
            bar,
            "Global importance bar chart",
            "Mean absolute contribution per input field (15 largest).",
            "importance",
        )
        + img(
            bee,
            "SHAP beeswarm",
            "Each dot is a patient: position is the "
            "field's contribution, colour the field's value.",
            "beeswarm",
        )
        + ex1
        + ex2
    )


def _characteristics(ev: ModelEvaluation) -> str:
    rm, data = ev.model, ev.data
    ref = rm.reference
    rows = []
    for row in ev.characteristics.itertuples(index=False):
        f = rm.catalog[row.field]
        miss = f"{row.missing:.0%}"
        dev = ref.get(f.name)
        values = row.values
        if f.dtype == "category":
            ev_text = ", ".join(f"{e(str(k))} {v:.0%}" for k, v in values.items())
            devtext = ", ".join(e(str(d)) for d in dev) if dev else "–"
        elif f.dtype == "bool":
            ev_text = f"{values:.1%} yes" if values is not None else "–"
            devtext = "–"
        else:
            ev_text = " / ".join(fmt(q) for q in values) if values is not None else "–"
            devtext = " / ".join(fmt(q) for q in dev) if dev else "–"
        rows.append(
            [e(f.label), f"<code>{e(f.name)}</code>", e(f.unit), miss, ev_text, devtext]
        )
    prev_dev = (
        rm.info.training_data.get("prevalence") if rm.info else None
    ) or getattr(rm.model, "prevalence_", None)
    outcome = (
        f"<p>Outcome: {int(data.y.sum()):,} fractures in {len(data.y):,} evaluated "
        f"rows (prevalence {data.y.mean():.3%}); development data prevalence "
        f"{fmt(prev_dev) if prev_dev is not None else 'not recorded'}"
        f"{f' ({prev_dev:.3%})' if prev_dev is not None else ''}.</p>"
    )
    return (
        outcome
        + "<p>Numbers: 10th / 50th / 90th percentile; yes/no fields: share yes; "
        "ancestry: most common groups. The development column shows the reference "
        "values stored in the model bundle (the same percentiles of the training "
        "data, aggregates only; most common groups for ancestry), when present.</p>"
        + table(
            ["field", "name", "unit", "missing", "evaluation data", "development data"],
            rows,
        )
    )


def _predictors(rm: RiskModel) -> str:
    rows = [
        [
            f"<code>{e(f.name)}</code>",
            e(f.label),
            e(f.group),
            e(f.unit or ("yes/no" if f.dtype == "bool" else "")),
            e(f.values_text()),
            "yes" if f.missing else "no (required)",
            "yes" if f.modifiable else "no",
            e(f.direction),
            e(f.reference),
        ]
        for f in rm.catalog
    ]
    eng = [[f"<code>{e(k)}</code>", e(v)] for k, v in ENGINEERED_FEATURES.items()]
    return (
        f"<p>The {len(rm.catalog)} input fields of the feature catalog "
        "(<code>features/catalog.yaml</code>, sha256 "
        f"<code>{rm.catalog.sha256[:12]}…</code>), chosen from the literature "
        "([@mishra2024] and the sources cited per field) before any model was "
        "fitted; there is no data-driven selection. All are offered to every model. "
        "Each is defined at the assessment (third trimester to 18 months "
        "postpartum), in the canonical unit shown; alternate units are converted "
        "on input. <em>Direction</em> is the expected effect of a higher value and "
        "is a monotone constraint of the xgboost model.</p>"
        + table(
            [
                "name",
                "label",
                "group",
                "unit",
                "allowed values",
                "may be missing",
                "modifiable",
                "direction",
                "source",
            ],
            rows,
        )
        + "<h3>Engineered features (computed by the feature pipeline)</h3>"
        + table(["name", "definition and source"], eng)
    )


def _missing_data(ev: ModelEvaluation) -> str:
    rm, data = ev.model, ev.data
    required = ", ".join(
        f"<code>{e(f.name)}</code>" for f in rm.catalog if not f.missing
    )
    how = e(rm.family.missing_values)
    top = ""
    if len(ev.rejected_cells):
        top = "<p>Most common reasons for rejection (cells):</p>" + table(
            ["field", "reason", "cells"],
            [
                [f"<code>{e(r.field)}</code>", e(r.reason), f"{int(r.cells):,}"]
                for r in ev.rejected_cells.itertuples(index=False)
            ],
            {2},
        )
    return (
        "<p>Missing inputs are expected: DXA and bone-turnover markers are not "
        "routine in young women (generator: DXA after delivery in 8% of the "
        "population and 80% of referrals, data/synthetic/DATASHEET.md step 6). "
        f"Only {required} are required; every other field may be left out. "
        f"{how} Rows are never dropped silently: validation "
        "(<code>plo_risk.validate_frame</code>) rejects a row with an impossible "
        "value or a missing required field, naming the field, the value and what "
        "is allowed; rejected rows are counted here and left out of the "
        f"evaluation ({data.n_rejected:,} of {data.n_input:,} rows).</p>"
        + top
        + "<p>In use (TRIPOD+AI 27a): <code>RiskModel.assess</code> refuses bad "
        "input with the same messages, lists the missing inputs ordered by how "
        "much each could move the estimate (what to measure next), and batch "
        "scoring writes every bad row to <code>rejects.parquet</code> with its "
        "reason. Share missing per field in the evaluation data: see "
        '<a href="#characteristics">Characteristics</a>.</p>'
    )


def _model_section(rm: RiskModel) -> str:
    info = rm.info
    m = rm.model
    name = rm.name
    params = _model_params(rm)
    prow = [[f"<code>{e(str(k))}</code>", e(str(v))] for k, v in params.items()]
    meta = [
        ["model", e(name)],
        ["model version", e(rm.version)],
        ["created", e(info.created if info else "–")],
        ["loaded from", e(str(getattr(rm, "source", None) or "in memory"))],
        [
            "experiment",
            e(str((info.extra.get("experiment") if info else None) or "–")),
        ],
        ["MLflow run", e(str((info.extra.get("run_id") if info else None) or "–"))],
        [
            "Platt calibration",
            f"log-odds = {m.intercept_:.4f} + {m.slope_:.4f} × margin",
        ],
        ["training prevalence", f"{m.prevalence_:.4%}"],
        ["training rows", f"{getattr(m, 'n_train_', 0):,}"],
        ["calibration folds (out-of-fold margins)", str(m.cv)],
        [
            "interval ensemble",
            f"{len(getattr(m, 'ensemble_', None) or [])} "
            "bootstrap members (90% percentile interval)",
        ],
        ["catalog sha256", f"<code>{e(rm.catalog.sha256)}</code>"],
    ]
    if info:
        meta.append(
            [
                "library versions",
                e(", ".join(f"{k} {v}" for k, v in sorted(info.versions.items()))),
            ]
        )
        td = info.training_data or {}
        if td:
            meta.append(
                ["training data", e(", ".join(f"{k} {v}" for k, v in td.items()))]
            )
    steps = " → ".join(
        f"<code>{e(s)}</code>" for s, _ in getattr(m.estimator_, "steps", [])
    )
    dev = ""
    if info and info.metrics:
        dev_rows = []
        for k, v in info.metrics.items():
            if isinstance(v, Mapping):
                label, _ = metric_label(str(k))
                dev_rows.append([e(label), ci(v)])
        dev = "<h3>Held-out performance at development (from the bundle)</h3>" + table(
            ["measure", "estimate (CI)"], dev_rows, {1}
        )
    return (
        f"<p>A <strong>{e(name)}</strong> model of <code>plo_risk.models</code>: "
        f"the pipeline {steps}, wrapped in a Platt calibration. The champion "
        "model family is xgboost with monotone constraints from the catalog's "
        "<em>direction</em> (lower BMD never lowers the risk). Calibration is a "
        "logistic fit on out-of-fold margins (stratified K-fold), after which the "
        "estimator is refitted on all training rows; the calibrated log-odds are "
        "<em>intercept + slope × margin</em>, so SHAP contributions stay exactly "
        "additive and a prevalence shift is an intercept change. No resampling "
        "or class weights are used for the rare outcome (TRIPOD+AI 13): the "
        "enriched referral setting and the calibration handle it, and "
        '<a href="#recalibration">Recalibration</a> moves the intercept to '
        "another setting. Hyperparameters are set in the experiment file "
        "(<code>training/*.yaml</code>, one file per reproducible experiment, the "
        "analysis plan; no separate protocol); held-out data come from a separate "
        "seed or a stratified split of the training source.</p>"
        + table(["", ""], meta)
        + "<h3>Hyperparameters</h3>"
        + (table(["parameter", "value"], prow) if prow else "<p>None recorded.</p>")
        + dev
        + "<h3>How predictions are computed</h3><p>The model is a bundle folder: "
        "<code>manifest.json</code> with the sha256 of every file, the booster in "
        "xgboost's JSON format and the pipeline state as JSON, loaded without "
        "pickle (<code>plo_risk.bundle</code>). In Python: "
        "<code>RiskModel.load(&lt;bundle or models:/plo-risk@champion&gt;)</code>, "
        "then <code>.predict_proba(frame)</code> or <code>.assess(record)</code>; "
        "from the shell: <code>plo-risk score</code> / <code>plo-risk assess</code>; "
        "as a service: the MLflow pyfunc model. The code is the open-source "
        "<code>plo_risk</code> package (MIT licence), version "
        f"{e(str((info.versions.get('plo_risk') if info else None) or '–'))}.</p>"
    )


def _performance(ev: ModelEvaluation) -> str:
    metrics, n_boot, data = ev.metrics, ev.n_boot, ev.data
    main = list(TRANSPORT_METRICS)
    rest = [m for m in metrics.index if m not in main]
    oracle = ""
    if ev.oracle is not None:
        oracle = (
            "<p>The data carry the generator's own risk (<code>true_risk</code>, the "
            "oracle): its AUROC on the same rows is "
            f"{ev.oracle['auroc']:.3f} and its Brier score "
            f"{fmt(ev.oracle['brier'])}, the best any model can "
            "reach on these rows.</p>"
        )
    return (
        f"<p>On {len(data.y):,} rows with {int(data.y.sum()):,} events. Intervals: "
        f"percentile bootstrap, {n_boot} replicates of the rows "
        "(<code>plo_risk.evaluation.evaluate</code>); the observed/expected ratio "
        "uses a delta-method interval on the log scale ([@debray2017]). "
        "Discrimination (AUROC, AUPRC), overall accuracy (Brier), "
        "calibration (slope, intercept, O/E, ICI) and clinical utility at the "
        "model's thresholds (sensitivity, specificity, PPV, NPV, net benefit) are "
        "reported, as TRIPOD+AI 12e asks.</p>"
        + oracle
        + metrics_table(metrics, main)
        + "<h3>At the model's risk thresholds</h3>"
        + (metrics_table(metrics, rest) if rest else "<p>No thresholds stored.</p>")
    )


_HORIZON_METRICS = {
    "auroc_td": "time-dependent AUROC (cumulative/dynamic, IPCW)",
    "brier": "Brier score (IPCW)",
    "observed": "observed risk (Kaplan-Meier)",
    "expected": "mean predicted risk",
    "citl": "calibration-in-the-large (log-odds, observed - predicted)",
    "slope": "calibration slope (IPCW logistic)",
    "ici": "ICI (IPCW spline calibration curve)",
}


def _horizons(ev: ModelEvaluation) -> str:
    """The horizon model: metrics per horizon and its intervals' coverage."""
    rm = ev.model
    hm = rm.horizon_model
    if hm is None:
        return (
            "<p>This model has no horizon model: its risk is over the whole window "
            "(to 18 months postpartum) only.</p>"
        )
    seen = ", ".join(
        f"{k} ({v['women']:,} women, {v['events']:,} fractures)"
        for k, v in (hm.interventions_ or {}).items()
    )
    text = (
        "<p>A discrete-time hazard model (person-month rows, "
        f"{e(hm.family)}; {hm.n_train_:,} training women, {hm.n_events_:,} "
        "fractures) gives the risk of a first fracture within 3, 6 and 12 months "
        "of the assessment and to 18 months postpartum, each recalibrated on "
        "out-of-fold risks with inverse-probability-of-censoring weights. Metrics "
        "at a horizon follow [@austin2020] for calibration; intervals are "
        f"bootstrap percentiles ({ev.n_boot} replicates). What-if effects were "
        f"learned from: {e(seen) if seen else 'no intervention (what-if says the data cannot tell)'}.</p>"
    )
    table_ = ev.horizons
    if table_ is not None and len(table_):
        level = f"{ev.ci:.0%}"
        horizons = list(dict.fromkeys(table_["horizon"]))
        headers = ["measure", *[f"{float(h):g} months ({level} CI)" for h in horizons]]
        rows = []
        metrics = list(dict.fromkeys(table_["metric"]))
        for metric in metrics:
            label = _HORIZON_METRICS.get(metric.split("@")[0], metric)
            if "@" in metric:
                label = f"net benefit at {float(metric.split('@')[1]):.0%}"
            cells = [e(label)]
            for h in horizons:
                r = table_[(table_["horizon"] == h) & (table_["metric"] == metric)]
                if len(r):
                    r = r.iloc[0]
                    cells.append(
                        ci(
                            {
                                "estimate": r["estimate"],
                                "lower": r["low"],
                                "upper": r["high"],
                            }
                        )
                    )
                else:
                    cells.append("–")
            rows.append(cells)
        text += table(headers, rows, set(range(1, len(horizons) + 1)))
    else:
        text += (
            "<p>The evaluation data have no <code>fracture_month</code>: the "
            "horizon metrics need when each woman fractured.</p>"
        )
    cov = ev.interval_coverage
    meaning = e(rm.interval_meaning)
    if cov is not None and len(cov):
        rows = [
            [
                e(r.horizon),
                fmt(r.coverage),
                fmt(r.tertile_1),
                fmt(r.tertile_2),
                fmt(r.tertile_3),
                fmt(r.median_width),
            ]
            for r in cov.itertuples()
        ]
        text += (
            f"<h3>Intervals against the oracle</h3><p>The interval is {meaning}. "
            "On these synthetic data every woman's true risk is known: the share "
            "of true risks inside their 90% interval should be about 0.90 "
            "overall and in each tertile of true risk.</p>"
            + table(
                [
                    "horizon",
                    "coverage",
                    "lowest tertile",
                    "middle tertile",
                    "highest tertile",
                    "median width",
                ],
                rows,
                {1, 2, 3, 4, 5},
            )
        )
    else:
        text += f"<p>The interval is {meaning}.</p>"
    return text


def _count(value: Any) -> str:
    """A published count: a whole number, or the text that stands for a hidden one."""
    return f"{value:,}" if isinstance(value, int) else e(str(value))


def _subgroups(ev: ModelEvaluation, min_cell: int = MIN_CELL) -> str:
    n_boot, ci_level = min(ev.n_boot, 100), ev.ci
    rows = []
    # Only suppressed cells leave the process: the evaluation keeps the full table.
    published = (
        suppress_small_cells(ev.subgroups, min_cell=min_cell)
        if len(ev.subgroups)
        else ev.subgroups
    )
    for r in published.to_dict("records"):
        rows.append(
            [
                e(str(r["subgroup"])),
                e(str(r["level"])),
                _count(r["n"]),
                _count(r["n_events"]),
                *(
                    ci(
                        {
                            "estimate": r[m],
                            "lower": r[f"{m}_lower"],
                            "upper": r[f"{m}_upper"],
                        }
                    )
                    for m in ("auroc", "calibration_intercept", "oe_ratio", "brier")
                ),
            ]
        )
    return (
        "<p>Known inequalities: the review [@mishra2024] notes that PLO may be more common "
        "but under-diagnosed and under-treated in developing countries, with "
        "multiparity, prolonged lactation and malnutrition ([@mishra2024, "
        "Introduction, refs 11, 14-16]), and that management should be personalised "
        "by parity, lactation, societal status, age, ethnicity and race "
        "([@mishra2024, Abstract]). "
        "Performance is therefore reported by age band, ancestry and parity, "
        f"each with {ci_level:.0%} bootstrap intervals ({n_boot} replicates within the "
        "subgroup; the O/E interval is the delta-method one of the Performance "
        "section); no fairness constraint was imposed on the model, so "
        "differences here are the fairness assessment (TRIPOD+AI 14). Subgroups "
        "with few events have wide intervals; metrics that need both outcomes are "
        "blank where a subgroup has none. A subgroup of fewer than "
        f"{min_cell} women, events or non-events shows &lt;{min_cell} (or "
        "<em>suppressed</em>) instead of its counts and no metrics, so that no "
        "woman's fracture can be read off the table; when a variable has one such "
        "level, its smallest other level is suppressed too, so the hidden count "
        "cannot be recovered from the totals.</p>"
        + table(
            [
                "subgroup",
                "level",
                "n",
                "events",
                "AUROC",
                "calibration intercept",
                "O/E",
                "Brier",
            ],
            rows,
            {2, 3, 4, 5, 6, 7},
        )
    )


def _recalibration(ext: ExternalValidation, rm: RiskModel) -> str:
    comp = ext.comparison()
    rows = []
    for name, row in comp.iterrows():
        label, _ = metric_label(str(name))
        rows.append(
            [
                e(label),
                ci(
                    {
                        "estimate": row["estimate"],
                        "lower": row["lower"],
                        "upper": row["upper"],
                    }
                ),
                ci(
                    {
                        "estimate": row["recalibrated"],
                        "lower": row["recalibrated_lower"],
                        "upper": row["recalibrated_upper"],
                    }
                ),
            ]
        )
    b64 = png(ext.plot_calibration())
    prev_train = float(rm.model.prevalence_)
    prev_new = float(ext.y.mean())
    return (
        "<p>A model fitted in one setting over- or under-predicts in another when "
        "the outcome is more or less common there: the referral cohorts are "
        "enriched for cases (prevalence 5% by default) while PLO fractures occur "
        "in about 460 per million deliveries in the population ([@kasahara2024]), "
        "and after an assessment at a random time in the episode in fewer "
        f"({expected_prevalence('population'):.1e}; data/synthetic/DATASHEET.md). "
        "With Platt calibration such a "
        "shift is an intercept change, which keeps the ranking (AUROC) and the "
        "explanations: <code>plo_risk.models.recalibrate(model, "
        "prevalence=...)</code> for a known prevalence, or <code>recalibrate(model, "
        "X=..., y=...)</code> to match observed outcomes (calibration-in-the-large), "
        "also from the shell: <code>plo-risk validate --model ... --input ... "
        "--recalibrate --out DIR</code>.</p>"
        f"<p>Training prevalence {prev_train:.3%}; observed here {prev_new:.3%}. "
        "Calibration intercept of the model as trained: "
        f"<strong>{ext.calibration_intercept:.2f}</strong>. Refitting the intercept "
        f"on these data moves the Platt intercept from {ext.intercept_before:.3f} "
        f"to {ext.intercept_after:.3f} (shift "
        f"{ext.intercept_after - ext.intercept_before:+.3f}). The recalibrated "
        "intercept is fitted and measured on the same rows (its "
        "calibration-in-the-large is 0 by construction); this card does not "
        "update the model itself (TRIPOD+AI 24: no updated model is reported "
        "unless saved from here).</p>"
        + table(["measure", "as trained", "intercept-recalibrated"], rows, {1, 2})
        + img(
            b64,
            "Calibration before and after intercept recalibration",
            "Deciles of predicted risk with 95% Wilson intervals and the "
            "smoothed (loess) calibration curve, before and after "
            "recalibrating the intercept to these data.",
            "recalibration",
        )
    )


def _interpretation(ev: ModelEvaluation) -> str:
    metrics = ev.metrics
    auc = metrics.loc["auroc"]
    slope = metrics.loc["calibration_slope", "estimate"]
    cil = metrics.loc["calibration_intercept", "estimate"]
    oe = metrics.loc["oe_ratio", "estimate"]
    parts = [f"The model discriminates with an AUROC of {ci(auc.to_dict())}."]
    if ev.oracle is not None:
        parts.append(
            f"The generator's own risk reaches {ev.oracle['auroc']:.3f} "
            "on the same rows, the ceiling for these data."
        )
    if math.isfinite(cil):
        # 0.2 on the log-odds scale (predicted odds within about 20% of the
        # observed) is this card's working cut-off, an assumption.
        if abs(cil) < 0.2:
            cal = (
                "Calibration-in-the-large is close to ideal (|intercept| below "
                "0.2, a working cut-off of this card: an assumption)"
            )
        elif cil < 0:
            cal = "The model over-predicts on average in these data"
        else:
            cal = "The model under-predicts on average in these data"
        parts.append(
            f"{cal} (intercept {cil:.2f}, O/E {fmt(oe)}); the calibration slope is "
            f"{fmt(slope)} (1 is ideal)."
        )
    parts.append(
        "Subgroup differences are in the subgroup table. All of this is measured "
        "on synthetic data: it shows that the pipeline recovers the structure the "
        "generator encodes, not how the model would perform in real patients."
    )
    return "<p>" + " ".join(parts) + "</p>"


_LIMITATIONS = """
<ul>
<li><strong>Synthetic data.</strong> Models are trained and evaluated on cohorts of
the structural generator (<code>plo_risk.synthetic</code>); there is no public
patient-level PLO data. The numbers here show what the pipeline recovers from the
generator's assumptions and support no clinical conclusion.</li>
<li><strong>Extrapolated effect sizes.</strong> The fracture effect sizes come from
older, mostly postmenopausal cohorts ([@marshall1996; @kanis2004family;
@kanis2004glucocorticoids; @vestergaard2003]);
applying them to women of 20-40 is an extrapolation (data/synthetic/DATASHEET.md,
Known limits).</li>
<li><strong>Tuned or assumed parameters.</strong> The threshold slope below Z -2, the
lactational-deficit weight, the vitamin D × lactation relative risk and the referral
shifts were set so that referral cases resemble [@mishra2024, Table 3]; most
risk-factor prevalences are assumptions (no source); marker multipliers other than
CTX ×2 are assumptions, only their direction is from [@mishra2024, Table 1].</li>
<li><strong>No treatment, no follow-up.</strong> The generator models no weaning
advice, calcium or vitamin D prescription, teriparatide, denosumab or
bisphosphonates [@mishra2024, Table 3] and no treatment effect (TRIPOD+AI 6c), one
assessment per episode, no timing of the fracture within the window, no device
differences and Z = T from one young-adult reference.</li>
<li><strong>Risk thresholds are assumptions.</strong> No published PLO risk
threshold exists; the stored categories are working values
(<code>training/compare.yaml</code>).</li>
<li><strong>Evaluation data from the same generator</strong> test internal
consistency and transport across settings (referral to population), not external
validity; there are no centres or countries to study heterogeneity across
clusters.</li>
<li><strong>Sample size.</strong> No formal sample-size calculation was done; the
cohort sizes are chosen so that the confidence intervals above are usable. With a
rare outcome the number of events, not of rows, sets the precision.</li>
</ul>
<p><strong>Next steps (TRIPOD+AI 27c).</strong> Validate on real registry or
multi-centre cohort data (the package ingests registry extracts and OMOP tables),
with centres as clusters; recalibrate to each setting's prevalence; study fairness
with real ancestry and socioeconomic data; replace the extrapolated effect sizes by
estimates from PLO cohorts as they appear.</p>
"""


def _intended_use(rm: RiskModel) -> str:
    return (
        "<p><strong>Context.</strong> Pregnancy- and lactation-associated "
        "osteoporosis (PLO) is a transient and rare osteoporosis of the third "
        "trimester and the postpartum period, presenting with back and hip pain and "
        "sometimes vertebral compression fractures; it is probably under-diagnosed "
        "([@mishra2024, Abstract and Introduction, refs 10-12; @cerit2020]). "
        "Established fracture tools were built for older adults: FRAX for ages "
        "40-90 ([@kanis2008frax]), QFracture on ages 30-85 ([@hippisleycox2009]) "
        "and Garvan on ages 60 and over ([@nguyen2008garvan]); none uses parity or lactation, "
        "and no PLO-specific prediction model is known to us. The model is "
        "<em>prognostic</em>: at an assessment between the third trimester and 18 "
        "months postpartum it estimates the probability of a fragility fracture "
        "from the third trimester to 18 months postpartum.</p>"
        "<p><strong>Objective.</strong> This card reports the development (in the "
        "model bundle and its MLflow run) and an evaluation on the data given "
        "below, of one fitted model.</p>"
        "<p><strong>Target population.</strong> Women with a pregnancy episode, "
        "assessed from the third trimester to 18 months postpartum: in the "
        "population, or referred for bone assessment (an enriched setting; see "
        '<a href="#recalibration">Recalibration</a>).</p>'
        "<p><strong>Intended users and use.</strong> Clinicians (obstetrics, "
        "endocrinology, rheumatology) or an application built for them use "
        "<code>RiskModel.assess</code>: one patient's calibrated risk with an "
        "interval, the reasons, what to measure next and the review's treatment "
        "considerations, as information alongside clinical judgement. They enter "
        "the patient's fields (units are converted and checked) and need to "
        "interpret a probability and DXA results; no programming. Data scientists "
        "train, compare and validate models (Python, CLI, MLflow); analysts score "
        "cohorts in batch.</p>"
        '<p class="warn"><strong>Not for:</strong> diagnosing a fracture, deciding '
        "treatment on its own, women outside pregnancy and 18 months postpartum, "
        "men, postmenopausal osteoporosis, or any use on real patients before "
        "external validation on real data. Research software, not a medical "
        "device.</p>"
        "<p><strong>Known inequalities (TRIPOD+AI 3c).</strong> PLO may be more "
        "common and less often diagnosed in developing countries ([@mishra2024, "
        "Introduction, refs 11, 14-16]); see "
        '<a href="#subgroups">Subgroups</a>.</p>'
    )


def _data_section(ev: ModelEvaluation, datasheet: str | None) -> str:
    rm, data = ev.model, ev.data
    info = rm.info
    td = (info.training_data if info else None) or {}
    synthetic = data.true_risk is not None
    n_valid, events = len(data.y), int(data.y.sum())
    dev_rows = td.get("n_rows") or getattr(rm.model, "n_train_", None)
    dev_prev = td.get("prevalence", getattr(rm.model, "prevalence_", None))
    flow = table(
        ["", "development (training)", "evaluation (this card)"],
        [
            [
                "source",
                e(
                    str(
                        (info.extra.get("experiment") if info else None)
                        and f"experiment {info.extra['experiment']}"
                        or "recorded in the bundle"
                    )
                ),
                e(
                    data.description
                    + (
                        " — synthetic (has the generator's true_risk column)"
                        if synthetic
                        else ""
                    )
                ),
            ],
            ["rows in", f"{dev_rows:,}" if dev_rows else "–", f"{data.n_input:,}"],
            ["rows rejected by validation", "–", f"{data.n_rejected:,}"],
            ["rows analysed", f"{dev_rows:,}" if dev_rows else "–", f"{n_valid:,}"],
            [
                "fractures (events)",
                f"{round(dev_rows * dev_prev):,}" if dev_rows and dev_prev else "–",
                f"{events:,}",
            ],
            [
                "prevalence",
                f"{dev_prev:.3%}" if dev_prev is not None else "–",
                f"{events / n_valid:.3%}",
            ],
            ["data fingerprint (sha256)", e(str(td.get("sha256", "–"))[:16]), "–"],
        ],
        {1, 2},
    )
    sheet = ""
    if datasheet:
        sheet = (
            '<details id="datasheet"><summary>The generator\'s datasheet '
            "(data/synthetic/DATASHEET.md, embedded)</summary>"
            f"<pre>{e(datasheet)}</pre></details>"
        )
    return (
        "<p><strong>Source.</strong> There is no public patient-level PLO data, so "
        "models are developed on cohorts of the structural synthetic generator "
        "(<code>plo_risk.synthetic.generate_cohort</code>); every parameter and its "
        "source is in <code>data/synthetic/params.yaml</code> and the generator's "
        "datasheet is <code>data/synthetic/DATASHEET.md</code>"
        + (' (<a href="#datasheet">embedded below</a>)' if datasheet else "")
        + ". Cohorts are deterministic for a seed, so the data can be "
        "regenerated exactly (data sharing, TRIPOD+AI 18e); no patient data are "
        "involved. Synthetic rows have no accrual or follow-up dates (5b); the "
        "model was created "
        f"{e(info.created if info else 'in memory')} and this card on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d')}.</p>"
        "<p><strong>Setting and eligibility.</strong> One row is one pregnancy "
        "episode of one woman, assessed once between the third trimester and 18 "
        "months postpartum. <em>Population</em>: all deliveries (PLO in 4.6e-4 of "
        "episodes, [@kasahara2024]; the outcome after the assessment in "
        f"{expected_prevalence('population'):.1e}). <em>Referral</em>: women referred for "
        "bone assessment, with lower bone mass, more risk factors and an enriched "
        "prevalence (0.05 by default; DATASHEET, The referral setting). No centres "
        "or countries. Eligibility is the catalog: a row is analysed when its "
        "values pass validation and the outcome is 0 or 1.</p>"
        "<p><strong>Flow of rows and sample size.</strong> Development data as "
        "recorded in the bundle (held-out data of the experiment are reported in "
        "its MLflow run); evaluation data as given to this card. The evaluation "
        "data differ from the development data only as shown here and in "
        '<a href="#characteristics">Characteristics</a> (same predictors and '
        "outcome definition; the setting may differ).</p>"
        + flow
        + sheet
        + _reference_check_html()
    )


def _reference_check_html() -> str:
    """The generator's literature check (the committed scorecard)."""
    card, current = shipped_reference_check()
    how = (
        f"{card.meta.get('n', card.n_episodes):,} population episodes, seed "
        f"{card.meta.get('seed', '?')}"
    )
    stale = (
        ""
        if current
        else " <strong>Stale:</strong> the generator's parameters or the "
        "literature table changed since; run <code>plo-risk reference-check "
        "--write</code>."
    )
    return (
        '<h3 id="reference-check">The generator against published PLO '
        "statistics</h3><p>Each published statistic "
        "(<code>plo_risk/data/plo_literature.yaml</code>, with its source) is "
        "recomputed with its own case definition on a large synthetic cohort "
        f"({e(how)}; <code>plo-risk reference-check</code>). The tolerance is the "
        "published 95% interval widened by 1.5; z is the standardized deviation. "
        "The generator never reads the table; some of its parameters were tuned "
        f"while watching it (data/synthetic/DATASHEET.md).{stale}</p>" + card.to_html()
    )


def _outcome(rm: RiskModel) -> str:
    return (
        f"<p><code>fracture</code> = 1: {e(rm.horizon)}. The PLO cohorts define "
        "the condition as osteoporosis during terminal pregnancy or within 18 "
        "months of delivery ([@mishra2024, Table 3 row 4, ref 49; @li2018]), with "
        "onset in the third trimester to early postpartum ([@mishra2024, "
        "Introduction, ref 12; @cerit2020]). In synthetic cohorts the outcome is "
        "drawn from the generator's event history (data/synthetic/DATASHEET.md): "
        "most fractures are vertebral, driven by the spine BMD (RR 2.3 per SD, "
        "[@marshall1996]), the others by the hip BMD (RR 2.6 per SD, "
        "[@marshall1996]); the same way in every group, so outcome assessment does "
        "not differ by sociodemographic group. Rationale: fractures are the "
        "clinically important consequence of PLO ([@mishra2024, Abstract]).</p>"
    )


def _output_section(rm: RiskModel) -> str:
    th = rm.thresholds
    ordered = sorted(th.items(), key=lambda kv: kv[1])
    rows = []
    lower = 0.0
    names = ["low"] + [k for k, _ in ordered]
    bounds = [v for _, v in ordered] + [1.0]
    for name, upper in zip(names, bounds, strict=True):
        rows.append(
            [
                e(name),
                f"{lower:.1%} to below {upper:.1%}"
                if upper < 1
                else f"{lower:.1%} and above",
            ]
        )
        lower = upper
    return (
        "<p>The output is a calibrated probability of fracture in the window, "
        "with a 90% interval from the bundle's bootstrap ensemble when present. "
        "Categories come from thresholds stored with the model, not hard-coded: "
        "a risk at or above a threshold takes that category. The thresholds are "
        "working assumptions: no published PLO risk threshold exists "
        "(<code>training/compare.yaml</code>); the decision curve shows the net "
        "benefit over a range of thresholds.</p>"
        + (
            table(["category", "risk"], rows)
            if th
            else "<p>No thresholds stored; the output is the probability only.</p>"
        )
    )


def _summary(ev: ModelEvaluation) -> str:
    rm, data, metrics = ev.model, ev.data, ev.metrics
    name = rm.name
    return (
        f"<p>A <strong>{e(name)}</strong> model (version {e(rm.version)}) "
        "predicting a fragility fracture from the third trimester to 18 months "
        "postpartum in pregnancy- and lactation-associated osteoporosis, "
        f"evaluated on {len(data.y):,} rows ({int(data.y.sum()):,} fractures; "
        f"{data.n_rejected:,} of {data.n_input:,} rows rejected by validation). "
        f"AUROC {ci(metrics.loc['auroc'].to_dict())}; calibration intercept "
        f"{ci(metrics.loc['calibration_intercept'].to_dict())}, slope "
        f"{ci(metrics.loc['calibration_slope'].to_dict())}; O/E "
        f"{ci(metrics.loc['oe_ratio'].to_dict())}; Brier "
        f"{ci(metrics.loc['brier'].to_dict())}.</p>"
        '<p class="warn">Synthetic data with extrapolated effect sizes: for '
        "research and software testing, not for clinical decisions (see "
        '<a href="#limitations">Limitations</a>).</p>'
    )


def _references_section(keys: list[str]) -> str:
    refs = load_references()
    items = sorted((refs[k] for k in keys), key=lambda r: r.short().lower())
    lis = "".join(
        f"<li><strong>{e(r.short())}</strong>. {e(r.full())}</li>" for r in items
    )
    return (
        '<section id="references"><h2>References</h2><p>Every source this card '
        "cites (docs/references/*.bib in the repository).</p>"
        f"<ol>{lis}</ol></section>"
    )


def render_card(
    ev: ModelEvaluation, *, title: str | None = None, min_cell: int = MIN_CELL
) -> str:
    """The model card of one evaluation, as one self-contained HTML document.

    Every number comes from ``ev`` (:func:`plo_risk.evaluate.evaluate_model`);
    sections only format them. Subgroup cells of fewer than ``min_cell`` patients,
    events or non-events are suppressed
    (:func:`plo_risk.evaluate.suppress_small_cells`).
    """
    rm, data, metrics, p = ev.model, ev.data, ev.metrics, ev.p
    name = rm.name
    auc = float(metrics.loc["auroc", "estimate"])
    cal = png(calibration_figure(data.y, {name: p}, title="Calibration"))
    roc = png(roc_figure(data.y, p, auc, name))
    dca = png(decision_figure(data.y, p, rm.thresholds, name))
    heading = title or (
        f"Model card: {name} model predicting fragility fracture from the third "
        "trimester to 18 months postpartum in pregnancy- and lactation-associated "
        "osteoporosis (development and evaluation)"
    )
    body = {
        "summary": _summary(ev),
        "intended-use": _intended_use(rm),
        "data": _data_section(ev, _datasheet_text()),
        "characteristics": _characteristics(ev),
        "outcome": _outcome(rm),
        "predictors": _predictors(rm),
        "missing-data": _missing_data(ev),
        "model": _model_section(rm),
        "output": _output_section(rm),
        "performance": _performance(ev),
        "calibration": "<p>Observed against predicted risk (TRIPOD+AI 12e, 23a). "
        f"Calibration slope {ci(metrics.loc['calibration_slope'].to_dict())}, "
        f"intercept {ci(metrics.loc['calibration_intercept'].to_dict())}, ICI "
        f"{ci(metrics.loc['ici'].to_dict())}.</p>"
        + img(
            cal,
            "Calibration plot",
            "Deciles of predicted risk with 95% "
            "Wilson intervals of the observed rate, and the smoothed "
            "(loess, R defaults) calibration curve used by the ICI.",
            "calibration",
        ),
        "discrimination": img(
            roc, "ROC curve", f"AUROC {ci(metrics.loc['auroc'].to_dict())}.", "roc"
        ),
        "decision-curve": "<p>Net benefit of using the model to decide, against "
        "treating (or investigating) every woman or none, over a range of risk "
        "thresholds ([@vickers2006]). Dotted lines "
        "mark the model's stored thresholds.</p>"
        + img(
            dca,
            "Decision curve",
            "Net benefit over threshold probabilities.",
            "decision-curve",
        ),
        "horizons": _horizons(ev),
        "explanations": _explanations(ev),
        "subgroups": _subgroups(ev, min_cell),
        "recalibration": _recalibration(ev.external, rm),
        "interpretation": _interpretation(ev),
        "limitations": _LIMITATIONS,
        "tripod-ai": tripod_section(),
    }
    nav = "".join(f'<li><a href="#{a}">{e(t)}</a></li>' for a, t in SECTIONS)
    sections = "".join(section(a, body[a]) for a, _ in SECTIONS)
    # Every source is cited by key in the texts above; shown in short form, with
    # the full references at the end.
    cited = sorted(set(cite_keys(sections)) | {"collins2024tripodai"})
    sections = format_citation(sections) + _references_section(cited)
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(heading)}</title><style>{CSS}</style></head><body>"
        f'<header id="title"><h1>{e(heading)}</h1><p class="meta">plo_risk model '
        f"card · model version {e(rm.version)} · generated "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} · TRIPOD+AI "
        f"({e(format_citation('[@collins2024tripodai]'))})</p></header>"
        f"<nav><ol>{nav}</ol></nav>{sections}</body></html>\n"
    )
    return doc


def model_card(
    model: Any,
    eval_data: pd.DataFrame | str | Path,
    path: str | Path = "model_card.html",
    *,
    units: Mapping[str, str] | None = None,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
    mlflow_run_id: str | None = None,
    log_to_mlflow: bool = True,
    title: str | None = None,
    min_cell: int = MIN_CELL,
) -> ModelCard:
    """Evaluate a model and write its model card: one self-contained HTML file.

    Parameters
    ----------
    model : RiskModel, PlattCalibratedClassifier, str or Path
        The model, or a bundle folder or MLflow URI (``models:/plo-risk@champion``,
        ``runs:/<run id>/model``) for :meth:`RiskModel.load`.
    eval_data : pandas.DataFrame, str or Path
        Evaluation data with the observed outcome column ``fracture`` (0/1), as a
        frame or a .csv/.parquet file. It is validated against the catalog; the
        card says how many rows were rejected.
    path : str or Path, default="model_card.html"
        The HTML file to write (its folder is created).
    units : Mapping, default=None
        Alternate units of whole columns of ``eval_data``.
    n_boot : int, default=200
        Bootstrap replicates of the confidence intervals (at most 100 within
        subgroups).
    ci : float, default=0.95
        Confidence level.
    seed : int, default=0
        Seed of the bootstrap and of the rows sampled for the SHAP plots.
    mlflow_run_id : str, default=None
        Log the card to this MLflow run (artifact ``model_card.html``). ``None``
        logs it to the run that logged the model when the model was loaded from
        MLflow (``models:/...`` or ``runs:/...``), else nowhere.
    log_to_mlflow : bool, default=True
        ``False`` never logs the card to MLflow.
    title : str, default=None
        Heading of the card; default names the model, outcome and window.
    min_cell : int, default=5
        Subgroup cells of fewer patients, events or non-events show ``<5`` and no
        metrics in the card (``ModelCard.evaluation`` keeps the full numbers).

    Returns
    -------
    ModelCard
        The path written, the MLflow run it was logged to, row counts and the
        performance table.

    Raises
    ------
    FileNotFoundError
        If the data file or the model is not found.
    ValueError
        If the data have no ``fracture`` column, no valid rows or only one
        outcome class, or the card cannot be logged to ``mlflow_run_id``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from plo_risk.model import make_model
    >>> from plo_risk.report import model_card
    >>> from plo_risk.data.schema import validate_frame
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> train = validate_frame(generate_cohort(2_000, seed=1)).valid
    >>> model = make_model("xgboost", params={"n_estimators": 20, "n_jobs": 1}, cv=2)
    >>> model = model.fit(train, train["fracture"])
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "card.html"
    >>> card = model_card(model, generate_cohort(2_000, seed=2), out, n_boot=10)
    >>> card.path.is_file(), card.n_rejected, 'id="tripod-27c"' in out.read_text()
    (True, 0, True)
    """
    # A bad min_cell is refused before any work.
    suppress_small_cells(pd.DataFrame(columns=["n", "n_events"]), min_cell=min_cell)
    rm = as_risk_model(model)
    data = load_eval_data(eval_data, units, rm.catalog, "eval_data")
    ev = evaluate_model(rm, data, n_boot=n_boot, ci=ci, seed=seed)
    text = render_card(ev, title=title, min_cell=min_cell)
    out = write_text_atomic(path, text)
    run_id = None
    if log_to_mlflow:
        try:
            run_id = mlflow_run_id or _source_run_id(rm)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types
            raise ValueError(
                f"{rm.source}: the card was written to {out}, but the MLflow run "
                f"of this model cannot be found ({exc}); pass mlflow_run_id= or "
                "log_to_mlflow=False"
            ) from None
        if run_id:
            _log_to_mlflow(text, run_id)
    return ModelCard(
        path=out,
        mlflow_run_id=run_id,
        n_input=data.n_input,
        n_rejected=data.n_rejected,
        n=len(data.y),
        n_events=int(data.y.sum()),
        metrics=ev.metrics,
        evaluation=ev,
    )

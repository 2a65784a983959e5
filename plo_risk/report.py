"""The model card (TRIPOD+AI) and external validation of a fitted model.

:func:`model_card` evaluates a model on data with observed outcomes and writes one
self-contained HTML file: every plot is an embedded PNG, the style sheet is inline,
and nothing is fetched from the network (no scripts, fonts or remote images). It
holds the intended use, the data and their datasheet, the predictors from the
feature catalog with their sources, the outcome, the handling of missing data, the
model and its hyperparameters, performance with bootstrap confidence intervals,
calibration, ROC and decision curves, SHAP explanations, a subgroup table, notes on
recalibration, the limitations and the TRIPOD+AI checklist (Collins GS et al.
BMJ 2024;385:e078378), each item linked to the section of the card that answers it
or with the reason it does not apply. The checklist is a data file shipped with the
package (``plo_risk/report_tripod_ai.yaml``, read by :func:`tripod_checklist`).

When the model came from MLflow (``models:/...`` or ``runs:/...``) the card is also
logged as an artifact (``model_card.html``) of the run that logged the model.

:func:`external_validation` measures how a model transports to another setting
(e.g. a model trained on a referral cohort, used in the population): AUROC, Brier
score, calibration slope and intercept (calibration-in-the-large), the
observed/expected ratio and the ICI, each with a confidence interval, before and
after an intercept recalibration to the new setting
(:func:`plo_risk.models.recalibrate` with ``X=`` and ``y=``).

Example patients in the card are not rows of the evaluation data (which could be
patient data): one is a published case (seed Table 3 row 9), the other a
"typical" woman built from medians and most common values of the evaluation data.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import norm

from plo_risk._io import write_text_atomic
from plo_risk.assess import RiskModel
from plo_risk.schema import ID_COLUMN, OUTCOME_COLUMN, validate_frame

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "SECTIONS",
    "ExternalValidation",
    "ModelCard",
    "TripodItem",
    "external_validation",
    "model_card",
    "tripod_checklist",
]

#: Sections of the model card, in order: (anchor id, heading). The card's title
#: has the anchor ``title``.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("intended-use", "Intended use and users"),
    ("data", "Data"),
    ("characteristics", "Characteristics of the evaluation data"),
    ("outcome", "Outcome"),
    ("predictors", "Predictors"),
    ("missing-data", "Missing data"),
    ("model", "Model and hyperparameters"),
    ("output", "Model output and risk categories"),
    ("performance", "Performance"),
    ("calibration", "Calibration"),
    ("discrimination", "Discrimination (ROC curve)"),
    ("decision-curve", "Decision curve"),
    ("explanations", "Explanations (SHAP)"),
    ("subgroups", "Subgroups"),
    ("recalibration", "Recalibration"),
    ("interpretation", "Interpretation"),
    ("limitations", "Limitations"),
    ("tripod-ai", "TRIPOD+AI checklist"),
)
_ANCHORS = {"title"} | {s for s, _ in SECTIONS}
_CARD_ARTIFACT = "model_card.html"
_DATASHEET = Path("data") / "synthetic" / "DATASHEET.md"
_TRIPOD_FILE = "report_tripod_ai.yaml"
_TRANSPORT_METRICS = (
    "auroc",
    "auprc",
    "brier",
    "calibration_slope",
    "calibration_intercept",
    "oe_ratio",
    "ici",
)
_METRIC_LABELS = {
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
        "integrated calibration index: mean |predicted - smoothed "
        "observed| (Austin & Steyerberg, Stat Med 2019;38:4051)",
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
# Published case used as example patient 1: seed Table 3 row 9 (ref 12): 35 years,
# third pregnancy, 2 months postpartum, lumbar spine 0.687 g/cm2, total femur
# 0.815 g/cm2; breastfeeding for the 2 months is assumed.
SEED_CASE = {
    "age_years": 35,
    "parity": 3,
    "months_postpartum": 2,
    "lactation_months": 2,
    "breastfeeding_now": True,
    "bmd_lumbar_spine": 0.687,
    "bmd_total_hip": 0.815,
}
_TYPICAL_FIELDS = (
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
_SHAP_ROWS = 1000


# ------------------------------------------------------------------ checklist


@dataclass(frozen=True)
class TripodItem:
    """One TRIPOD+AI (sub-)item and where the model card answers it."""

    id: str
    item: int
    section: str
    topic: str
    text: str
    answered_in: tuple[str, ...] = ()
    not_applicable: str | None = None
    note: str | None = None


@lru_cache(maxsize=1)
def _checklist() -> tuple[str, tuple[TripodItem, ...]]:
    path = resources.files("plo_risk") / _TRIPOD_FILE
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = []
    for i, raw in enumerate(doc["items"]):
        where = f"{_TRIPOD_FILE}: items[{i}] (id {raw.get('id')!r})"
        answered = tuple(raw.get("answered_in") or ())
        reason = raw.get("not_applicable")
        if bool(answered) == bool(reason):
            raise ValueError(
                f"{where}: needs exactly one of answered_in and not_applicable"
            )
        unknown = sorted(set(answered) - _ANCHORS)
        if unknown:
            raise ValueError(
                f"{where}: answered_in names {unknown}, which are not sections of "
                f"the model card; allowed: {', '.join(sorted(_ANCHORS))}"
            )
        items.append(
            TripodItem(
                id=str(raw["id"]),
                item=int(raw["item"]),
                section=str(raw["section"]),
                topic=str(raw["topic"]),
                text=str(raw["text"]),
                answered_in=answered,
                not_applicable=reason,
                note=raw.get("note"),
            )
        )
    numbers = sorted({it.item for it in items})
    if numbers != list(range(1, 28)):
        missing = sorted(set(range(1, 28)) - set(numbers))
        raise ValueError(f"{_TRIPOD_FILE}: items {missing} of the 27 are missing")
    return str(doc["citation"]).strip(), tuple(items)


def tripod_checklist() -> list[TripodItem]:
    """The TRIPOD+AI checklist shipped with the package, as the card answers it.

    All 27 items of Collins GS et al., BMJ 2024;385:e078378, with their sub-items
    (``"3a"``, ``"3b"``, ...), each linked to the card sections that answer it
    (:data:`SECTIONS`) or with the reason it does not apply.

    Returns
    -------
    list of TripodItem

    Examples
    --------
    >>> from plo_risk.report import tripod_checklist
    >>> items = tripod_checklist()
    >>> len({it.item for it in items}), items[0].id, items[-1].id
    (27, '1', '27c')
    """
    return list(_checklist()[1])


# ---------------------------------------------------------------------- data


@dataclass
class _EvalData:
    X: pd.DataFrame
    y: np.ndarray
    true_risk: np.ndarray | None
    n_input: int
    n_rejected: int
    rejects: pd.DataFrame
    description: str


def _as_risk_model(model: Any) -> RiskModel:
    from plo_risk.models import PlattCalibratedClassifier

    if isinstance(model, RiskModel):
        return model
    if isinstance(model, PlattCalibratedClassifier):
        return RiskModel(model)
    if isinstance(model, (str, Path)):
        return RiskModel.load(model)
    raise TypeError(
        "The 'model' argument must be a RiskModel, a fitted "
        "PlattCalibratedClassifier, a bundle folder or an MLflow model URI "
        f"(models:/... or runs:/...); got {type(model).__name__}."
    )


def _model_kind(rm: RiskModel) -> str | None:
    """The model family of :func:`plo_risk.models.make_model`, from the estimator."""
    from plo_risk.models import ClinicalRuleClassifier

    steps = getattr(getattr(rm.model, "estimator_", None), "steps", None)
    if not steps:
        return None
    final = steps[-1][1]
    if type(final).__module__.startswith("xgboost"):
        return "xgboost"
    if type(final).__name__ == "HistGradientBoostingClassifier":
        return "hist_gradient_boosting"
    if isinstance(final, ClinicalRuleClassifier):
        return "clinical_rule"
    if type(final).__name__ == "LogisticRegression":
        return "logistic_regression"
    return None


def _model_name(rm: RiskModel) -> str:
    """The bundle's model name, else the model family (not the wrapper's class)."""
    if rm.info is not None and rm.info.model_name:
        return str(rm.info.model_name)
    return _model_kind(rm) or type(rm.model).__name__


def _read_table(data: Any, name: str) -> tuple[pd.DataFrame, str]:
    if isinstance(data, pd.DataFrame):
        return data, f"a DataFrame of {len(data):,} rows"
    if not isinstance(data, (str, Path)):
        raise TypeError(
            f"The '{name}' argument must be a DataFrame or the path of a .csv or "
            f".parquet file; got {type(data).__name__}."
        )
    path = Path(data)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(
            f"{name}={str(path)!r}: the file name must end in .csv or .parquet"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{name}={str(path)!r}: no such file")
    try:
        df = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many types
        raise ValueError(f"{name}={str(path)!r}: cannot be read ({exc})") from None
    return df, f"file {path.name}"


def _eval_data(
    data: Any, units: Mapping[str, str] | None, catalog, name: str
) -> _EvalData:
    df, description = _read_table(data, name)
    if OUTCOME_COLUMN not in df.columns:
        raise ValueError(
            f"{name} ({description}) has no '{OUTCOME_COLUMN}' column: the observed "
            "outcome (0/1, a fragility fracture from the third trimester to 18 "
            "months postpartum) is needed to evaluate a model"
        )
    res = validate_frame(df, units=units, unknown="ignore", catalog=catalog)
    valid = res.valid
    if not len(valid):
        # Distinct reasons: one bad column would otherwise repeat one message.
        first = (
            res.rejects["message"].drop_duplicates().head(3).tolist()
            if len(res.rejects)
            else []
        )
        raise ValueError(
            f"{name} ({description}): all {res.n_input:,} rows were rejected by "
            f"validation, e.g. {'; '.join(first)}"
        )
    y = valid[OUTCOME_COLUMN].to_numpy(dtype=np.int64)
    n_events = int(y.sum())
    if n_events in (0, len(y)):
        raise ValueError(
            f"{name} ({description}): the {len(y):,} valid rows have "
            f"{n_events:,} events ({OUTCOME_COLUMN} = 1); evaluating a model needs "
            "both cases and non-cases"
        )
    true_risk = (
        valid["true_risk"].to_numpy(dtype=np.float64)
        if "true_risk" in valid.columns
        else None
    )
    drop = [c for c in (ID_COLUMN, OUTCOME_COLUMN, "true_risk") if c in valid]
    return _EvalData(
        valid.drop(columns=drop),
        y,
        true_risk,
        res.n_input,
        res.n_rejected,
        res.rejects,
        description,
    )


# ----------------------------------------------------------------- metrics


def _oe_ratio(y: np.ndarray, p: np.ndarray, ci: float) -> tuple[float, float, float]:
    """Observed/expected ratio with a delta-method interval on the log scale.

    var(ln O/E) ~ (1 - O/N) / O, treating the expected count as fixed (Debray TPA
    et al. A guide to systematic review and meta-analysis of prediction model
    performance. BMJ 2017;356:i6460).
    """
    observed, expected, n = float(y.sum()), float(p.sum()), len(y)
    if observed == 0 or expected == 0:
        return math.nan, math.nan, math.nan
    ratio = observed / expected
    se = math.sqrt(max(1.0 - observed / n, 0.0) / observed)
    z = float(norm.ppf(0.5 + ci / 2))
    return ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se)


def _metrics(
    y: np.ndarray,
    p: np.ndarray,
    *,
    thresholds: Mapping[str, float] | None,
    n_boot: int,
    ci: float,
    seed: int,
) -> pd.DataFrame:
    """:func:`plo_risk.evaluation.evaluate` plus the O/E ratio."""
    from plo_risk.evaluation import evaluate

    table = evaluate(
        y, p, thresholds=thresholds or None, n_boot=n_boot, ci=ci, seed=seed
    )
    ratio, lo, hi = _oe_ratio(y, p, ci)
    oe = pd.DataFrame(
        {
            "estimate": [ratio],
            "lower": [lo],
            "upper": [hi],
            "n": [len(y)],
            "n_events": [int(y.sum())],
        },
        index=pd.Index(["oe_ratio"], name="metric"),
    )
    out = pd.concat([table, oe])
    out.attrs.update(table.attrs)
    return out


# ------------------------------------------------------- external validation


@dataclass(frozen=True, eq=False)
class ExternalValidation:
    """How a model transports to new data, before and after intercept recalibration.

    Attributes
    ----------
    model : RiskModel
        The model as trained.
    recalibrated : RiskModel
        The same model with its intercept refitted to the new data (slope and
        ranking kept; ensemble members shifted alike), ready for
        :meth:`RiskModel.save`.
    metrics, recalibrated_metrics : pandas.DataFrame
        Indexed by metric (``auroc``, ``auprc``, ``brier``, ``calibration_slope``,
        ``calibration_intercept``, ``ici``, the threshold metrics, ``oe_ratio``)
        with ``estimate``, ``lower``, ``upper`` (bootstrap percentile intervals;
        analytic for ``oe_ratio``), ``n`` and ``n_events``.
    n_input, n_rejected : int
        Rows in the data and rows rejected by validation.
    description : str
        Where the data came from.
    """

    model: RiskModel
    recalibrated: RiskModel
    metrics: pd.DataFrame
    recalibrated_metrics: pd.DataFrame
    n_input: int
    n_rejected: int
    description: str
    y: np.ndarray = field(repr=False)
    p: np.ndarray = field(repr=False)
    p_recalibrated: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        """Rows evaluated (valid rows)."""
        return len(self.y)

    @property
    def n_events(self) -> int:
        """Observed events among the evaluated rows."""
        return int(self.y.sum())

    @property
    def intercept_before(self) -> float:
        """The model's Platt intercept (calibrated log-odds at margin 0), as trained."""
        return float(self.model.model.intercept_)

    @property
    def intercept_after(self) -> float:
        """The Platt intercept of the recalibrated model."""
        return float(self.recalibrated.model.intercept_)

    @property
    def calibration_intercept(self) -> float:
        """Calibration-in-the-large of the model as trained, on the new data."""
        return float(self.metrics.loc["calibration_intercept", "estimate"])

    @property
    def recalibrated_calibration_intercept(self) -> float:
        """Calibration-in-the-large of the recalibrated model, on the new data."""
        return float(self.recalibrated_metrics.loc["calibration_intercept", "estimate"])

    def comparison(self) -> pd.DataFrame:
        """The transported metrics side by side: as trained and recalibrated.

        Returns
        -------
        pandas.DataFrame
            Indexed by metric (AUROC, AUPRC, Brier, calibration slope and
            intercept, O/E, ICI), with ``estimate``, ``lower``, ``upper`` and
            ``recalibrated``, ``recalibrated_lower``, ``recalibrated_upper``.
        """
        cols = ["estimate", "lower", "upper"]
        before = self.metrics.loc[list(_TRANSPORT_METRICS), cols]
        after = self.recalibrated_metrics.loc[list(_TRANSPORT_METRICS), cols]
        after.columns = ["recalibrated", "recalibrated_lower", "recalibrated_upper"]
        return pd.concat([before, after], axis=1)

    def plot_calibration(self) -> Figure:
        """Calibration of the model as trained and recalibrated, on the new data.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return _calibration_figure(
            self.y,
            {"as trained": self.p, "intercept-recalibrated": self.p_recalibrated},
            title="Calibration on the validation data",
        )


def _recalibrated_model(rm: RiskModel, data: _EvalData) -> RiskModel:
    from plo_risk.models import recalibrate

    new = recalibrate(rm.model, X=data.X, y=data.y)
    shift = float(new.intercept_ - rm.model.intercept_)
    info = rm.info
    note = {
        "from_model_version": rm.version,
        "from_source": getattr(rm, "source", None),
        "intercept_before": float(rm.model.intercept_),
        "intercept_after": float(new.intercept_),
        "shift": shift,
        "data": data.description,
        "n": int(len(data.y)),
        "n_events": int(data.y.sum()),
        "method": "intercept (calibration-in-the-large), plo_risk.models.recalibrate",
    }
    if info is not None:
        info = dataclasses.replace(
            info,
            model_version=f"{info.model_version}-recal-"
            f"{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}",
            extra={**info.extra, "recalibration": note},
        )
    return RiskModel(new, info, catalog=rm.catalog)


def _external(
    rm: RiskModel, data: _EvalData, *, n_boot: int, ci: float, seed: int
) -> ExternalValidation:
    p = rm.model.predict_proba(data.X)[:, 1]
    recal = _recalibrated_model(rm, data)
    p2 = recal.model.predict_proba(data.X)[:, 1]
    kw = {"thresholds": rm.thresholds, "n_boot": n_boot, "ci": ci, "seed": seed}
    return ExternalValidation(
        model=rm,
        recalibrated=recal,
        metrics=_metrics(data.y, p, **kw),
        recalibrated_metrics=_metrics(data.y, p2, **kw),
        n_input=data.n_input,
        n_rejected=data.n_rejected,
        description=data.description,
        y=data.y,
        p=p,
        p_recalibrated=p2,
    )


def external_validation(
    model: Any,
    data: pd.DataFrame | str | Path,
    *,
    units: Mapping[str, str] | None = None,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> ExternalValidation:
    """Transported performance of a model on new data, and its intercept update.

    The data are validated against the catalog (bad rows are counted and left
    out), the model predicts every valid row, and discrimination and calibration
    are measured with confidence intervals. The model is then recalibrated to the
    new data by its intercept only (calibration-in-the-large:
    :func:`plo_risk.models.recalibrate` with ``X=`` and ``y=``), which fixes a
    shift in prevalence and keeps the ranking, and measured again. The
    recalibrated intercept is fitted on the same data it is measured on, so its
    calibration-in-the-large is 0 by construction; its slope and ICI are the
    informative numbers.

    Parameters
    ----------
    model : RiskModel, PlattCalibratedClassifier, str or Path
        The model, or a bundle folder or MLflow URI for :meth:`RiskModel.load`.
    data : pandas.DataFrame, str or Path
        Validation data with the observed outcome column ``fracture`` (0/1), as a
        frame or a .csv/.parquet file.
    units : Mapping, default=None
        Alternate units of whole columns, as in
        :func:`plo_risk.schema.validate_frame`.
    n_boot : int, default=200
        Bootstrap replicates of the confidence intervals.
    ci : float, default=0.95
        Confidence level.
    seed : int, default=0
        Seed of the bootstrap.

    Returns
    -------
    ExternalValidation

    Raises
    ------
    FileNotFoundError
        If ``data`` or the model is not found.
    ValueError
        If the data have no ``fracture`` column, no valid rows, or only one
        outcome class.

    Examples
    --------
    >>> from plo_risk.models import make_model
    >>> from plo_risk.report import external_validation
    >>> from plo_risk.schema import validate_frame
    >>> from plo_risk.synthetic import generate_cohort
    >>> train = validate_frame(generate_cohort(2_000, seed=1)).valid
    >>> model = make_model("xgboost", params={"n_estimators": 20, "n_jobs": 1}, cv=2)
    >>> model = model.fit(train, train["fracture"])
    >>> ev = external_validation(model, generate_cohort(2_000, seed=2), n_boot=20)
    >>> abs(ev.recalibrated_calibration_intercept) < 1e-6
    True
    """
    rm = _as_risk_model(model)
    data_ = _eval_data(data, units, rm.catalog, "data")
    return _external(rm, data_, n_boot=n_boot, ci=ci, seed=seed)


# ------------------------------------------------------------------- plots


def _png(fig: Figure, *, close: bool = False) -> str:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        if close:  # a pyplot figure (plo_risk.explain's plots) stays open otherwise
            import matplotlib.pyplot as plt

            plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 5.5, height: float = 4.5) -> Figure:
    # A bare Figure (no pyplot): no global backend or state is touched.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _smoothed(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ICI's smoothed calibration curve (restricted cubic spline), thinned."""
    from plo_risk.evaluation import _sorted_rows, _spline_curve_rows

    rows = _sorted_rows(y.astype(np.float64), p.astype(np.float64))
    curve = _spline_curve_rows(rows)
    idx = np.unique(np.linspace(0, len(rows.p) - 1, 200).astype(int))
    return rows.p[idx], curve[idx]


def _calibration_figure(
    y: np.ndarray, curves: Mapping[str, np.ndarray], *, title: str
) -> Figure:
    from plo_risk.evaluation import calibration_curve

    fig = _figure()
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
        xs, ys = _smoothed(y, p)
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


def _roc_figure(y: np.ndarray, p: np.ndarray, auroc: float, name: str) -> Figure:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    fig = _figure(4.8, 4.5)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC curve")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _decision_range(prevalence: float, thresholds: Mapping[str, float]) -> np.ndarray:
    hi = min(max(max(thresholds.values(), default=0.1) * 2, 4 * prevalence), 0.5)
    lo = min(max(prevalence / 4, 1e-4), hi / 10)
    return np.linspace(lo, hi, 80)


def _decision_figure(
    y: np.ndarray, p: np.ndarray, thresholds: Mapping[str, float], name: str
) -> Figure:
    from plo_risk.evaluation import decision_curve

    grid = _decision_range(float(y.mean()), thresholds)
    dc = decision_curve(y, p, grid)
    fig = _figure(6, 4.2)
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


def _importance_figure(importance: pd.Series, labels: Mapping[str, str]) -> Figure:
    top = importance.head(15)[::-1]
    fig = _figure(6, 4.8)
    ax = fig.add_subplot()
    ax.barh([labels.get(f, f) for f in top.index], top.to_numpy(), color="C0")
    ax.set_xlabel("mean |contribution| to the log-odds of fracture")
    ax.set_title("Global importance (SHAP)")
    ax.tick_params(axis="y", labelsize=8)
    return fig


# -------------------------------------------------------------------- HTML

_e = html.escape

_CSS = """
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


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _e(str(x))
    if not math.isfinite(v):
        return "–"
    if abs(v) < 1e-9:  # rounding noise of an exact 0 (a refitted intercept)
        v = 0.0
    if v == 0 or abs(v) >= 0.1:
        return f"{v:.3f}"
    return f"{v:#.2g}"


def _ci(row: Mapping[str, Any]) -> str:
    est, lo, hi = row.get("estimate"), row.get("lower"), row.get("upper")
    if (
        lo is None
        or hi is None
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi))
    ):
        return _fmt(est)
    return f"{_fmt(est)} ({_fmt(lo)} to {_fmt(hi)})"


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()):
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
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


def _img(b64: str, alt: str, caption: str, plot_id: str) -> str:
    return (
        f'<figure id="plot-{plot_id}"><img alt="{_e(alt)}" '
        f'src="data:image/png;base64,{b64}"><figcaption>{caption}</figcaption>'
        "</figure>"
    )


def _metric_label(name: str) -> tuple[str, str]:
    base, _, at = name.partition("@")
    label, why = _METRIC_LABELS.get(base, (base, ""))
    if at:
        label = f"{label} at the '{at}' threshold"
    return label, why


def _metrics_table(table: pd.DataFrame, names: list[str] | None = None) -> str:
    rows = []
    for name in names or list(table.index):
        if name not in table.index:
            continue
        label, why = _metric_label(str(name))
        row = table.loc[name]
        rows.append([_e(label), _ci(row.to_dict()), _e(why)])
    level = table.attrs.get("ci", 0.95)
    return _table(
        ["measure", f"estimate ({level:.0%} CI)", "what it measures"], rows, {1}
    )


def _section(anchor: str, body: str) -> str:
    title = dict(SECTIONS)[anchor]
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _datasheet_text() -> str | None:
    path = Path(__file__).resolve().parent.parent / _DATASHEET
    return path.read_text(encoding="utf-8") if path.is_file() else None


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
    import mlflow

    from plo_risk.training import ensure_tracking_uri

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
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    from plo_risk.training import ensure_tracking_uri

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
    """

    path: Path
    mlflow_run_id: str | None
    n_input: int
    n_rejected: int
    n: int
    n_events: int
    metrics: pd.DataFrame = field(repr=False)


def _typical_patient(X: pd.DataFrame, catalog) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for name in _TYPICAL_FIELDS:
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


def _example_html(rm: RiskModel, record: dict, title: str, source: str, key: str):
    from plo_risk.explain import plot_waterfall
    from plo_risk.schema import ValidationError

    try:
        a = rm.assess(record)
    except ValidationError as exc:
        return f"<h3>{_e(title)}</h3><p>Not assessed: {_e(str(exc))}</p>", None
    interval = a.interval
    risk = f"{a.risk:.2%} ({_e(a.category)})"
    if interval:
        risk += f", 90% interval {interval[0]:.2%} to {interval[1]:.2%}"
    given = "; ".join(
        f"{_e(rm.catalog[k].label)} = {_e(str(v))}" for k, v in record.items()
    )
    factors = "".join(f"<li>{_e(f.describe())}</li>" for f in a.top_factors(5))
    fig = plot_waterfall(rm.model, rm._frame(a.record), max_display=10)
    b64 = _png(fig, close=True)
    body = (
        f"<h3>{_e(title)}</h3><p>{_e(source)}</p><p>Inputs: {given}. "
        "Everything else not given.</p>"
        f"<p>Estimated risk: <strong>{risk}</strong>. Largest contributions:</p>"
        f"<ul>{factors}</ul>"
        + _img(
            b64,
            f"SHAP waterfall of {title}",
            "From the model's base log-odds (bottom) to this patient's calibrated "
            "log-odds (top): each bar is one input field's contribution.",
            f"waterfall-{key}",
        )
    )
    return body, b64


def _explanations(rm: RiskModel, X: pd.DataFrame, seed: int) -> str:
    from plo_risk.explain import contributions, plot_beeswarm

    labels = {f.name: f.label for f in rm.catalog}
    sample = X.sample(min(len(X), _SHAP_ROWS), random_state=seed) if len(X) else X
    values = contributions(rm.model, sample, by="field").values
    importance = values.abs().mean(axis=0).sort_values(ascending=False, kind="stable")
    rows = [
        [_e(labels.get(f, f)), f"<code>{_e(f)}</code>", f"{v:.4f}"]
        for f, v in importance.head(15).items()
    ]
    bar = _png(_importance_figure(importance, labels))
    bee = _png(plot_beeswarm(rm.model, sample, max_display=15), close=True)
    ex1, _ = _example_html(
        rm,
        dict(SEED_CASE),
        "Example patient 1: a published PLO case",
        "From seed Table 3 row 9 (ref 12): 35 years, third pregnancy, 2 months "
        "postpartum, lumbar spine BMD 0.687 g/cm², total femur BMD 0.815 g/cm²; "
        "2 months of breastfeeding are assumed.",
        "seed-case",
    )
    typical = _typical_patient(X, rm.catalog)
    ex2, _ = _example_html(
        rm,
        typical,
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
        + _table(["field", "name", "mean |contribution|"], rows, {2})
        + _img(
            bar,
            "Global importance bar chart",
            "Mean absolute contribution per input field (15 largest).",
            "importance",
        )
        + _img(
            bee,
            "SHAP beeswarm",
            "Each dot is a patient: position is the "
            "field's contribution, colour the field's value.",
            "beeswarm",
        )
        + ex1
        + ex2
    )


def _characteristics(rm: RiskModel, data: _EvalData) -> str:
    ref = rm.reference
    X = data.X
    rows = []
    for f in rm.catalog:
        if f.name not in X.columns or f.derived_from:
            continue
        s = X[f.name]
        miss = f"{s.isna().mean():.0%}"
        dev = ref.get(f.name)
        if f.dtype == "category":
            counts = s.value_counts(normalize=True)
            ev = ", ".join(f"{_e(str(k))} {v:.0%}" for k, v in counts.head(4).items())
            devtext = ", ".join(_e(str(d)) for d in dev) if dev else "–"
        elif f.dtype == "bool":
            v = s.dropna()
            ev = f"{v.mean():.1%} yes" if len(v) else "–"
            devtext = "–"
        else:
            v = pd.to_numeric(s, errors="coerce").dropna()
            ev = (
                " / ".join(_fmt(q) for q in np.quantile(v, [0.1, 0.5, 0.9]))
                if len(v)
                else "–"
            )
            devtext = " / ".join(_fmt(q) for q in dev) if dev else "–"
        rows.append(
            [_e(f.label), f"<code>{_e(f.name)}</code>", _e(f.unit), miss, ev, devtext]
        )
    prev_dev = (
        rm.info.training_data.get("prevalence") if rm.info else None
    ) or getattr(rm.model, "prevalence_", None)
    outcome = (
        f"<p>Outcome: {int(data.y.sum()):,} fractures in {len(data.y):,} evaluated "
        f"rows (prevalence {data.y.mean():.3%}); development data prevalence "
        f"{_fmt(prev_dev) if prev_dev is not None else 'not recorded'}"
        f"{f' ({prev_dev:.3%})' if prev_dev is not None else ''}.</p>"
    )
    return (
        outcome
        + "<p>Numbers: 10th / 50th / 90th percentile; yes/no fields: share yes; "
        "ancestry: most common groups. The development column shows the reference "
        "values stored in the model bundle (the same percentiles of the training "
        "data, aggregates only; most common groups for ancestry), when present.</p>"
        + _table(
            ["field", "name", "unit", "missing", "evaluation data", "development data"],
            rows,
        )
    )


def _predictors(rm: RiskModel) -> str:
    from plo_risk.features import ENGINEERED_FEATURES

    rows = [
        [
            f"<code>{_e(f.name)}</code>",
            _e(f.label),
            _e(f.group),
            _e(f.unit or ("yes/no" if f.dtype == "bool" else "")),
            _e(f.values_text()),
            "yes" if f.missing else "no (required)",
            "yes" if f.modifiable else "no",
            _e(f.direction),
            _e(f.reference),
        ]
        for f in rm.catalog
    ]
    eng = [[f"<code>{_e(k)}</code>", _e(v)] for k, v in ENGINEERED_FEATURES.items()]
    return (
        f"<p>The {len(rm.catalog)} input fields of the feature catalog "
        "(<code>features/catalog.yaml</code>, sha256 "
        f"<code>{rm.catalog.sha256[:12]}…</code>), chosen from the literature "
        "(the seed review and the sources cited per field) before any model was "
        "fitted; there is no data-driven selection. All are offered to every model. "
        "Each is defined at the assessment (third trimester to 18 months "
        "postpartum), in the canonical unit shown; alternate units are converted "
        "on input. <em>Direction</em> is the expected effect of a higher value and "
        "is a monotone constraint of the xgboost model.</p>"
        + _table(
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
        + _table(["name", "definition and source"], eng)
    )


def _missing_data(rm: RiskModel, data: _EvalData) -> str:
    required = ", ".join(
        f"<code>{_e(f.name)}</code>" for f in rm.catalog if not f.missing
    )
    kind = _model_kind(rm)
    if kind == "logistic_regression":
        how = (
            "The spline logistic regression imputes the training median and adds "
            "a <code>&lt;field&gt;_missing</code> indicator for often-missing "
            "fields."
        )
    elif kind == "clinical_rule":
        how = (
            "The clinical rule puts patients without any Z-score in their own "
            "'no DXA' group with its observed fracture rate."
        )
    else:
        how = (
            "Tree models take a missing value as information: each split learns "
            "the branch for missing values (xgboost's default direction), so no "
            "value is imputed."
        )
    top = ""
    if len(data.rejects):
        counts = (
            data.rejects.groupby(["field", "reason"])
            .size()
            .sort_values(ascending=False)
            .head(10)
        )
        top = "<p>Most common reasons for rejection (cells):</p>" + _table(
            ["field", "reason", "cells"],
            [
                [f"<code>{_e(str(k[0]))}</code>", _e(str(k[1])), f"{v:,}"]
                for k, v in counts.items()
            ],
            {2},
        )
    return (
        "<p>Missing inputs are expected: DXA and bone-turnover markers are not "
        "routine in young women (DESIGN; generator: DXA after delivery in 8% of the "
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
    name = _model_name(rm)
    params = _model_params(rm)
    prow = [[f"<code>{_e(str(k))}</code>", _e(str(v))] for k, v in params.items()]
    meta = [
        ["model", _e(name)],
        ["model version", _e(rm.version)],
        ["created", _e(info.created if info else "–")],
        ["loaded from", _e(str(getattr(rm, "source", None) or "in memory"))],
        [
            "experiment",
            _e(str((info.extra.get("experiment") if info else None) or "–")),
        ],
        ["MLflow run", _e(str((info.extra.get("run_id") if info else None) or "–"))],
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
        ["catalog sha256", f"<code>{_e(rm.catalog.sha256)}</code>"],
    ]
    if info:
        meta.append(
            [
                "library versions",
                _e(", ".join(f"{k} {v}" for k, v in sorted(info.versions.items()))),
            ]
        )
        td = info.training_data or {}
        if td:
            meta.append(
                ["training data", _e(", ".join(f"{k} {v}" for k, v in td.items()))]
            )
    steps = " → ".join(
        f"<code>{_e(s)}</code>" for s, _ in getattr(m.estimator_, "steps", [])
    )
    dev = ""
    if info and info.metrics:
        dev_rows = []
        for k, v in info.metrics.items():
            if isinstance(v, Mapping):
                label, _ = _metric_label(str(k))
                dev_rows.append([_e(label), _ci(v)])
        dev = "<h3>Held-out performance at development (from the bundle)</h3>" + _table(
            ["measure", "estimate (CI)"], dev_rows, {1}
        )
    return (
        f"<p>A <strong>{_e(name)}</strong> model of <code>plo_risk.models</code>: "
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
        + _table(["", ""], meta)
        + "<h3>Hyperparameters</h3>"
        + (_table(["parameter", "value"], prow) if prow else "<p>None recorded.</p>")
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
        f"{_e(str((info.versions.get('plo_risk') if info else None) or '–'))}.</p>"
    )


def _performance(table: pd.DataFrame, n_boot: int, data: _EvalData) -> str:
    main = list(_TRANSPORT_METRICS)
    rest = [m for m in table.index if m not in main]
    oracle = ""
    if data.true_risk is not None:
        from plo_risk.evaluation import auroc, brier

        oracle = (
            "<p>The data carry the generator's own risk (<code>true_risk</code>, the "
            "oracle): its AUROC on the same rows is "
            f"{auroc(data.y, data.true_risk):.3f} and its Brier score "
            f"{_fmt(brier(data.y, data.true_risk))}, the best any model can "
            "reach on these rows.</p>"
        )
    return (
        f"<p>On {len(data.y):,} rows with {int(data.y.sum()):,} events. Intervals: "
        f"percentile bootstrap, {n_boot} replicates of the rows "
        "(<code>plo_risk.evaluation.evaluate</code>); the observed/expected ratio "
        "uses a delta-method interval on the log scale (Debray et al., BMJ "
        "2017;356:i6460). Discrimination (AUROC, AUPRC), overall accuracy (Brier), "
        "calibration (slope, intercept, O/E, ICI) and clinical utility at the "
        "model's thresholds (sensitivity, specificity, PPV, NPV, net benefit) are "
        "reported, as TRIPOD+AI 12e asks.</p>"
        + oracle
        + _metrics_table(table, main)
        + "<h3>At the model's risk thresholds</h3>"
        + (_metrics_table(table, rest) if rest else "<p>No thresholds stored.</p>")
    )


def _subgroups(
    y: np.ndarray, p: np.ndarray, X: pd.DataFrame, n_boot: int, ci: float, seed: int
) -> str:
    from plo_risk.evaluation import age_band, evaluate_subgroups, parity_band

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
        ratio, lo, hi = _oe_ratio(y[mask], p[mask], ci)
        rows.append(
            [
                _e(str(sub)),
                _e(str(level)),
                f"{n:,}",
                f"{events:,}",
                _ci(by.loc["auroc"].to_dict()),
                _ci(by.loc["calibration_intercept"].to_dict()),
                _ci({"estimate": ratio, "lower": lo, "upper": hi}),
                _ci(by.loc["brier"].to_dict()),
            ]
        )
    return (
        "<p>Known inequalities: the seed review notes that PLO may be more common "
        "but under-diagnosed and under-treated in developing countries, with "
        "multiparity, prolonged lactation and malnutrition (seed Introduction, "
        "refs 11, 14-16), and that management should be personalised by parity, "
        "lactation, societal status, age, ethnicity and race (seed Abstract). "
        "Performance is therefore reported by age band, ancestry and parity, "
        f"each with {ci:.0%} bootstrap intervals ({n_boot} replicates within the "
        "subgroup; the O/E interval is the delta-method one of the Performance "
        "section); no fairness constraint was imposed on the model, so "
        "differences here are the fairness assessment (TRIPOD+AI 14). Subgroups "
        "with few events have wide intervals; metrics that need both outcomes are "
        "blank where a subgroup has none.</p>"
        + _table(
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
        label, _ = _metric_label(str(name))
        rows.append(
            [
                _e(label),
                _ci(
                    {
                        "estimate": row["estimate"],
                        "lower": row["lower"],
                        "upper": row["upper"],
                    }
                ),
                _ci(
                    {
                        "estimate": row["recalibrated"],
                        "lower": row["recalibrated_lower"],
                        "upper": row["recalibrated_upper"],
                    }
                ),
            ]
        )
    b64 = _png(ext.plot_calibration())
    prev_train = float(rm.model.prevalence_)
    prev_new = float(ext.y.mean())
    return (
        "<p>A model fitted in one setting over- or under-predicts in another when "
        "the outcome is more or less common there: the referral cohorts are "
        "enriched for cases (prevalence 5% by default) while PLO fractures occur "
        "in about 460 per million deliveries in the population (params sheet B, "
        "Kasahara 2024; data/synthetic/DATASHEET.md). With Platt calibration such a "
        "shift is an intercept change, which keeps the ranking (AUROC) and the "
        "explanations: <code>plo_risk.models.recalibrate(model, "
        "prevalence=...)</code> for a known prevalence, or <code>recalibrate(model, "
        "X=..., y=...)</code> to match observed outcomes (calibration-in-the-large), "
        "also from the shell: <code>plo-risk validate --model ... --data ... "
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
        + _table(["measure", "as trained", "intercept-recalibrated"], rows, {1, 2})
        + _img(
            b64,
            "Calibration before and after intercept recalibration",
            "Deciles of predicted risk with 95% Wilson intervals and the "
            "smoothed (spline) calibration curve, before and after "
            "recalibrating the intercept to these data.",
            "recalibration",
        )
    )


def _interpretation(table: pd.DataFrame, data: _EvalData) -> str:
    auc = table.loc["auroc"]
    slope = table.loc["calibration_slope", "estimate"]
    cil = table.loc["calibration_intercept", "estimate"]
    oe = table.loc["oe_ratio", "estimate"]
    parts = [f"The model discriminates with an AUROC of {_ci(auc.to_dict())}."]
    if data.true_risk is not None:
        from plo_risk.evaluation import auroc

        parts.append(
            f"The generator's own risk reaches {auroc(data.y, data.true_risk):.3f} "
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
            f"{cal} (intercept {cil:.2f}, O/E {_fmt(oe)}); the calibration slope is "
            f"{_fmt(slope)} (1 is ideal)."
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
older, mostly postmenopausal cohorts (Marshall 1996, Kanis 2004, Vestergaard 2003);
applying them to women of 20-40 is an extrapolation (data/synthetic/DATASHEET.md,
Known limits; params sheet H.6).</li>
<li><strong>Tuned or assumed parameters.</strong> The threshold slope below Z -2, the
lactational-deficit weight, the vitamin D × lactation relative risk and the referral
shifts were set so that referral cases resemble seed Table 3; most risk-factor
prevalences are assumptions (params sheet D); marker multipliers other than CTX ×2
are assumptions, only their direction is from seed Table 1.</li>
<li><strong>No treatment, no follow-up.</strong> The generator models no weaning
advice, calcium or vitamin D prescription, teriparatide, denosumab or
bisphosphonates (seed Table 3) and no treatment effect (TRIPOD+AI 6c), one
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
        "(seed Abstract and Introduction, refs 10-12). Established fracture tools "
        "were built for older adults: FRAX for ages 40-90 (Kanis JA et al., "
        "Osteoporos Int 2008;19:385), QFracture on ages 30-85 (Hippisley-Cox J, "
        "Coupland C, BMJ 2009;339:b4229) and Garvan on ages 60 and over (Nguyen "
        "ND et al., Osteoporos Int 2008;19:1431); none uses parity or lactation, "
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
        "common and less often diagnosed in developing countries (seed "
        "Introduction, refs 11, 14-16); see "
        '<a href="#subgroups">Subgroups</a>.</p>'
    )


def _data_section(rm: RiskModel, data: _EvalData, datasheet: str | None) -> str:
    info = rm.info
    td = (info.training_data if info else None) or {}
    synthetic = data.true_risk is not None
    n_valid, events = len(data.y), int(data.y.sum())
    dev_rows = td.get("n_rows") or getattr(rm.model, "n_train_", None)
    dev_prev = td.get("prevalence", getattr(rm.model, "prevalence_", None))
    flow = _table(
        ["", "development (training)", "evaluation (this card)"],
        [
            [
                "source",
                _e(
                    str(
                        (info.extra.get("experiment") if info else None)
                        and f"experiment {info.extra['experiment']}"
                        or "recorded in the bundle"
                    )
                ),
                _e(
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
            ["data fingerprint (sha256)", _e(str(td.get("sha256", "–"))[:16]), "–"],
        ],
        {1, 2},
    )
    sheet = ""
    if datasheet:
        sheet = (
            '<details id="datasheet"><summary>The generator\'s datasheet '
            "(data/synthetic/DATASHEET.md, embedded)</summary>"
            f"<pre>{_e(datasheet)}</pre></details>"
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
        f"{_e(info.created if info else 'in memory')} and this card on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d')}.</p>"
        "<p><strong>Setting and eligibility.</strong> One row is one pregnancy "
        "episode of one woman, assessed once between the third trimester and 18 "
        "months postpartum. <em>Population</em>: all deliveries (prevalence 4.6e-4, "
        "params sheet B, Kasahara 2024). <em>Referral</em>: women referred for "
        "bone assessment, with lower bone mass, more risk factors and an enriched "
        "prevalence (0.05 by default; DATASHEET, The referral setting). No centres "
        "or countries. Eligibility is the catalog: a row is analysed when its "
        "values pass validation and the outcome is 0 or 1.</p>"
        "<p><strong>Flow of rows and sample size.</strong> Development data as "
        "recorded in the bundle (held-out data of the experiment are reported in "
        "its MLflow run); evaluation data as given to this card. The evaluation "
        "data differ from the development data only as shown here and in "
        '<a href="#characteristics">Characteristics</a> (same predictors and '
        "outcome definition; the setting may differ).</p>" + flow + sheet
    )


def _outcome() -> str:
    return (
        "<p><code>fracture</code> = 1: a fragility fracture (vertebral or other "
        "low-trauma) from the third trimester to 18 months postpartum, the window "
        "the PLO cohorts use (seed Table 3 row 4, ref 49: osteoporosis during "
        "terminal pregnancy or within 18 months post-delivery; onset third "
        "trimester to early postpartum, seed Introduction, ref 12). The horizon is "
        "the end of that window, whatever the assessment time. In synthetic "
        "cohorts the outcome is drawn from the generator's risk: about 80% of the "
        "risk is vertebral, driven by the projected spine nadir (RR 2.3 per SD, "
        "Marshall 1996, params sheet E), and about 20% hip or other (params "
        "sheet B: p(vertebral | PLO) about 0.8), driven by the femoral neck (RR "
        "2.6 per SD of hip BMD, Marshall 1996, params sheet E); the same way in "
        "every group, so outcome "
        "assessment does not differ by sociodemographic group. Rationale: "
        "fractures are the clinically important consequence of PLO (seed "
        "Abstract).</p>"
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
                _e(name),
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
            _table(["category", "risk"], rows)
            if th
            else "<p>No thresholds stored; the output is the probability only.</p>"
        )
    )


def _tripod_section() -> str:
    citation, items = _checklist()
    titles = dict(SECTIONS) | {"title": "Title"}
    rows = []
    for it in items:
        if it.answered_in:
            where = ", ".join(
                f'<a href="#{a}">{_e(titles[a])}</a>' for a in it.answered_in
            )
        else:
            where = f'<span class="na">Not applicable: {_e(it.not_applicable)}</span>'
        if it.note:
            where += f"<br><small>{_e(it.note)}</small>"
        rows.append(
            f'<tr id="tripod-{_e(it.id)}"><td><strong>{_e(it.id)}</strong></td>'
            f"<td>{_e(it.section)}: {_e(it.topic)}</td><td>{_e(it.text)}</td>"
            f"<td>{where}</td></tr>"
        )
    return (
        f"<p>{_e(citation)} doi:10.1136/bmj-2023-078378. All 27 items with their "
        "sub-items (paraphrased; the statement has the full wording), each linked "
        "to the section of this card that answers it, or with the reason it does "
        "not apply. The checklist ships with the package "
        "(<code>plo_risk/report_tripod_ai.yaml</code>).</p>"
        "<table><thead><tr><th>item</th><th>topic</th><th>what it asks</th>"
        f"<th>where answered</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _summary(rm: RiskModel, data: _EvalData, table: pd.DataFrame) -> str:
    name = _model_name(rm)
    return (
        f"<p>A <strong>{_e(name)}</strong> model (version {_e(rm.version)}) "
        "predicting a fragility fracture from the third trimester to 18 months "
        "postpartum in pregnancy- and lactation-associated osteoporosis, "
        f"evaluated on {len(data.y):,} rows ({int(data.y.sum()):,} fractures; "
        f"{data.n_rejected:,} of {data.n_input:,} rows rejected by validation). "
        f"AUROC {_ci(table.loc['auroc'].to_dict())}; calibration intercept "
        f"{_ci(table.loc['calibration_intercept'].to_dict())}, slope "
        f"{_ci(table.loc['calibration_slope'].to_dict())}; O/E "
        f"{_ci(table.loc['oe_ratio'].to_dict())}; Brier "
        f"{_ci(table.loc['brier'].to_dict())}.</p>"
        '<p class="warn">Synthetic data with extrapolated effect sizes: for '
        "research and software testing, not for clinical decisions (see "
        '<a href="#limitations">Limitations</a>).</p>'
    )


def _render(
    rm: RiskModel,
    data: _EvalData,
    *,
    n_boot: int,
    ci: float,
    seed: int,
    title: str | None,
) -> tuple[str, pd.DataFrame]:
    ext = _external(rm, data, n_boot=n_boot, ci=ci, seed=seed)
    table = ext.metrics
    p = ext.p
    name = _model_name(rm)
    auc = float(table.loc["auroc", "estimate"])
    cal = _png(_calibration_figure(data.y, {name: p}, title="Calibration"))
    roc = _png(_roc_figure(data.y, p, auc, name))
    dca = _png(_decision_figure(data.y, p, rm.thresholds, name))
    heading = title or (
        f"Model card: {name} model predicting fragility fracture from the third "
        "trimester to 18 months postpartum in pregnancy- and lactation-associated "
        "osteoporosis (development and evaluation)"
    )
    body = {
        "summary": _summary(rm, data, table),
        "intended-use": _intended_use(rm),
        "data": _data_section(rm, data, _datasheet_text()),
        "characteristics": _characteristics(rm, data),
        "outcome": _outcome(),
        "predictors": _predictors(rm),
        "missing-data": _missing_data(rm, data),
        "model": _model_section(rm),
        "output": _output_section(rm),
        "performance": _performance(table, n_boot, data),
        "calibration": "<p>Observed against predicted risk (TRIPOD+AI 12e, 23a). "
        f"Calibration slope {_ci(table.loc['calibration_slope'].to_dict())}, "
        f"intercept {_ci(table.loc['calibration_intercept'].to_dict())}, ICI "
        f"{_ci(table.loc['ici'].to_dict())}.</p>"
        + _img(
            cal,
            "Calibration plot",
            "Deciles of predicted risk with 95% "
            "Wilson intervals of the observed rate, and the smoothed "
            "(restricted cubic spline) calibration curve used by the ICI.",
            "calibration",
        ),
        "discrimination": _img(
            roc, "ROC curve", f"AUROC {_ci(table.loc['auroc'].to_dict())}.", "roc"
        ),
        "decision-curve": "<p>Net benefit of using the model to decide, against "
        "treating (or investigating) every woman or none, over a range of risk "
        "thresholds (Vickers & Elkin, Med Decis Making 2006;26:565). Dotted lines "
        "mark the model's stored thresholds.</p>"
        + _img(
            dca,
            "Decision curve",
            "Net benefit over threshold probabilities.",
            "decision-curve",
        ),
        "explanations": _explanations(rm, data.X, seed),
        "subgroups": _subgroups(data.y, p, data.X, min(n_boot, 100), ci, seed),
        "recalibration": _recalibration(ext, rm),
        "interpretation": _interpretation(table, data),
        "limitations": _LIMITATIONS,
        "tripod-ai": _tripod_section(),
    }
    nav = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in SECTIONS)
    sections = "".join(_section(a, body[a]) for a, _ in SECTIONS)
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>"
        f'<header id="title"><h1>{_e(heading)}</h1><p class="meta">plo_risk model '
        f"card · model version {_e(rm.version)} · generated "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} · TRIPOD+AI "
        "(Collins et al., BMJ 2024;385:e078378)</p></header>"
        f"<nav><ol>{nav}</ol></nav>{sections}</body></html>\n"
    )
    return doc, table


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
    >>> from plo_risk.models import make_model
    >>> from plo_risk.report import model_card
    >>> from plo_risk.schema import validate_frame
    >>> from plo_risk.synthetic import generate_cohort
    >>> train = validate_frame(generate_cohort(2_000, seed=1)).valid
    >>> model = make_model("xgboost", params={"n_estimators": 20, "n_jobs": 1}, cv=2)
    >>> model = model.fit(train, train["fracture"])
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "card.html"
    >>> card = model_card(model, generate_cohort(2_000, seed=2), out, n_boot=10)
    >>> card.path.is_file(), card.n_rejected, 'id="tripod-27c"' in out.read_text()
    (True, 0, True)
    """
    rm = _as_risk_model(model)
    data = _eval_data(eval_data, units, rm.catalog, "eval_data")
    text, table = _render(rm, data, n_boot=n_boot, ci=ci, seed=seed, title=title)
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
        metrics=table,
    )

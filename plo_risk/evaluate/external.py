"""How a model transports to new data: external validation and its data.

:func:`external_validation` measures how a model transports to another setting
(e.g. a model trained on a referral cohort, used in the population): AUROC, Brier
score, calibration slope and intercept (calibration-in-the-large), the
observed/expected ratio and the ICI, each with a confidence interval, before and
after an intercept recalibration to the new setting
(:func:`plo_risk.model.recalibrate` with ``X=`` and ``y=``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from plo_risk.data.schema import (
    ID_COLUMN,
    OUTCOME_COLUMN,
    Problem,
    ValidatedFrame,
    ValidationError,
    validate_frame,
)
from plo_risk.evaluate.metrics import evaluate
from plo_risk.evaluate.plots import calibration_figure
from plo_risk.model.calibration import PlattCalibratedClassifier, recalibrate
from plo_risk.model.horizon import follow_up
from plo_risk.serve.risk_model import RiskModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "TRANSPORT_METRICS",
    "EvalData",
    "ExternalValidation",
    "as_risk_model",
    "external",
    "external_validation",
    "load_eval_data",
    "metrics_table",
    "oe_ratio",
    "read_table",
    "recalibrated_model",
]

#: The metrics that say how a model transports, in the order tables show them.
TRANSPORT_METRICS = (
    "auroc",
    "auprc",
    "brier",
    "calibration_slope",
    "calibration_intercept",
    "oe_ratio",
    "ici",
)


@dataclass
class EvalData:
    """Evaluation rows with their observed outcome, validated against the catalog.

    Attributes
    ----------
    X : pandas.DataFrame
        The valid rows' model inputs (catalog fields, canonical units).
    y : numpy.ndarray
        Their outcome, 0/1.
    true_risk : numpy.ndarray or None
        The generator's own risk (the oracle), when the data are synthetic.
    n_input, n_rejected : int
        Rows given and rows rejected by validation.
    rejects : pandas.DataFrame
        One row per bad cell, with its reason.
    description : str
        Where the data came from.
    validated : ValidatedFrame
        The whole validation result, for :meth:`RiskModel.predict_frame`.
    """

    X: pd.DataFrame
    y: np.ndarray
    true_risk: np.ndarray | None
    n_input: int
    n_rejected: int
    rejects: pd.DataFrame
    description: str
    validated: ValidatedFrame = field(repr=False)
    #: Months after the assessment to the first fracture or the end of follow-up
    #: and whether it was a fracture, when the data have ``fracture_month``.
    time: np.ndarray | None = field(default=None, repr=False)
    event: np.ndarray | None = field(default=None, repr=False)
    #: The oracle's risk at each horizon (``"3m"``, ``"6m"``, ``"12m"``, ``"end"``)
    #: when the data are synthetic with every horizon's ``true_risk_<h>m``.
    true_risks: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def risk(self, model: RiskModel) -> np.ndarray:
        """The model's calibrated risk of every valid row."""
        out = model.predict_frame(self.validated)
        return out["risk"].to_numpy(dtype=np.float64)[self.validated.valid_mask]


def as_risk_model(model: Any) -> RiskModel:
    """A :class:`RiskModel` of what the caller passed (a model, a path, a URI)."""
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


def read_table(data: Any, name: str) -> tuple[pd.DataFrame, str]:
    """A frame, or a .csv/.parquet file read into one, and how to describe it."""
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


def load_eval_data(
    data: Any, units: Mapping[str, str] | None, catalog, name: str
) -> EvalData:
    """Read and validate evaluation data; refuse data that cannot evaluate a model.

    Raises ValueError (naming ``name``) when the outcome column is absent, every
    row is rejected, or the valid rows hold only one outcome class.
    """
    df, description = read_table(data, name)
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
    time, event = None, None
    rows = df.iloc[np.flatnonzero(res.valid_mask)]
    if "fracture_month" in df.columns:
        try:
            time, event = follow_up(rows)
        except ValueError as exc:
            raise ValidationError(
                [Problem("fracture_month", "", f"{name}: {exc}")]
            ) from None
    true_risks = None
    columns = {"3m": "true_risk_3m", "6m": "true_risk_6m", "12m": "true_risk_12m"}
    if true_risk is not None and all(c in df.columns for c in columns.values()):
        true_risks = {k: rows[c].to_numpy(dtype=np.float64) for k, c in columns.items()}
        true_risks["end"] = true_risk
    return EvalData(
        valid.drop(columns=drop),
        y,
        true_risk,
        res.n_input,
        res.n_rejected,
        res.rejects,
        description,
        res,
        time=time,
        event=event,
        true_risks=true_risks,
    )


# ----------------------------------------------------------------- metrics


def oe_ratio(y: np.ndarray, p: np.ndarray, ci: float) -> tuple[float, float, float]:
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


def metrics_table(
    y: np.ndarray,
    p: np.ndarray,
    *,
    thresholds: Mapping[str, float] | None,
    n_boot: int,
    ci: float,
    seed: int,
) -> pd.DataFrame:
    """:func:`plo_risk.evaluation.evaluate` plus the O/E ratio."""
    table = evaluate(
        y, p, thresholds=thresholds or None, n_boot=n_boot, ci=ci, seed=seed
    )
    ratio, lo, hi = oe_ratio(y, p, ci)
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
        before = self.metrics.loc[list(TRANSPORT_METRICS), cols]
        after = self.recalibrated_metrics.loc[list(TRANSPORT_METRICS), cols]
        after.columns = ["recalibrated", "recalibrated_lower", "recalibrated_upper"]
        return pd.concat([before, after], axis=1)

    def plot_calibration(self) -> Figure:
        """Calibration of the model as trained and recalibrated, on the new data.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return calibration_figure(
            self.y,
            {"as trained": self.p, "intercept-recalibrated": self.p_recalibrated},
            title="Calibration on the validation data",
        )


def recalibrated_model(rm: RiskModel, data: EvalData) -> RiskModel:
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
        "method": "intercept (calibration-in-the-large), plo_risk.model.recalibrate",
    }
    if info is not None:
        info = dataclasses.replace(
            info,
            model_version=f"{info.model_version}-recal-"
            f"{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}",
            extra={**info.extra, "recalibration": note},
        )
    return RiskModel(new, info, catalog=rm.catalog)


def external(
    rm: RiskModel, data: EvalData, *, n_boot: int, ci: float, seed: int
) -> ExternalValidation:
    p = data.risk(rm)
    recal = recalibrated_model(rm, data)
    p2 = data.risk(recal)
    kw = {"thresholds": rm.thresholds, "n_boot": n_boot, "ci": ci, "seed": seed}
    return ExternalValidation(
        model=rm,
        recalibrated=recal,
        metrics=metrics_table(data.y, p, **kw),
        recalibrated_metrics=metrics_table(data.y, p2, **kw),
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
    >>> from plo_risk.model.zoo import make_model
    >>> from plo_risk.evaluate import external_validation
    >>> from plo_risk.data.schema import validate_frame
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> train = validate_frame(generate_cohort(2_000, seed=1)).valid
    >>> model = make_model("xgboost", params={"n_estimators": 20, "n_jobs": 1}, cv=2)
    >>> model = model.fit(train, train["fracture"])
    >>> ev = external_validation(model, generate_cohort(2_000, seed=2), n_boot=20)
    >>> abs(ev.recalibrated_calibration_intercept) < 1e-6
    True
    """
    rm = as_risk_model(model)
    data_ = load_eval_data(data, units, rm.catalog, "data")
    return external(rm, data_, n_boot=n_boot, ci=ci, seed=seed)

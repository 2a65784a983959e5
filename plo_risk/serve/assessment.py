"""One patient's explained assessment, and the literature's considerations for her.

:class:`RiskAssessment` holds the calibrated risk, its category (from the model's
stored thresholds), a 90% interval from the bootstrap ensemble stored in the
bundle, every input field's contribution in calibrated log-odds (summed back to the
fields the clinician typed), the missing inputs ordered by how much each could
move the estimate, what-if answers for modifiable fields and the review's
treatment considerations. It is information for the clinician, not a
prescription. :meth:`plo_risk.serve.RiskModel.assess` builds it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from plo_risk.data.catalog import Catalog
from plo_risk.data.references import format_citation
from plo_risk.data.schema import Problem, ValidationError
from plo_risk.explain import NOT_KNOWN

if TYPE_CHECKING:
    from plo_risk.serve.risk_model import RiskModel

__all__ = [
    "INTERVAL_LEVEL",
    "NOT_KNOWN",
    "Consideration",
    "Factor",
    "MissingInput",
    "RiskAssessment",
    "considerations_for",
    "not_known_factor",
]

INTERVAL_LEVEL = 0.90


# ----------------------------------------------------------------- results


@dataclass(frozen=True)
class Factor:
    """One value the clinician gave and its contribution to this patient's risk,
    or (``field == NOT_KNOWN``) every input not given, together.

    A value derived from the one given (a T- or Z-score from the BMD) is not a
    factor of its own: its contribution is in the given value's, and ``fields``
    names both (:func:`plo_risk.explain.fold_contributions`).
    """

    field: str
    label: str
    value: Any
    unit: str
    contribution: float  # calibrated log-odds; > 0 raises the risk
    given: bool
    fields: tuple[str, ...] = ()

    @property
    def not_known(self) -> bool:
        """True for the one factor that holds every input not given."""
        return self.field == NOT_KNOWN

    @property
    def direction(self) -> str:
        """``"raises risk"``, ``"lowers risk"`` or ``"no effect"``."""
        if abs(self.contribution) < 1e-9:
            return "no effect"
        return "raises risk" if self.contribution > 0 else "lowers risk"

    @property
    def odds_ratio(self) -> float:
        """exp(contribution): the factor by which this input multiplies the odds."""
        return math.exp(self.contribution)

    def describe(self) -> str:
        """``Label = value unit: raises risk (odds x1.8)``; for the inputs not
        known, how much the estimate leans on not knowing them (not a finding)."""
        if self.not_known:
            return (
                f"{self.label}: not known, so the estimate assumes what is usual "
                f"(together odds ×{self.odds_ratio:.2f})"
            )
        shown = _fmt_value(self.value, self.unit)
        return f"{self.label} = {shown}: {self.direction} (odds ×{self.odds_ratio:.2f})"


def not_known_factor(fields: tuple[str, ...], contribution: float) -> Factor:
    """The factor of the inputs not given (``fields``), with their summed
    contribution."""
    n = len(fields)
    return Factor(
        NOT_KNOWN,
        f"{n} input{'s' if n != 1 else ''}",
        None,
        "",
        contribution,
        False,
        fields=tuple(fields),
    )


@dataclass(frozen=True)
class MissingInput:
    """An input not given, with how far it could move the risk."""

    name: str
    fields: tuple[str, ...]
    label: str
    risk_low: float
    risk_high: float

    @property
    def spread(self) -> float:
        """Difference between the highest and lowest risk it could give."""
        return self.risk_high - self.risk_low

    def describe(self) -> str:
        return (
            f"{self.label}: could move the risk between {self.risk_low:.1%} and "
            f"{self.risk_high:.1%}"
        )


@dataclass(frozen=True)
class Consideration:
    """A treatment consideration from the literature, with its source.

    ``source`` cites by key (``[@mishra2024, Prevention]``; the keys are in
    ``docs/references/*.bib``); :attr:`citation` is its readable form.
    """

    topic: str
    text: str
    source: str

    @property
    def citation(self) -> str:
        """The source in short form: ``Mishra et al. 2024, Prevention``."""
        return format_citation(self.source)


def _fmt_value(value: Any, unit: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    else:
        text = str(value).replace("_", " ")
    return f"{text} {unit}".strip() if unit and unit not in ("1",) else text


# ------------------------------------------------------------- considerations
# Every number below has its source beside it, cited by key (docs/references/*.bib;
# mishra2024 is Mishra N, Masroor H, Gupta M, Turk J Osteoporos 2024;30(1):1-15).
# Worded as information, not as a prescription.

_CALCIUM_MG = 1500  # [@mishra2024, Prevention and Table 2]
# [@iom2011]; [@zhao2012]; [@mishra2024, Table 3 row 4, ref 49; @li2018]
_VITAMIN_D_DEFICIENT_NG_ML = 20
_VITAMIN_D_IU = "1000-2000"  # [@mishra2024, Prevention, ref 68]
# WHO osteoporosis: T-score below -2.5 [@mishra2024, Introduction]
_SEVERE_T_SCORE = -2.5
_T_SITES = {
    "t_lumbar_spine": "lumbar spine",
    "t_femoral_neck": "femoral neck",
    "t_total_hip": "total hip",
}


def considerations_for(record: Mapping[str, Any], category: str) -> list[Consideration]:
    """The review's treatment considerations that apply to this patient.

    Parameters
    ----------
    record : Mapping
        The canonical record (output of ``validate_record``).
    category : str
        The risk category (``"low"``, ``"moderate"``, ``"high"``, ...).

    Returns
    -------
    list of Consideration
    """
    out: list[Consideration] = []
    raised = category != "low"
    high = category == "high"
    if already_fractured(record):
        out.append(
            Consideration(
                "established_plo",
                ALREADY_FRACTURED + " Further vertebral fractures are common in "
                "PLO series (5.4 fractures per woman on average in one; a "
                "subsequent fracture in 7.8% during teriparatide in another).",
                "[@mishra2024, Table 3]",
            )
        )
    if record.get("breastfeeding_now") and raised:
        out.append(
            Consideration(
                "weaning",
                "She is breastfeeding and her estimated risk is raised: the review names "
                "weaning as the first recommendation when symptoms of osteoporosis appear; "
                "BMD usually recovers spontaneously within a year after weaning when no "
                "other cause is present.",
                "[@mishra2024, Prevention and Therapeutic Interventions, refs 69-71]",
            )
        )
    calcium = record.get("calcium_intake_mg_day")
    if calcium is None or calcium < _CALCIUM_MG:
        shown = "not recorded" if calcium is None else f"{calcium:.0f} mg/day"
        out.append(
            Consideration(
                "calcium",
                f"Calcium intake is {shown}; guidelines cited by the review recommend "
                f"{_CALCIUM_MG} mg/day in pregnancy and lactation, from diet and/or "
                "supplements.",
                "[@mishra2024, Prevention and Table 2]",
            )
        )
    vit_d = record.get("vitamin_d_25oh")
    if vit_d is None or vit_d < _VITAMIN_D_DEFICIENT_NG_ML:
        shown = "not measured" if vit_d is None else f"{vit_d:.0f} ng/mL (deficient)"
        out.append(
            Consideration(
                "vitamin_d",
                f"25(OH)D is {shown}; when deficient the review notes vitamin D "
                f"supplements of {_VITAMIN_D_IU} IU/day can be recommended.",
                "[@mishra2024, Prevention, ref 68]; deficiency < 20 ng/mL: "
                "[@iom2011; @zhao2012]",
            )
        )
    secondary = [
        f
        for f in (
            "heparin",
            "glucocorticoids",
            "mgso4_tocolysis",
            "hyperthyroidism",
            "anorexia_nervosa",
            "ibd_celiac",
        )
        if record.get(f)
    ]
    if secondary:
        out.append(
            Consideration(
                "secondary_causes",
                "Possible secondary causes are recorded ("
                + ", ".join(secondary)
                + "); "
                "the review advises identifying and treating secondary causes of PLO.",
                "[@mishra2024, Therapeutic Interventions and Table 3 rows 14, 16, 19; "
                "@lampropoulou2021; @iio2022]",
            )
        )
    severe = _severe_finding(record)
    if severe:
        out.append(
            Consideration(
                "severe_disease",
                f"{severe}: in severe cases (T-score below -2.5 or vertebral "
                "compression fractures) the review mentions a supporting vertebral "
                "corset and bed rest for pain, avoiding heavy lifting, and "
                "physiotherapy.",
                "[@mishra2024, Therapeutic Interventions, refs 72-74]; WHO "
                "osteoporosis, T-score below -2.5: [@mishra2024, Introduction]",
            )
        )
    if high:
        out.append(
            Consideration(
                "teriparatide",
                "Teriparatide (20 µg/day subcutaneously, usually for 12-24 months) is the "
                "anabolic agent most used in PLO cohorts, with BMD gains at the spine and "
                "hip; its potential side effect is a dose-dependent risk of bone tumours.",
                "[@mishra2024, Teriparatide, refs 21, 26, 85, 96-98, and Table 3; "
                "@hong2018]",
            )
        )
        out.append(
            Consideration(
                "denosumab",
                "Denosumab (60 mg every 6 months) has been used during lactation, alone or "
                "in sequence with teriparatide; it crosses the placenta and can affect "
                "fetal bone development.",
                "[@mishra2024, Denosumab, refs 21, 94, 95, and Table 3 row 13, ref 56]",
            )
        )
        out.append(
            Consideration(
                "bisphosphonates",
                "Bisphosphonates accumulate in the skeleton, circulate in maternal serum "
                "and reach the placenta, with possible harm to a later pregnancy (early "
                "delivery, low birth weight, neonatal hypocalcaemia, skeletal retardation): "
                "a caution for women who may become pregnant again.",
                "[@mishra2024, Bisphosphonates, refs 49, 89, 91-93; @li2018]",
            )
        )
    return out


def _severe_finding(record: Mapping[str, Any]) -> str | None:
    """What in the record (not the model's category) makes the disease severe:
    a T-score below -2.5 at any site, or a fragility fracture."""
    scores = [
        (record[f], site)
        for f, site in _T_SITES.items()
        if record.get(f) is not None and record[f] < _SEVERE_T_SCORE
    ]
    if scores:
        value, site = min(scores)
        return f"Her T-score at the {site} is {value:.1f}, below -2.5"
    if record.get("fractured_this_episode"):
        return "A fragility fracture in this pregnancy episode is recorded"
    if record.get("prior_fragility_fracture"):
        return "A fragility fracture is recorded"
    return None


# She has already fractured in this episode: the diagnosis is made, and the
# question is a further fracture ([@mishra2024, Table 3]: 5.4 vertebral fractures
# on average in one series, subsequent fractures in following years in a few;
# 7.8% with a subsequent fracture during teriparatide in another).
ALREADY_FRACTURED = (
    "She has already had a fragility fracture in this pregnancy episode: PLO is "
    "diagnosed, so this is not a screening question. The risk shown is of a "
    "further fracture after this assessment; manage the fracture and the "
    "disease first."
)


def already_fractured(record: Mapping[str, Any]) -> bool:
    """Whether the record says she fractured earlier in this episode."""
    return bool(record.get("fractured_this_episode"))


# -------------------------------------------------------------- assessment


@dataclass
class RiskAssessment:
    """One patient's explained fracture-risk assessment.

    Attributes
    ----------
    risk : float
        Calibrated probability of the model's outcome (:attr:`horizon`) in the
        model's setting (:attr:`setting`).
    category : str
        From the model's stored thresholds.
    base_log_odds : float
        The model's base value; ``base_log_odds + sum of contributions`` is the
        calibrated log-odds of ``risk``.
    factors : list of Factor
        One per value the clinician gave (a derived T/Z score or BMD folded into
        the value it came from) and one for every input not given together
        (:attr:`Factor.not_known`), sorted by the size of their contribution.
    horizon : str
        What the risk is the probability of, and over which time.
    setting : str
        The population the model's risks are calibrated to.
    average_risk : float
        The mean risk of that setting (the model's outcome prevalence).
    """

    _model: RiskModel = field(repr=False)
    record: dict[str, Any] = field(repr=False)
    risk: float
    category: str
    base_log_odds: float
    factors: list[Factor] = field(repr=False)
    horizon: str = ""
    setting: str = ""
    average_risk: float = float("nan")
    _source: tuple[dict, dict] = field(default=({}, {}), repr=False)
    #: Horizon label (``"3m"``, ``"12m"``, ``"end"``) -> risk, for a model with a
    #: horizon model (:mod:`plo_risk.model.horizon`); empty otherwise.
    risks: dict[str, float] = field(default_factory=dict, repr=False)
    #: Horizon label -> (low, high) 90% interval of the true risk.
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    #: For a what-if: the changes from the assessment on, and what the model can
    #: say about them (None: not a what-if).
    intervention: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def relative_risk(self) -> float:
        """The risk divided by the setting's average risk."""
        if not self.average_risk > 0:
            return float("nan")
        return self.risk / self.average_risk

    @cached_property
    def interval(self) -> tuple[float, float] | None:
        """90% interval of the risk: of her true risk at the default horizon for
        a model with a horizon model (:attr:`interval_meaning`), else from the
        bundle's bootstrap ensemble."""
        if self.risks:
            label = self._model.default_horizon_label
            return self.intervals.get(label)
        return self._model._interval(self.record)

    @property
    def interval_meaning(self) -> str:
        """What the interval is and how it was checked."""
        return self._model.interval_meaning

    def risk_at(self, months: float | str) -> float:
        """Her risk of a first fracture within ``months`` of the assessment (or
        ``"end"``: before 18 months postpartum).

        Raises
        ------
        ValueError
            For a model without a horizon model, or a horizon outside (0, 21].
        """
        label = self._model.horizon_label_of(months)
        if label in self.risks:
            return self.risks[label]
        return self._model._risk_at(self, months)

    def interval_at(self, months: float | str) -> tuple[float, float] | None:
        """The 90% interval of her true risk within ``months`` (None without)."""
        label = self._model.horizon_label_of(months)
        if label in self.intervals:
            return self.intervals[label]
        return self._model._interval_at(self, months)

    def baseline_at(self, months: float | str) -> float | None:
        """The average risk within ``months`` in the model's setting."""
        return self._model._baseline_at(months)

    @cached_property
    def missing(self) -> list[MissingInput]:
        """Inputs not given, the one that could move the estimate most first."""
        return self._model._missing(self.record)

    @cached_property
    def considerations(self) -> list[Consideration]:
        """The review's treatment considerations for this patient [@mishra2024]."""
        return considerations_for(self.record, self.category)

    @property
    def model_version(self) -> str:
        return self._model.version

    @property
    def not_known(self) -> Factor | None:
        """The factor of every input not given (None when all were given)."""
        return next((f for f in self.factors if f.not_known), None)

    def top_factors(self, k: int = 5, *, given_only: bool = True) -> list[Factor]:
        """The ``k`` largest contributions of the values given (with the
        not-known factor too when ``given_only=False``)."""
        chosen = [f for f in self.factors if f.given or not given_only]
        return chosen[:k]

    def context(self) -> str:
        """What the number is: the outcome and horizon, the setting, its average
        risk and this risk relative to it."""
        text = f"Probability of {self.horizon}" if self.horizon else "Risk"
        if self.setting:
            text += f", in {self.setting}"
        if self.average_risk > 0:
            text += (
                f" (average risk {self.average_risk:.2%}); hers is "
                f"{_times(self.relative_risk)} that average"
            )
        text += "."
        if already_fractured(self.record):
            text += " " + ALREADY_FRACTURED
        return text

    def plot_waterfall(self, *, max_display: int = 10):
        """The waterfall of this assessment's factors: each value she gave (with
        what was derived from it) and one bar for the inputs not known.

        Returns
        -------
        matplotlib.figure.Figure
        """
        return self._model._waterfall(self, max_display=max_display)

    def what_if(self, **changes: Any) -> RiskAssessment:
        """The assessment with modifiable inputs changed.

        Only fields the catalog marks ``modifiable`` (breastfeeding, calcium,
        vitamin D, BMI, smoking, ...) can change; the new values are validated.

        Raises
        ------
        ValueError
            For a field that is not modifiable or not in the catalog.
        ValidationError
            For a bad new value.
        """
        catalog = self._model.catalog
        problems = []
        for name in changes:
            if name not in catalog:
                problems.append(Problem(name, changes[name], "unknown field"))
            elif not catalog[name].modifiable:
                mods = ", ".join(f.name for f in catalog if f.modifiable)
                problems.append(
                    Problem(
                        name,
                        changes[name],
                        f"is not modifiable, so what-if does not apply (modifiable: {mods})",
                    )
                )
        if problems:
            raise ValidationError(problems)
        if self._model.horizon_model is not None:
            return self._model._intervene(self, dict(changes))
        record, units = self._source
        if not record:  # built without a source record: use the canonical one
            record = {
                k: v
                for k, v in self.record.items()
                if v is not None and k not in _derived_names(catalog)
            }
        # Stopping breastfeeding ends exclusive breastfeeding with it (the
        # catalog's rule exclusive_while_breastfeeding).
        if changes.get("breastfeeding_now") is False:
            changes = {"lactation_exclusive": False, **changes}
        # Changed values are in canonical units.
        units = {k: u for k, u in units.items() if k not in changes}
        return self._model.assess({**record, **changes}, units=units)

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready data."""
        interval = self.interval
        horizons = {
            label: {
                "risk": risk,
                "interval": None
                if label not in self.intervals
                else {
                    "level": INTERVAL_LEVEL,
                    "low": self.intervals[label][0],
                    "high": self.intervals[label][1],
                },
            }
            for label, risk in self.risks.items()
        }
        return {
            "risk": self.risk,
            "horizons": horizons,
            "interval_meaning": self.interval_meaning if interval else None,
            "intervention": self.intervention,
            "category": self.category,
            "interval": None
            if interval is None
            else {"level": INTERVAL_LEVEL, "low": interval[0], "high": interval[1]},
            "horizon": self.horizon,
            "setting": {
                "name": self.setting,
                "average_risk": _finite(self.average_risk),
            },
            "relative_risk": _finite(self.relative_risk),
            "base_log_odds": self.base_log_odds,
            "model_version": self.model_version,
            "factors": [
                {
                    "field": f.field,
                    "label": f.label,
                    "value": _json_value(f.value),
                    "unit": f.unit,
                    "contribution": f.contribution,
                    "direction": "not known" if f.not_known else f.direction,
                    "given": f.given,
                    "fields": list(f.fields),
                }
                for f in self.factors
            ],
            "missing": [
                {
                    "name": m.name,
                    "fields": list(m.fields),
                    "label": m.label,
                    "risk_low": m.risk_low,
                    "risk_high": m.risk_high,
                }
                for m in self.missing
            ],
            "considerations": [
                {
                    "topic": c.topic,
                    "text": c.text,
                    "source": c.source,
                    "citation": c.citation,
                }
                for c in self.considerations
            ],
            "record": {k: _json_value(v) for k, v in self.record.items()},
        }

    def __str__(self) -> str:
        lines = [f"PLO fracture risk: {self.risk:.1%} ({self.category})"]
        if self.interval:
            lo, hi = self.interval
            lines[0] += f", {INTERVAL_LEVEL:.0%} interval {lo:.1%}-{hi:.1%}"
        lines.append(self.context())
        if self.risks:
            lines.append("By horizon:")
            for label, risk in self.risks.items():
                band = self.intervals.get(label)
                lines.append(
                    f"  {_horizon_text(label)}: {risk:.1%}"
                    + (f" ({band[0]:.1%}-{band[1]:.1%})" if band else "")
                )
        if self.intervention is not None:
            lines.append(f"What-if: {self.intervention['text']}")
        lines.append("Main factors:")
        lines += [f"  {f.describe()}" for f in self.top_factors(5)]
        if self.not_known is not None:
            lines.append(f"  {self.not_known.describe()}")
        if self.missing:
            lines.append("Would change the estimate most if measured:")
            lines += [f"  {m.describe()}" for m in self.missing[:3]]
        if self.considerations:
            lines.append("Considerations from the literature (not a prescription):")
            lines += [f"  - {c.text} [{c.citation}]" for c in self.considerations]
        lines.append(f"Model version {self.model_version}.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        shown = self.top_factors(8)
        if self.not_known is not None:
            shown = [*shown, self.not_known]
        rows = "".join(
            f"<tr><td>{e(f.label)}</td>"
            f"<td>{'not known' if f.not_known else e(_fmt_value(f.value, f.unit))}</td>"
            f"<td style='text-align:right'>{f.contribution:+.3f}</td>"
            f"<td>{'' if f.not_known else e(f.direction)}</td></tr>"
            for f in shown
        )
        interval = ""
        if self.interval:
            interval = (
                f" ({INTERVAL_LEVEL:.0%} interval {self.interval[0]:.1%}–"
                f"{self.interval[1]:.1%})"
            )
        by_horizon = "".join(
            f"<tr><td>{e(_horizon_text(label))}</td><td>{risk:.1%}</td><td>"
            + (
                f"{self.intervals[label][0]:.1%}–{self.intervals[label][1]:.1%}"
                if label in self.intervals
                else ""
            )
            + "</td></tr>"
            for label, risk in self.risks.items()
        )
        if by_horizon:
            by_horizon = (
                "<table><tr><th>horizon</th><th>risk</th>"
                f"<th>{INTERVAL_LEVEL:.0%} interval</th></tr>{by_horizon}</table>"
            )
        missing = "".join(f"<li>{e(m.describe())}</li>" for m in self.missing[:3])
        cons = "".join(
            f"<li>{e(c.text)} <small>[{e(c.citation)}]</small></li>"
            for c in self.considerations
        )
        return (
            f"<div><h4>PLO fracture risk: {self.risk:.1%} — {e(self.category)}"
            f"{interval}</h4><p>{e(self.context())}</p>"
            + by_horizon
            + (
                f"<p>What-if: {e(self.intervention['text'])}</p>"
                if self.intervention is not None
                else ""
            )
            + "<table><tr><th>input</th><th>value</th><th>log-odds</th><th></th></tr>"
            f"{rows}</table>"
            + (
                f"<p>Would change the estimate most if measured:</p><ul>{missing}</ul>"
                if missing
                else ""
            )
            + (
                f"<p>Considerations (information, not a prescription):</p><ul>{cons}"
                "</ul>"
                if cons
                else ""
            )
            + f"<p><small>Model version {e(self.model_version)}</small></p></div>"
        )


def _horizon_text(label: str) -> str:
    """``"within 12 months"``, ``"before 18 months postpartum"``."""
    if label == "end":
        return "before 18 months postpartum"
    return f"within {label[:-1]} months"


def _times(ratio: float) -> str:
    """``3.8 times``, ``0.42 times``."""
    if not ratio == ratio:
        return "an unknown multiple of"
    return f"{ratio:.1f} times" if ratio >= 1 else f"{ratio:.2f} times"


def _finite(x: float) -> float | None:
    return float(x) if x == x and math.isfinite(x) else None


def _derived_names(catalog: Catalog) -> set[str]:
    return {f.name for f in catalog if f.derived_from}


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v

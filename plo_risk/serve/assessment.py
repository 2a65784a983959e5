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
from plo_risk.data.schema import Problem, ValidationError

if TYPE_CHECKING:
    from plo_risk.serve.risk_model import RiskModel

__all__ = [
    "INTERVAL_LEVEL",
    "Consideration",
    "Factor",
    "MissingInput",
    "RiskAssessment",
    "considerations_for",
]

INTERVAL_LEVEL = 0.90


# ----------------------------------------------------------------- results


@dataclass(frozen=True)
class Factor:
    """One input field's contribution to this patient's risk."""

    field: str
    label: str
    value: Any
    unit: str
    contribution: float  # calibrated log-odds; > 0 raises the risk
    given: bool

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
        """``Label = value unit: raises risk (odds x1.8)``."""
        shown = "not given" if not self.given else _fmt_value(self.value, self.unit)
        return f"{self.label} = {shown}: {self.direction} (odds ×{self.odds_ratio:.2f})"


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
    """A treatment consideration from the seed review, with its source."""

    topic: str
    text: str
    source: str


def _fmt_value(value: Any, unit: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit and unit not in ("1",) else text


# ------------------------------------------------------------- considerations
# Every number below comes from the seed review (shared/seed/000_5c3dd69e6ea5fc83.txt);
# the source string says where. Worded as information, not as a prescription.

_SEED_CALCIUM_MG = 1500  # seed Prevention and Table 2
_VITAMIN_D_DEFICIENT_NG_ML = 20  # params sheet F (IOM cut-off); seed Table 3 row 4
_SEED_VITAMIN_D_IU = "1000-2000"  # seed Prevention (ref 68)


def considerations_for(record: Mapping[str, Any], category: str) -> list[Consideration]:
    """The seed review's treatment considerations that apply to this patient.

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
    if record.get("breastfeeding_now") and raised:
        out.append(
            Consideration(
                "weaning",
                "She is breastfeeding and her estimated risk is raised: the review names "
                "weaning as the first recommendation when symptoms of osteoporosis appear; "
                "BMD usually recovers spontaneously within a year after weaning when no "
                "other cause is present.",
                "seed Prevention; seed Therapeutic Interventions (refs 69-71)",
            )
        )
    calcium = record.get("calcium_intake_mg_day")
    if calcium is None or calcium < _SEED_CALCIUM_MG:
        shown = "not recorded" if calcium is None else f"{calcium:.0f} mg/day"
        out.append(
            Consideration(
                "calcium",
                f"Calcium intake is {shown}; guidelines cited by the review recommend "
                f"{_SEED_CALCIUM_MG} mg/day in pregnancy and lactation, from diet and/or "
                "supplements.",
                "seed Prevention; seed Table 2",
            )
        )
    vit_d = record.get("vitamin_d_25oh")
    if vit_d is None or vit_d < _VITAMIN_D_DEFICIENT_NG_ML:
        shown = "not measured" if vit_d is None else f"{vit_d:.0f} ng/mL (deficient)"
        out.append(
            Consideration(
                "vitamin_d",
                f"25(OH)D is {shown}; when deficient the review notes vitamin D "
                f"supplements of {_SEED_VITAMIN_D_IU} IU/day can be recommended.",
                "seed Prevention (ref 68); deficiency < 20 ng/mL: params sheet F",
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
                "seed Therapeutic Interventions; seed Table 3 rows 14, 16, 19",
            )
        )
    if high:
        out.append(
            Consideration(
                "severe_disease",
                "In severe cases (T-score below -2.5 or vertebral compression fractures) "
                "the review mentions a supporting vertebral corset and bed rest for pain, "
                "avoiding heavy lifting, and physiotherapy.",
                "seed Therapeutic Interventions (refs 72-74)",
            )
        )
        out.append(
            Consideration(
                "teriparatide",
                "Teriparatide (20 µg/day subcutaneously, usually for 12-24 months) is the "
                "anabolic agent most used in PLO cohorts, with BMD gains at the spine and "
                "hip; its potential side effect is a dose-dependent risk of bone tumours.",
                "seed Teriparatide (refs 21, 26, 85, 96-98); seed Table 3",
            )
        )
        out.append(
            Consideration(
                "denosumab",
                "Denosumab (60 mg every 6 months) has been used during lactation, alone or "
                "in sequence with teriparatide; it crosses the placenta and can affect "
                "fetal bone development.",
                "seed Denosumab (refs 21, 94, 95); seed Table 3 row 13 (ref 56)",
            )
        )
        out.append(
            Consideration(
                "bisphosphonates",
                "Bisphosphonates accumulate in the skeleton, circulate in maternal serum "
                "and reach the placenta, with possible harm to a later pregnancy (early "
                "delivery, low birth weight, neonatal hypocalcaemia, skeletal retardation): "
                "a caution for women who may become pregnant again.",
                "seed Bisphosphonates (refs 49, 89, 91-93)",
            )
        )
    return out


# -------------------------------------------------------------- assessment


@dataclass
class RiskAssessment:
    """One patient's explained fracture-risk assessment.

    Attributes
    ----------
    risk : float
        Calibrated probability of a fragility fracture from the third trimester to
        18 months postpartum.
    category : str
        From the model's stored thresholds.
    base_log_odds : float
        The model's base value; ``base_log_odds + sum of contributions`` is the
        calibrated log-odds of ``risk``.
    factors : list of Factor
        Every input field, sorted by the size of its contribution.
    """

    _model: RiskModel = field(repr=False)
    record: dict[str, Any] = field(repr=False)
    risk: float
    category: str
    base_log_odds: float
    factors: list[Factor] = field(repr=False)
    _source: tuple[dict, dict] = field(default=({}, {}), repr=False)

    @cached_property
    def interval(self) -> tuple[float, float] | None:
        """90% interval of the risk from the bundle's bootstrap ensemble."""
        return self._model._interval(self.record)

    @cached_property
    def missing(self) -> list[MissingInput]:
        """Inputs not given, the one that could move the estimate most first."""
        return self._model._missing(self.record)

    @cached_property
    def considerations(self) -> list[Consideration]:
        """The seed review's treatment considerations for this patient."""
        return considerations_for(self.record, self.category)

    @property
    def model_version(self) -> str:
        return self._model.version

    def top_factors(self, k: int = 5, *, given_only: bool = True) -> list[Factor]:
        """The ``k`` largest contributions (of given inputs by default)."""
        chosen = [f for f in self.factors if f.given or not given_only]
        return chosen[:k]

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
        record, units = self._source
        if not record:  # built without a source record: use the canonical one
            record = {
                k: v
                for k, v in self.record.items()
                if v is not None and k not in _derived_names(catalog)
            }
        # Changed values are in canonical units.
        units = {k: u for k, u in units.items() if k not in changes}
        return self._model.assess({**record, **changes}, units=units)

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready data."""
        interval = self.interval
        return {
            "risk": self.risk,
            "category": self.category,
            "interval": None
            if interval is None
            else {"level": INTERVAL_LEVEL, "low": interval[0], "high": interval[1]},
            "base_log_odds": self.base_log_odds,
            "model_version": self.model_version,
            "factors": [
                {
                    "field": f.field,
                    "label": f.label,
                    "value": _json_value(f.value),
                    "unit": f.unit,
                    "contribution": f.contribution,
                    "direction": f.direction,
                    "given": f.given,
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
                {"topic": c.topic, "text": c.text, "source": c.source}
                for c in self.considerations
            ],
            "record": {k: _json_value(v) for k, v in self.record.items()},
        }

    def __str__(self) -> str:
        lines = [f"PLO fracture risk: {self.risk:.1%} ({self.category})"]
        if self.interval:
            lo, hi = self.interval
            lines[0] += f", {INTERVAL_LEVEL:.0%} interval {lo:.1%}-{hi:.1%}"
        lines.append("Main factors:")
        lines += [f"  {f.describe()}" for f in self.top_factors(5)]
        if self.missing:
            lines.append("Would change the estimate most if measured:")
            lines += [f"  {m.describe()}" for m in self.missing[:3]]
        if self.considerations:
            lines.append("Considerations from the literature (not a prescription):")
            lines += [f"  - {c.text} [{c.source}]" for c in self.considerations]
        lines.append(f"Model version {self.model_version}.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(f.label)}</td><td>{e(_fmt_value(f.value, f.unit)) if f.given else 'not given'}</td>"
            f"<td style='text-align:right'>{f.contribution:+.3f}</td><td>{e(f.direction)}</td></tr>"
            for f in self.top_factors(8)
        )
        interval = ""
        if self.interval:
            interval = (
                f" ({INTERVAL_LEVEL:.0%} interval {self.interval[0]:.1%}–"
                f"{self.interval[1]:.1%})"
            )
        missing = "".join(f"<li>{e(m.describe())}</li>" for m in self.missing[:3])
        cons = "".join(
            f"<li>{e(c.text)} <small>[{e(c.source)}]</small></li>"
            for c in self.considerations
        )
        return (
            f"<div><h4>PLO fracture risk: {self.risk:.1%} — {e(self.category)}"
            f"{interval}</h4>"
            "<table><tr><th>input</th><th>value</th><th>log-odds</th><th></th></tr>"
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

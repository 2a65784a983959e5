"""What the clinician's page shows, computed from a model and one assessment.

Everything here is plain data for the templates (and the JSON API): the form
generated from the catalog, the risk rows, natural frequencies, the icon array
and the interval band (SVG), the factors in plain language, what the tool did
not know, the what-if controls and the basis of the model. No HTML framework:
the templates only lay these out.

Risk communication follows the evidence the page cites: natural frequencies
("about 12 in 1,000 women like her") rather than conditional probabilities
(Gigerenzer & Hoffrage 1995; Hoffrage et al. 2000), an icon array of 1,000 with
the affected icons grouped together (Galesic, Garcia-Retamero & Gigerenzer 2009),
a baseline to compare with and the uncertainty shown as a band with words for
what it means (Spiegelhalter, Pearson & Short 2011; Trevena et al. 2013).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plo_risk.data.catalog import Catalog, Feature
from plo_risk.serve.assessment import INTERVAL_LEVEL, RiskAssessment
from plo_risk.serve.risk_model import RiskModel

try:  # the bibliography resolver, when this plo_risk has one
    from plo_risk.data.references import format_citation as _format_citation
    from plo_risk.data.references import reference as _reference
except ImportError:  # pragma: no cover - older trees
    _format_citation = _reference = None

__all__ = [
    "GROUP_TITLES",
    "REFERENCES",
    "WINDOW_LABEL",
    "Baseline",
    "FactorView",
    "FormField",
    "FormGroup",
    "RiskRow",
    "Unknowns",
    "WhatIfControl",
    "baseline_of",
    "common_denominator",
    "cite",
    "basis",
    "describe_changes",
    "factor_views",
    "form_groups",
    "icon_array_svg",
    "interval_band_svg",
    "interval_text",
    "natural_frequency",
    "parse_changes",
    "parse_form",
    "percent",
    "reference_list",
    "risk_rows",
    "unknowns",
    "what_if_controls",
]

#: The one window today's models predict (horizon models add 6 and 12 months).
WINDOW_LABEL = "fracture from the third trimester to 18 months postpartum"
#: The horizons shown when an assessment can give them (``risk_at(months)``).
HORIZONS = (6, 12)
#: Icons in the icon array.
ICONS = 1000
GROUP_TITLES = {
    "demographic": "About her",
    "reproductive": "Pregnancies and timing",
    "lactation": "Breastfeeding",
    "nutrition": "Nutrition",
    "lifestyle": "Lifestyle",
    "family_genetic": "Family history, genetics and earlier fractures",
    "medication": "Medication",
    "comorbidity": "Other conditions",
    "markers": "Bone-turnover markers (blood)",
    "bmd": "Bone mineral density (DXA)",
}
_UNIT_TEXT = {"g/cm2": "g/cm²", "kg/m2": "kg/m²", "mg/cm2": "mg/cm²", "1": ""}
# A decimal comma, as many clinics write numbers: "0,687".
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")

#: The sources the page cites, in the order of its reference list
#: (BibTeX: docs/references/web.bib and core.bib).
REFERENCES = (
    (
        "gigerenzer1995",
        "Gigerenzer G, Hoffrage U. How to improve Bayesian reasoning without "
        "instruction: frequency formats. Psychol Rev 1995;102(4):684-704.",
    ),
    (
        "hoffrage2000",
        "Hoffrage U, Lindsey S, Hertwig R, Gigerenzer G. Communicating statistical "
        "information. Science 2000;290(5500):2261-2262.",
    ),
    (
        "galesic2009",
        "Galesic M, Garcia-Retamero R, Gigerenzer G. Using icon arrays to "
        "communicate medical risks: overcoming low numeracy. Health Psychol "
        "2009;28(2):210-216.",
    ),
    (
        "spiegelhalter2011",
        "Spiegelhalter D, Pearson M, Short I. Visualizing uncertainty about the "
        "future. Science 2011;333(6048):1393-1400.",
    ),
    (
        "trevena2013",
        "Trevena LJ, Zikmund-Fisher BJ, Edwards A, et al. Presenting quantitative "
        "information about decision outcomes: a risk communication primer for "
        "patient decision aid developers. BMC Med Inform Decis Mak 2013;13(Suppl "
        "2):S7.",
    ),
    (
        "mishra2024",
        "Mishra N, Masroor H, Gupta M. Osteoporosis in pregnant and lactating "
        "females: an update. Turk J Osteoporos 2024;30(1):1-15 (the review whose "
        "considerations and Table 3 the tool uses).",
    ),
    (
        "fda2022cds",
        "U.S. Food and Drug Administration. Clinical Decision Support Software: "
        "Guidance for Industry and Food and Drug Administration Staff. September "
        "2022.",
    ),
    (
        "euaiact2024",
        "Regulation (EU) 2024/1689 of the European Parliament and of the Council "
        "(Artificial Intelligence Act), Article 12: record-keeping.",
    ),
)


_CITATION = re.compile(r"\[-?@([A-Za-z0-9_:.-]+)(?:,\s*([^\]]*))?\]")


def cite(text: str) -> str:
    """Citations in short form: ``[@mishra2024, Table 3]`` -> ``Mishra et al. 2024,
    Table 3`` (the bibliography's short labels; the key itself if unknown)."""
    if _format_citation is not None:
        try:
            return _format_citation(text)
        except (KeyError, ValueError):
            pass
    return _CITATION.sub(
        lambda m: m.group(1) + (f", {m.group(2)}" if m.group(2) else ""), text
    )


def reference_list() -> list[tuple[str, str]]:
    """The page's reference list: :data:`REFERENCES`, each in the bibliography's
    words when it has the key (docs/references/*.bib), else as written here."""
    out = []
    for key, text in REFERENCES:
        if _reference is not None:
            try:
                text = _reference(key)
            except (KeyError, ValueError):
                pass
        out.append((key, text))
    return out


def unit_text(unit: str) -> str:
    """A unit as a clinician reads it (``g/cm2`` -> ``g/cm²``; counts: empty)."""
    return _UNIT_TEXT.get(unit, unit)


def percent(p: float | None) -> str:
    """A probability as a percentage with sensible digits (``0.0123`` -> ``1.2%``)."""
    if p is None or not math.isfinite(p):
        return "–"
    x = 100 * p
    if x >= 10:
        return f"{x:.0f}%"
    if x >= 1:
        return f"{x:.1f}%"
    if x >= 0.1:
        return f"{x:.2f}%"
    return f"{x:.2g}%" if x > 0 else "0%"


def _num(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e6:
        return f"{int(x):,}"
    return f"{x:.4g}"


# ------------------------------------------------------------------ the form


@dataclass(frozen=True)
class UnitChoice:
    """A unit a value may be entered in, with the allowed range in that unit."""

    unit: str
    text: str
    factor: float
    hint: str


@dataclass(frozen=True)
class FormField:
    """One input of the form, from one catalog field."""

    name: str
    label: str
    kind: str  # "number", "bool" or "category"
    required: bool
    units: tuple[UnitChoice, ...] = ()
    categories: tuple[str, ...] = ()
    whole: bool = False
    note: str = ""
    reference: str = ""

    @property
    def hint(self) -> str:
        """The allowed values in the first (canonical) unit."""
        return self.units[0].hint if self.units else ""


@dataclass(frozen=True)
class FormGroup:
    """A fieldset of the form: one catalog group."""

    name: str
    title: str
    fields: tuple[FormField, ...]


def _groups(catalog: Catalog) -> list[str]:
    """The catalog's groups in the order their first field appears."""
    return list(dict.fromkeys(f.group for f in catalog))


def _range_hint(feat: Feature, factor: float, unit: str) -> str:
    lo, hi = feat.range  # type: ignore[misc]
    text = f"{_num(lo / factor)} to {_num(hi / factor)}"
    return f"{text} {unit_text(unit)}".strip()


def form_groups(catalog: Catalog) -> list[FormGroup]:
    """The form: the catalog's fields, grouped as the catalog groups them.

    Each numeric field offers its canonical unit and the catalog's alternate
    units, each with the allowed range converted; each field that may be missing
    can be left "not known".
    """
    groups = []
    for group in _groups(catalog):
        fields = []
        for f in catalog.by_group(group):
            units: tuple[UnitChoice, ...] = ()
            if f.is_numeric:
                units = tuple(
                    UnitChoice(u, unit_text(u) or "count", k, _range_hint(f, k, u))
                    for u, k in [(f.unit, 1.0), *f.alt_units.items()]
                )
            note = ""
            if f.derived_from:
                note = (
                    f"Or give the BMD ({catalog[f.derived_from].label}): the score "
                    "is then calculated from it."
                )
            elif f.bmd_reference:
                note = "T- and Z-scores are calculated from it when not given."
            fields.append(
                FormField(
                    name=f.name,
                    label=f.label,
                    kind="number" if f.is_numeric else f.dtype,
                    required=not f.missing,
                    units=units,
                    categories=f.categories,
                    whole=f.dtype == "int",
                    note=note,
                    reference=f.reference,
                )
            )
        if fields:
            groups.append(
                FormGroup(group, GROUP_TITLES.get(group, group), tuple(fields))
            )
    return groups


def parse_form(
    form: Mapping[str, Any], catalog: Catalog
) -> tuple[dict[str, Any], dict[str, str]]:
    """The record and units a posted form gives, ready for ``RiskModel.assess``.

    An empty value or "not known" leaves the field out; a unit other than the
    canonical one goes to ``units``; a decimal comma is read as a point.

    Returns
    -------
    (dict, dict)
        ``record`` (field: text as typed) and ``units`` (field: unit).
    """
    record: dict[str, Any] = {}
    units: dict[str, str] = {}
    for f in catalog:
        raw = form.get(f.name)
        if raw is None:
            continue
        text = str(raw).strip()
        if not text or text == "unknown":
            continue
        if f.is_numeric:
            if _DECIMAL_COMMA.match(text):
                text = text.replace(",", ".")
            unit = str(form.get(f"{f.name}__unit") or f.unit)
            if unit != f.unit:
                units[f.name] = unit
        record[f.name] = text
    return record, units


# ------------------------------------------------------------------ the risk


@dataclass(frozen=True)
class Baseline:
    """The average risk of the setting the model applies to."""

    risk: float
    setting: str
    text: str
    inferred: bool


def baseline_of(model: RiskModel) -> Baseline | None:
    """The model's population baseline: its training prevalence and setting.

    The setting comes from the bundle (``extra["setting"]`` or
    ``training_data["setting"]``) when recorded; otherwise it is inferred from the
    prevalence (above 0.5%: the enriched referral setting; the population's is
    about 0.05%, [@kasahara2024]) and the text says so.
    """
    prevalence = getattr(model.model, "prevalence_", None)
    info = model.info
    if prevalence is None and info is not None:
        prevalence = (info.training_data or {}).get("prevalence")
    if prevalence is None or not math.isfinite(float(prevalence)):
        return None
    prevalence = float(prevalence)
    recorded = None
    if info is not None:
        recorded = (info.extra or {}).get("setting") or (info.training_data or {}).get(
            "setting"
        )
    setting = (
        str(recorded)
        if recorded
        else ("referral" if prevalence > 0.005 else "population")
    )
    who = {
        "referral": "women referred for bone assessment (an enriched setting)",
        "population": "all women with a delivery (the general population)",
    }.get(setting, f"the {setting} setting")
    how = (
        ""
        if recorded
        else " (setting inferred from that rate; the bundle does not record it)"
    )
    text = (
        f"The average risk where the model was trained: {percent(prevalence)} of "
        f"{who} had a fracture in the window{how}."
    )
    return Baseline(prevalence, setting, text, inferred=not recorded)


@dataclass(frozen=True)
class RiskRow:
    """One risk the page shows: a horizon (or the whole window) and its numbers."""

    label: str
    months: int | None
    risk: float
    interval: tuple[float, float] | None
    baseline: float | None
    denominator: int = 1_000

    @property
    def natural_frequency(self) -> str:
        """``about 12 in 1,000``."""
        return natural_frequency(self.risk, self.denominator)

    @property
    def baseline_frequency(self) -> str | None:
        if self.baseline is None:
            return None
        return natural_frequency(self.baseline, self.denominator)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "months": self.months,
            "risk": self.risk,
            "percent": percent(self.risk),
            "natural_frequency": self.natural_frequency,
            "interval": None if self.interval is None else list(self.interval),
            "baseline": self.baseline,
        }


def risk_rows(
    assessment: RiskAssessment,
    baseline: Baseline | None = None,
    *,
    denominator: int | None = None,
) -> list[RiskRow]:
    """Every risk row of the result page, from one place.

    An assessment that answers per horizon (``risks``, ``risk_at(months)``) gives a row
    for 6 and 12 months (with ``interval_at``/``baseline_at`` when it has them);
    today's models give one row for the whole window, labelled
    :data:`WINDOW_LABEL`. Every row's natural frequency uses one denominator
    (``denominator``, else :func:`common_denominator` of the risks and baselines).
    """
    base = None if baseline is None else baseline.risk
    risk_at = getattr(assessment, "risk_at", None)
    if callable(risk_at) and getattr(assessment, "risks", None):
        interval_at = getattr(assessment, "interval_at", None)
        baseline_at = getattr(assessment, "baseline_at", None)
        rows: list[RiskRow] = []
        for months in HORIZONS:
            rows.append(
                RiskRow(
                    label=f"fracture within {months} months",
                    months=months,
                    risk=float(risk_at(months)),
                    interval=interval_at(months) if callable(interval_at) else None,
                    baseline=float(baseline_at(months))
                    if callable(baseline_at)
                    else None,
                )
            )
    else:
        label = getattr(assessment, "window_label", None) or WINDOW_LABEL
        rows = [RiskRow(label, None, float(assessment.risk), assessment.interval, base)]
    d = denominator or common_denominator(
        *[r.risk for r in rows], *[r.baseline for r in rows]
    )
    return [dataclasses.replace(r, denominator=d) for r in rows]


def common_denominator(*risks: float | None) -> int:
    """One denominator for every number of a page: 1,000 unless a risk shown would
    round to 0 in 1,000 (then 10,000 or 100,000). Changing denominators within one
    page misleads (Trevena et al. 2013)."""
    shown = [r for r in risks if r is not None and r > 0]
    for denominator in (1_000, 10_000, 100_000):
        if all(round(r * denominator) >= 1 for r in shown):
            return denominator
    return 100_000


def natural_frequency(risk: float, denominator: int = 1_000) -> str:
    """A risk as a natural frequency: ``about 12 in 1,000``.

    >>> natural_frequency(0.0123), natural_frequency(0.0004, 10_000)
    ('about 12 in 1,000', 'about 4 in 10,000')
    >>> natural_frequency(0.0001)
    'fewer than 1 in 1,000'
    """
    n = round(risk * denominator)
    if n < 1 and risk > 0:
        return f"fewer than 1 in {denominator:,}"
    return f"about {n:,} in {denominator:,}"


def icon_array_svg(risk: float, *, title: str, icons: int = ICONS) -> str:
    """A grouped icon array: ``icons`` women, those with a fracture shaded first.

    Ten blocks of 100 (10 x 10), filled block by block so that the affected
    women stand together (Galesic et al. 2009).
    """
    k = max(0, min(icons, round(risk * icons)))
    cell, gap, per_row_blocks = 10, 8, 5
    block = 10 * cell
    n_blocks = math.ceil(icons / 100)
    rows_blocks = math.ceil(n_blocks / per_row_blocks)
    width = per_row_blocks * block + (per_row_blocks - 1) * gap
    height = rows_blocks * block + (rows_blocks - 1) * gap
    uses = []
    for i in range(icons):
        b, j = divmod(i, 100)
        bx = (b % per_row_blocks) * (block + gap)
        by = (b // per_row_blocks) * (block + gap)
        x = bx + (j % 10) * cell
        y = by + (j // 10) * cell
        cls = "hit" if i < k else "miss"
        uses.append(f'<use href="#w" x="{x}" y="{y}" class="{cls}"/>')
    return (
        f'<svg class="icon-array" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="icon-array-title" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="icon-array-title">{_esc(title)}</title>'
        '<defs><symbol id="w" viewBox="0 0 10 10" width="10" height="10">'
        '<circle cx="5" cy="2.3" r="1.7"/>'
        '<path d="M2.2 9.4 L3.2 4.9 Q5 4.1 6.8 4.9 L7.8 9.4 Z"/></symbol></defs>'
        + "".join(uses)
        + "</svg>"
    )


def _esc(text: str) -> str:
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def _nice_max(x: float) -> float:
    if x <= 0:
        return 0.01
    exp = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= x:
            return m * exp
    return 10 * exp


def interval_band_svg(row: RiskRow, *, title: str) -> str:
    """The estimate on a risk scale, its interval as a band, the baseline marked."""
    top = max(
        [row.risk]
        + ([row.interval[1]] if row.interval else [])
        + ([row.baseline] if row.baseline is not None else [])
    )
    xmax = min(1.0, _nice_max(top * 1.15))
    w, left, right, y0 = 520, 20, 20, 38
    span = w - left - right

    def x(p: float) -> float:
        return left + span * min(max(p, 0.0), xmax) / xmax

    parts = [
        f'<svg class="band" viewBox="0 0 {w} 86" role="img" '
        f'aria-labelledby="band-title-{row.months or 0}" '
        'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="band-title-{row.months or 0}">{_esc(title)}</title>',
        f'<line class="axis" x1="{left}" y1="{y0 + 14}" x2="{w - right}" '
        f'y2="{y0 + 14}"/>',
    ]
    for t in range(6):
        p = xmax * t / 5
        parts.append(
            f'<line class="tick" x1="{x(p):.1f}" y1="{y0 + 14}" x2="{x(p):.1f}" '
            f'y2="{y0 + 19}"/><text class="ticklabel" x="{x(p):.1f}" '
            f'y="{y0 + 32}" text-anchor="middle">{percent(p)}</text>'
        )
    if row.interval:
        lo, hi = row.interval
        parts.append(
            f'<rect class="interval" x="{x(lo):.1f}" y="{y0 - 4}" '
            f'width="{max(x(hi) - x(lo), 2):.1f}" height="16" rx="3"/>'
        )
    if row.baseline is not None:
        bx = x(row.baseline)
        parts.append(
            f'<line class="baseline" x1="{bx:.1f}" y1="{y0 - 22}" x2="{bx:.1f}" '
            f'y2="{y0 + 14}"/><text class="bandlabel" x="{bx:.1f}" y="{y0 - 26}" '
            f'text-anchor="middle">average {percent(row.baseline)}</text>'
        )
    rx = x(row.risk)
    parts.append(
        f'<circle class="estimate" cx="{rx:.1f}" cy="{y0 + 4}" r="6"/>'
        f'<text class="bandlabel strong" x="{rx:.1f}" y="{y0 - 10}" '
        f'text-anchor="middle">her risk {percent(row.risk)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def interval_text(assessment: RiskAssessment, model: RiskModel) -> str:
    """What the interval means and how it was checked, in words."""
    interval = assessment.interval
    if interval is None:
        return (
            "No interval: this model has no bootstrap ensemble in its bundle, so "
            "the uncertainty of the estimate is not shown."
        )
    lo, hi = interval
    members = len(getattr(model.model, "ensemble_", None) or [])
    text = (
        f"The band is the {INTERVAL_LEVEL:.0%} interval, {percent(lo)} to "
        f"{percent(hi)}: the middle {INTERVAL_LEVEL:.0%} of the estimates of "
        f"{members} refits of the model, each on a resample of its training data "
        "(a bootstrap ensemble). It shows how much the estimate depends on the "
        "limited data the model learned from; it is not a range of outcomes for "
        "her."
    )
    if not lo <= assessment.risk <= hi:
        side = "below" if assessment.risk < lo else "above"
        text += (
            f" Here the estimate itself lies {side} the band: the refits, each on "
            "less distinct data, disagree with the full model for a patient like her."
        )
    coverage = _coverage(model)
    if coverage is not None:
        text += (
            f" Checked against the synthetic generator's true risk, such intervals "
            f"held the true risk for {coverage:.0%} of women (nominal "
            f"{INTERVAL_LEVEL:.0%})."
        )
    else:
        text += (
            " Its coverage was not checked for this model: in the project's first "
            "check against the generator's true risk, a bootstrap interval alone "
            "held it for about 60% of patients, fewer than its nominal "
            f"{INTERVAL_LEVEL:.0%}; read it as the least uncertainty there is."
        )
    return text


def _coverage(model: RiskModel) -> float | None:
    info = model.info
    if info is None:
        return None
    for source in (info.metrics or {}, (info.extra or {}).get("interval") or {}):
        value = source.get("interval_coverage", source.get("coverage"))
        if isinstance(value, Mapping):
            value = value.get("estimate")
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


# --------------------------------------------------------------- the factors


@dataclass(frozen=True)
class FactorView:
    """One factor in plain language."""

    field: str
    label: str
    shown: str
    direction: str
    strength: str
    odds_ratio: float
    contribution: float
    source: str
    derived: bool

    @property
    def sentence(self) -> str:
        """``raises her risk a lot (odds ×2.2)``."""
        if self.direction == "no effect":
            return "makes no difference to her estimate"
        if abs(self.contribution) < 0.01:
            return f"makes almost no difference (odds ×{self.odds_ratio:.2f})"
        verb = "raises" if self.direction == "raises risk" else "lowers"
        return f"{verb} her risk {self.strength} (odds ×{self.odds_ratio:.2f})"


def _shown(value: Any, feat: Feature) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        unit = unit_text(feat.unit)
        return f"{text} {unit}".strip()
    if isinstance(value, int):
        return f"{value} {unit_text(feat.unit)}".strip()
    return str(value).replace("_", " ")


def factor_views(
    assessment: RiskAssessment,
    catalog: Catalog,
    given: set[str] | None = None,
    *,
    k: int = 8,
) -> list[FactorView]:
    """The ``k`` largest contributions of the values she has, largest first.

    ``given`` names the fields that were typed; the others with a value were
    calculated (a T- or Z-score from a BMD) and are marked so.
    """
    out = []
    for f in assessment.factors:
        if not f.given:
            continue
        c = abs(f.contribution)
        strength = "a lot" if c >= 0.7 else "somewhat" if c >= 0.2 else "a little"
        feat = catalog[f.field]
        out.append(
            FactorView(
                field=f.field,
                label=f.label,
                shown=_shown(f.value, feat),
                direction=f.direction,
                strength=strength,
                odds_ratio=f.odds_ratio,
                contribution=f.contribution,
                source=cite(feat.reference),
                derived=given is not None and f.field not in given,
            )
        )
        if len(out) == k:
            break
    return out


# ------------------------------------------------------ what it did not know


@dataclass(frozen=True)
class Unknowns:
    """What the tool did not know or changed: shown, and logged as warnings."""

    missing: list[tuple[str, list[str]]] = field(default_factory=list)
    unusual: list[tuple[str, str]] = field(default_factory=list)
    untrained: list[tuple[str, str]] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_missing(self) -> int:
        return sum(len(labels) for _, labels in self.missing)

    def warnings(self, *, with_text: bool) -> list[dict[str, Any]]:
        """The warnings shown, for the audit log (text only ``with_text``: it may
        hold the patient's values)."""
        out: list[dict[str, Any]] = []
        for kind, items in (
            ("unusual", self.unusual),
            ("untrained", self.untrained),
            ("converted", self.converted),
        ):
            for name, text in items:
                entry: dict[str, Any] = {"kind": kind, "field": name}
                if with_text:
                    entry["text"] = text
                out.append(entry)
        if self.n_missing:
            out.append({"kind": "missing", "count": self.n_missing})
        return out


def unknowns(
    assessment: RiskAssessment,
    model: RiskModel,
    given: Mapping[str, Any],
    units: Mapping[str, str],
) -> Unknowns:
    """Missing inputs, values unusual for the training data, converted units.

    Parameters
    ----------
    assessment : RiskAssessment
    model : RiskModel
        Its ``reference`` (training-data percentiles 10, 50, 90) tells which
        values were unusual where the model learned.
    given : Mapping
        The fields as typed (before validation).
    units : Mapping
        The units they were typed in.
    """
    catalog = model.catalog
    record = assessment.record
    ref = model.reference
    missing: dict[str, list[str]] = {}
    for f in catalog:
        if record.get(f.name) is None:
            missing.setdefault(GROUP_TITLES.get(f.group, f.group), []).append(f.label)
    unusual, untrained, converted = [], [], []
    for name in given:
        if name not in catalog:
            continue
        f = catalog[name]
        value = record.get(name)
        if value is None:
            continue
        if f.name not in ref:
            if not f.derived_from:
                untrained.append(
                    (
                        f.name,
                        f"{f.label}: the training data had (almost) no values for it, "
                        "so the model cannot use it reliably.",
                    )
                )
            continue
        if f.is_numeric and len(ref[f.name]) == 3:
            p10, _, p90 = (float(v) for v in ref[f.name])
            if value < p10 or value > p90:
                side = "below the 10th" if value < p10 else "above the 90th"
                edge = p10 if value < p10 else p90
                unusual.append(
                    (
                        f.name,
                        f"{f.label} = {_shown(float(value), f)}: {side} percentile "
                        f"of the training data ({_shown(float(edge), f)}); few women "
                        "the model learned from were like her here.",
                    )
                )
    for name, unit in units.items():
        if name in catalog and record.get(name) is not None:
            f = catalog[name]
            converted.append(
                (
                    name,
                    f"{f.label}: {given.get(name)} {unit_text(unit)} read as "
                    f"{_shown(float(record[name]), f)} (× {f.unit_factor(unit):g}).",
                )
            )
    return Unknowns(list(missing.items()), unusual, untrained, converted)


# --------------------------------------------------------------- what if


@dataclass(frozen=True)
class WhatIfControl:
    """A control for one modifiable factor."""

    name: str
    label: str
    kind: str  # "bool" or "number"
    unit: str
    current: str
    hint: str


def what_if_controls(
    assessment: RiskAssessment, catalog: Catalog
) -> list[WhatIfControl]:
    """One control per modifiable catalog field, showing her current value."""
    out = []
    for f in catalog:
        if not f.modifiable:
            continue
        value = assessment.record.get(f.name)
        current = "not known" if value is None else _shown(value, f)
        hint = _range_hint(f, 1.0, f.unit) if f.is_numeric else ""
        out.append(
            WhatIfControl(
                f.name,
                f.label,
                "number" if f.is_numeric else "bool",
                unit_text(f.unit),
                current,
                hint,
            )
        )
    return out


def parse_changes(form: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    """The what-if changes a posted form gives (``whatif__<field>``; empty: none)."""
    changes: dict[str, Any] = {}
    for f in catalog:
        if not f.modifiable:
            continue
        raw = form.get(f"whatif__{f.name}")
        text = "" if raw is None else str(raw).strip()
        if not text:
            continue
        if f.is_numeric and _DECIMAL_COMMA.match(text):
            text = text.replace(",", ".")
        changes[f.name] = text
    return changes


def describe_changes(changes: Mapping[str, Any], catalog: Catalog) -> str:
    """``Breastfeeding at assessment: no; Calcium intake: 1500 mg/day``."""
    parts = []
    for name, value in changes.items():
        if name not in catalog:
            parts.append(f"{name}: {value}")
            continue
        f = catalog[name]
        if f.dtype == "bool":
            shown = str(value).strip().lower()
            shown = "yes" if shown in ("true", "yes", "1", "y") else "no"
        else:
            shown = f"{value} {unit_text(f.unit)}".strip()
        parts.append(f"{f.label}: {shown}")
    return "; ".join(parts)


# ------------------------------------------------------------------ the basis


def basis(model: RiskModel) -> dict[str, Any]:
    """The basis of the model (the model card's content, in short).

    What the FDA's 2022 clinical decision support guidance lists for a clinician
    to review the basis of a recommendation: intended use and users, the inputs,
    how the model was developed and validated, and its known limits.
    """
    info = model.info
    catalog = model.catalog
    td = (info.training_data if info else None) or {}
    n_train = td.get("n_rows") or getattr(model.model, "n_train_", None)
    metrics = []
    names = {
        "auroc": "AUROC (discrimination)",
        "calibration_slope": "calibration slope (1 is ideal)",
        "calibration_intercept": "calibration intercept (0 is ideal)",
        "oe_ratio": "observed / expected",
        "brier": "Brier score",
    }
    for key, label in names.items():
        m = (info.metrics if info else {}).get(key)
        if isinstance(m, Mapping) and m.get("estimate") is not None:
            ci = ""
            if m.get("lower") is not None and m.get("upper") is not None:
                ci = f" ({m['lower']:.3g} to {m['upper']:.3g})"
            metrics.append((label, f"{m['estimate']:.3g}{ci}"))
    members = len(getattr(model.model, "ensemble_", None) or [])
    groups = [
        (GROUP_TITLES.get(g, g), len(catalog.by_group(g))) for g in _groups(catalog)
    ]
    return {
        "model": model.name,
        "version": model.version,
        "created": info.created if info else None,
        "n_train": n_train,
        "prevalence": td.get("prevalence", getattr(model.model, "prevalence_", None)),
        "experiment": (info.extra or {}).get("experiment") if info else None,
        "metrics": metrics,
        "members": members,
        "n_fields": len(catalog),
        "required": [catalog[n].label for n in catalog.required],
        "groups": groups,
        "catalog_sha256": catalog.sha256,
    }

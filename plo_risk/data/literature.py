"""Published PLO statistics and the scorecard of a synthetic cohort against them.

The statistics are in ``plo_risk/data/plo_literature.yaml`` (each with its case
definition, denominator and source). :func:`check_statistics` applies each one's
own case definition to whole episode histories (``plo_risk.synthetic
.episode_histories``) and scores the simulated value against the published one.
The generator never reads this table: it is the yardstick, not a parameter file.

Tolerance (the table's rule): the 95% interval of the published value (Wilson for a
proportion, mean +- 1.96 SE for a mean), widened by 1.5 on each side for
differences in case definition and referral. The standardized deviation is
``(simulated - published) / sqrt(SE_published**2 + SE_simulated**2)``.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from plo_risk.utils.intervals import Z95 as _Z95
from plo_risk.utils.intervals import wilson

__all__ = [
    "LiteratureError",
    "Scorecard",
    "ScorecardRow",
    "check_statistics",
    "default_literature_path",
    "load_literature",
]

_WIDEN = 1.5
_KINDS = ("proportion", "rate_per_million", "mean")


class LiteratureError(ValueError):
    """The literature table is malformed or names a statistic without a definition."""


def default_literature_path() -> Path:
    """The shipped table: ``plo_risk/data/plo_literature.yaml``."""
    return Path(__file__).with_name("plo_literature.yaml")


def load_literature(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The statistics of a literature table (the shipped one by default).

    Raises
    ------
    LiteratureError
        If an entry lacks a field its kind needs, or has an unknown kind.
    """
    path = Path(path) if path is not None else default_literature_path()
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    stats = doc.get("statistics") if isinstance(doc, dict) else None
    if not isinstance(stats, list) or not stats:
        raise LiteratureError(f"{path}: expected a mapping with a 'statistics' list")
    problems = []
    for i, s in enumerate(stats):
        sid = s.get("id", f"#{i}")
        need = {"id", "definition", "kind", "value", "n", "source"}
        if s.get("kind") == "mean":
            need.add("sd")
        for key in sorted(need - set(s)):
            problems.append(f"{sid}: missing {key!r}")
        if s.get("kind") not in _KINDS:
            problems.append(f"{sid}: kind={s.get('kind')!r}: must be one of {_KINDS}")
    if problems:
        raise LiteratureError(f"{path}: " + "; ".join(problems))
    return stats


# ------------------------------------------------------------ case definitions
# Each takes the episodes and events frames and returns (simulated value, its SE,
# its denominator, a note). "Cases" are episodes with a fracture in the window.


def _cases(ep: pd.DataFrame) -> pd.DataFrame:
    return ep[ep["first_fracture_month"].notna().to_numpy()]


def _share(mask: np.ndarray) -> tuple[float, float, int]:
    m = int(mask.size)
    v = float(mask.mean()) if m else float("nan")
    return v, float(np.sqrt(v * (1 - v) / m)) if m else float("nan"), m


def _mean(x: np.ndarray) -> tuple[float, float, int]:
    m = int(x.size)
    v = float(x.mean()) if m else float("nan")
    return v, float(x.std(ddof=1) / np.sqrt(m)) if m > 1 else float("nan"), m


def _any_event(ev: pd.DataFrame, ep: pd.DataFrame, sites, lo, hi) -> np.ndarray:
    sel = ev["site"].isin(sites).to_numpy() & (ev["month"] >= lo).to_numpy()
    sel &= (ev["month"] <= hi).to_numpy()
    return ep["patient_id"].isin(ev.loc[sel, "patient_id"]).to_numpy()


def _incidence_claims(ep, ev):
    v, se, m = _share(_any_event(ev, ep, ("vertebral", "hip"), -3.0, 12.0))
    return (
        v * 1e6,
        se * 1e6,
        m,
        (
            "vertebral or hip (pelvis, proximal femur) fracture from -3 to 12 months per "
            "delivery; the generator's window opens at -3 months, not -5"
        ),
    )


def _hospitalisation(ep, ev):
    v, se, m = _share(_any_event(ev, ep, ("vertebral", "hip", "other"), 0.0, 18.0))
    return (
        v,
        se,
        m,
        "any fracture from delivery to 18 months (the window ends there, not at 24)",
    )


def _vertebral_share(ep, ev):
    cases = _cases(ep)
    vert = ev.loc[ev["site"].to_numpy() == "vertebral", "patient_id"]
    return (*_share(cases["patient_id"].isin(vert).to_numpy()), "")


def _during_lactation(ep, ev):
    c = _cases(ep)
    t = c["first_fracture_month"].to_numpy()
    return (*_share((t >= 0) & (t < c["lactation_total_months"].to_numpy())), "")


def _third_trimester(ep, ev):
    return (*_share(_cases(ep)["first_fracture_month"].to_numpy() < 0), "")


def _fractures_per_case(ep, ev):
    return (
        *_mean(_cases(ep)["n_fractures"].to_numpy(float)),
        "fractures in the window",
    )


def _five_or_more(ep, ev):
    return (
        *_share(_cases(ep)["n_fractures"].to_numpy() >= 5),
        "fractures in the window",
    )


def _first_pregnancy(ep, ev):
    return (*_share(_cases(ep)["parity"].to_numpy() == 1), "")


def _age_at_fracture(ep, ev):
    c = _cases(ep)
    age = c["age_delivery"].to_numpy() + c["first_fracture_month"].to_numpy() / 12.0
    return (*_mean(age), "")


def _spine_at_fracture(ep, ev):
    z = _cases(ep)["z_lumbar_spine_at_first_fracture"].to_numpy(float)
    return (*_mean(z), "at the first fracture; T = Z (one young-adult reference)")


def _heparin_share(ep, ev):
    return (*_share(_cases(ep)["heparin"].to_numpy(bool)), "")


def _near_delivery(ep, ev):
    t = _cases(ep)["first_fracture_month"].to_numpy()
    return (*_share((t >= -3) & (t <= 3)), "first fracture (not back pain)")


DEFINITIONS: dict[str, Callable[[pd.DataFrame, pd.DataFrame], tuple]] = {
    "incidence_claims": _incidence_claims,
    "fracture_hospitalisation_2y": _hospitalisation,
    "vertebral_share": _vertebral_share,
    "during_lactation_share": _during_lactation,
    "third_trimester_share": _third_trimester,
    "fractures_per_case": _fractures_per_case,
    "five_or_more_share": _five_or_more,
    "first_pregnancy_share": _first_pregnancy,
    "age_at_fracture": _age_at_fracture,
    "spine_t_at_diagnosis": _spine_at_fracture,
    "heparin_exposed_share": _heparin_share,
    "onset_near_delivery_share": _near_delivery,
    "seed_cohort_lumbar_z": _spine_at_fracture,
}


# ------------------------------------------------------------------ scorecard


@dataclass(frozen=True)
class ScorecardRow:
    """One published statistic against its simulated value."""

    id: str
    definition: str
    kind: str
    published: float
    simulated: float
    lower: float
    upper: float
    z: float
    n_published: int
    n_simulated: int
    source: str
    note: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.lower <= self.simulated <= self.upper)


@dataclass(frozen=True)
class Scorecard:
    """The literature check of one synthetic cohort.

    Attributes
    ----------
    rows : list of ScorecardRow
    n_episodes, n_cases : int
        Episodes simulated and those with a fracture in the window.
    """

    rows: list[ScorecardRow]
    n_episodes: int
    n_cases: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def share_within(self) -> float:
        """Share of the statistics within tolerance."""
        return float(np.mean([r.passed for r in self.rows]))

    @property
    def max_abs_z(self) -> float:
        return float(max(abs(r.z) for r in self.rows))

    @property
    def acceptable(self) -> bool:
        """At least 80% within tolerance and none beyond 3 standardized deviations."""
        return self.share_within >= 0.8 and self.max_abs_z <= 3.0

    def to_frame(self) -> pd.DataFrame:
        """One row per statistic (published, simulated, tolerance, z, pass)."""
        return pd.DataFrame(
            [
                {
                    "id": r.id,
                    "published": r.published,
                    "simulated": r.simulated,
                    "lower": r.lower,
                    "upper": r.upper,
                    "z": r.z,
                    "passed": r.passed,
                    "n_published": r.n_published,
                    "n_simulated": r.n_simulated,
                    "definition": r.definition,
                    "note": r.note,
                    "source": r.source,
                }
                for r in self.rows
            ]
        )

    def summary(self) -> str:
        k = sum(r.passed for r in self.rows)
        return (
            f"{k}/{len(self.rows)} statistics within tolerance "
            f"({100 * self.share_within:.0f}%); max |z| = {self.max_abs_z:.2f}; "
            f"{self.n_cases:,} cases in {self.n_episodes:,} episodes"
        )

    def __str__(self) -> str:
        head = f"{'statistic':<28} {'published':>10} {'simulated':>10} {'tolerance':>21} {'z':>6}  ok"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(
                f"{r.id:<28} {_fmt(r.published):>10} {_fmt(r.simulated):>10} "
                f"{'[' + _fmt(r.lower) + ', ' + _fmt(r.upper) + ']':>21} "
                f"{r.z:>6.2f}  {'yes' if r.passed else 'NO'}"
            )
        lines.append("-" * len(head))
        lines.append(self.summary())
        return "\n".join(lines)

    def to_json(self) -> str:
        """The scorecard as JSON (:meth:`from_json` reads it back)."""
        return json.dumps(
            {
                "rows": [dataclasses.asdict(r) for r in self.rows],
                "n_episodes": self.n_episodes,
                "n_cases": self.n_cases,
                "meta": self.meta,
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Scorecard:
        """The scorecard written by :meth:`to_json`."""
        doc = json.loads(text)
        return cls(
            rows=[ScorecardRow(**r) for r in doc["rows"]],
            n_episodes=int(doc["n_episodes"]),
            n_cases=int(doc["n_cases"]),
            meta=dict(doc.get("meta") or {}),
        )

    def to_html(self) -> str:
        """A self-contained ``<table>`` (escaped) for the model card."""
        e = html.escape
        body = []
        for r in self.rows:
            body.append(
                "<tr>"
                f"<td>{e(r.id)}</td><td>{e(r.definition)}</td>"
                f"<td>{e(_fmt(r.published))}</td><td>{e(_fmt(r.simulated))}</td>"
                f"<td>{e(_fmt(r.lower))} to {e(_fmt(r.upper))}</td>"
                f"<td>{r.z:.2f}</td><td>{'pass' if r.passed else 'fail'}</td>"
                f"<td>{e(r.source)}{(' (' + e(r.note) + ')') if r.note else ''}</td>"
                "</tr>"
            )
        return (
            '<table class="reference-check">'
            "<caption>Generator against published PLO statistics: "
            f"{e(self.summary())}</caption>"
            "<thead><tr><th>statistic</th><th>definition</th><th>published</th>"
            "<th>simulated</th><th>tolerance</th><th>z</th><th>result</th>"
            "<th>source</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>"
        )


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "nan"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if v != 0 and abs(v) < 0.01:
        return f"{v:.3g}"
    return f"{v:.3f}"


def check_statistics(
    episodes: pd.DataFrame,
    events: pd.DataFrame,
    statistics: list[dict[str, Any]],
    definitions: dict[str, Callable] | None = None,
) -> Scorecard:
    """Score episode histories against published statistics.

    Parameters
    ----------
    episodes, events : pandas.DataFrame
        As :class:`plo_risk.synthetic.EpisodeHistories` holds them.
    statistics : list of dict
        :func:`load_literature`.
    definitions : dict, default=None
        Statistic id -> case definition; ``None``: :data:`DEFINITIONS`.

    Raises
    ------
    LiteratureError
        If a statistic has no case definition.
    """
    defs = DEFINITIONS if definitions is None else definitions
    unknown = [s["id"] for s in statistics if s["id"] not in defs]
    if unknown:
        raise LiteratureError(
            "no case definition for "
            + ", ".join(unknown)
            + f" (known: {', '.join(defs)})"
        )
    rows = []
    for s in statistics:
        sim, se_sim, m, note = defs[s["id"]](episodes, events)
        v, n = float(s["value"]), float(s["n"])
        if s["kind"] == "mean":
            se = float(s["sd"]) / np.sqrt(n)
            lo, hi = v - _Z95 * se, v + _Z95 * se
        else:
            unit = 1e6 if s["kind"] == "rate_per_million" else 1.0
            lo, hi = (b * unit for b in wilson(v / unit, n))
            se = np.sqrt((v / unit) * (1 - v / unit) / n) * unit
        lower, upper = v - _WIDEN * (v - lo), v + _WIDEN * (hi - v)
        se_all = np.sqrt(se**2 + (se_sim if np.isfinite(se_sim) else 0.0) ** 2)
        rows.append(
            ScorecardRow(
                id=s["id"],
                definition=" ".join(str(s["definition"]).split()),
                kind=s["kind"],
                published=v,
                simulated=float(sim),
                lower=float(lower),
                upper=float(upper),
                z=float((sim - v) / se_all) if se_all > 0 else float("nan"),
                n_published=int(n),
                n_simulated=int(m),
                source=str(s["source"]),
                note=note,
            )
        )
    n_cases = int(episodes["first_fracture_month"].notna().sum())
    return Scorecard(rows, len(episodes), n_cases)

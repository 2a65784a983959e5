"""The TRIPOD+AI checklist, shipped as data, and where the model card answers it.

Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for
reporting clinical prediction models that use regression or machine learning
methods. BMJ 2024;385:e078378. doi:10.1136/bmj-2023-078378. The items live in
``plo_risk/report/tripod_ai.yaml`` (in the wheel), read by :func:`tripod_checklist`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from plo_risk.report.html import e

__all__ = [
    "ANCHORS",
    "APPLIES_TO",
    "SECTIONS",
    "TripodItem",
    "tripod_checklist",
    "tripod_section",
]

_TRIPOD_FILE = "tripod_ai.yaml"
#: The statement's D/E column: development only, evaluation only, or both.
APPLIES_TO = ("D;E", "D", "E")
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
    ("horizons", "Risk over the months ahead"),
    ("explanations", "Explanations (SHAP)"),
    ("subgroups", "Subgroups"),
    ("recalibration", "Recalibration"),
    ("interpretation", "Interpretation"),
    ("limitations", "Limitations"),
    ("tripod-ai", "TRIPOD+AI checklist"),
)
ANCHORS = {"title"} | {s for s, _ in SECTIONS}


@dataclass(frozen=True)
class TripodItem:
    """One TRIPOD+AI (sub-)item and where the model card answers it."""

    id: str
    item: int
    section: str
    topic: str
    text: str
    applies_to: str = "D;E"
    answered_in: tuple[str, ...] = ()
    not_applicable: str | None = None
    note: str | None = None


@lru_cache(maxsize=1)
def _checklist() -> tuple[str, tuple[TripodItem, ...]]:
    path = resources.files("plo_risk.report") / _TRIPOD_FILE
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
        unknown = sorted(set(answered) - ANCHORS)
        if unknown:
            raise ValueError(
                f"{where}: answered_in names {unknown}, which are not sections of "
                f"the model card; allowed: {', '.join(sorted(ANCHORS))}"
            )
        applies = raw.get("applies_to")
        if applies not in APPLIES_TO:
            raise ValueError(
                f"{where}: applies_to={applies!r}: must be one of "
                f"{', '.join(APPLIES_TO)} (the statement's D/E column)"
            )
        items.append(
            TripodItem(
                id=str(raw["id"]),
                item=int(raw["item"]),
                section=str(raw["section"]),
                topic=str(raw["topic"]),
                text=str(raw["text"]),
                applies_to=applies,
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


def tripod_section() -> str:
    """The checklist as the card's HTML table, each item linked to its section."""
    citation, items = _checklist()
    titles = dict(SECTIONS) | {"title": "Title"}
    rows = []
    for it in items:
        if it.answered_in:
            where = ", ".join(
                f'<a href="#{a}">{e(titles[a])}</a>' for a in it.answered_in
            )
        else:
            where = f'<span class="na">Not applicable: {e(it.not_applicable)}</span>'
        if it.note:
            where += f"<br><small>{e(it.note)}</small>"
        heading = e(
            it.section if it.section == it.topic else f"{it.section}: {it.topic}"
        )
        rows.append(
            f'<tr id="tripod-{e(it.id)}"><td><strong>{e(it.id)}</strong></td>'
            f"<td>{heading}</td><td>{e(it.applies_to)}</td><td>{e(it.text)}</td>"
            f"<td>{where}</td></tr>"
        )
    return (
        f"<p>{e(citation)}. All 27 items with their "
        "sub-items (paraphrased; the statement has the full wording), each linked "
        "to the section of this card that answers it, or with the reason it does "
        "not apply. <em>D/E</em> is the statement's column: D for items on "
        "developing a model, E for items on evaluating one, D;E for both. The "
        "checklist ships with the package "
        "(<code>plo_risk/report/tripod_ai.yaml</code>).</p>"
        "<table><thead><tr><th>item</th><th>topic</th><th>D/E</th>"
        "<th>what it asks</th>"
        f"<th>where answered</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )

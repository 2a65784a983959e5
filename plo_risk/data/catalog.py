"""The feature catalog: every input field, defined once.

The catalog lives in ``features/catalog.yaml`` at the top of the repository and is
shipped inside the wheel as ``plo_risk/_data/catalog.yaml``. Everything that knows
about input fields (validation, the feature pipeline, explanation labels, the model
card, ``features/README.md``) is generated from it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from plo_risk.data.references import (
    UnknownCitationError,
    cite_keys,
    format_citation,
    load_references,
)
from plo_risk.data.rules import Rule, RuleError, load_rules
from plo_risk.utils.config import ConfigError, safe_yaml
from plo_risk.utils.resources import shipped_file

__all__ = [
    "MISSING_TEXT",
    "Catalog",
    "CatalogError",
    "Feature",
    "catalog_markdown",
    "default_catalog_path",
    "load_catalog",
]

GROUPS = (
    "demographic",
    "reproductive",
    "lactation",
    "nutrition",
    "lifestyle",
    "family_genetic",
    "medication",
    "comorbidity",
    "markers",
    "bmd",
)
DTYPES = ("float", "int", "bool", "category")
#: Text that means "not given" in any field, compared after stripping spaces and
#: ignoring case: what CSV writers, spreadsheets, R, pandas and databases put in an
#: empty cell. The same rule holds for a record's string values and a frame's text
#: cells (how every CSV column is read), so both paths give one verdict.
MISSING_TEXT = frozenset({"", "na", "n/a", "#n/a", "<na>", "nan", "null", "none"})
DIRECTIONS = ("increases", "decreases", "none")
_REQUIRED_KEYS = (
    "name",
    "group",
    "dtype",
    "missing",
    "label",
    "modifiable",
    "direction",
    "reference",
)
_KNOWN_KEYS = set(_REQUIRED_KEYS) | {
    "unit",
    "alt_units",
    "range",
    "categories",
    "bmd_reference",
    "derived_from",
    "score",
}


class CatalogError(ValueError):
    """The feature catalog file is malformed (raised at load, naming the field)."""


@dataclass(frozen=True)
class Feature:
    """One input field of the catalog.

    Attributes mirror the keys of ``features/catalog.yaml``; see the header of that
    file for their meaning.
    """

    name: str
    group: str
    dtype: Literal["float", "int", "bool", "category"]
    label: str
    missing: bool
    modifiable: bool
    direction: Literal["increases", "decreases", "none"]
    reference: str
    unit: str = ""
    alt_units: dict[str, float] = field(default_factory=dict)
    range: tuple[float, float] | None = None
    categories: tuple[str, ...] = ()
    bmd_reference: tuple[float, float] | None = None
    derived_from: str | None = None
    score: Literal["t", "z"] | None = None

    @property
    def is_numeric(self) -> bool:
        """True for ``float`` and ``int`` fields."""
        return self.dtype in ("float", "int")

    @property
    def monotone(self) -> int:
        """Monotone constraint for gradient boosting: +1, -1 or 0."""
        return {"increases": 1, "decreases": -1, "none": 0}[self.direction]

    def allowed(self) -> str:
        """Plain description of the allowed values, used in error messages."""
        if self.dtype == "bool":
            return "must be true or false (also accepted: yes/no, 1/0)"
        if self.dtype == "category":
            return "must be one of " + ", ".join(self.categories)
        lo, hi = self.range  # type: ignore[misc]
        kind = "a whole number" if self.dtype == "int" else "a number"
        unit = f" {self.unit}" if self.unit and self.unit != "1" else ""
        return f"must be {kind} between {_fmt(lo)} and {_fmt(hi)}{unit}"

    def values_text(self) -> str:
        """Allowed values in short: ``0 to 60``, ``yes / no`` or the categories."""
        if self.is_numeric:
            return f"{self.range[0]:g} to {self.range[1]:g}"  # type: ignore[index]
        if self.dtype == "category":
            return ", ".join(self.categories)
        return "yes / no"

    def unit_factor(self, unit: str) -> float:
        """Factor that converts a value in ``unit`` to the canonical unit.

        Raises
        ------
        KeyError
            If ``unit`` is not the canonical unit or one of ``alt_units``.
        """
        if unit == self.unit:
            return 1.0
        return self.alt_units[unit]


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True, eq=False)
class Catalog:
    """The ordered set of catalog features.

    Examples
    --------
    >>> from plo_risk.data.catalog import load_catalog
    >>> cat = load_catalog()
    >>> cat["vitamin_d_25oh"].unit
    'ng/mL'
    >>> "parity" in cat
    True
    """

    features: tuple[Feature, ...]
    sha256: str
    path: str
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.features})

    # Two catalogs are the same when their files have the same bytes.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalog) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __getitem__(self, name: str) -> Feature:
        try:
            return self._by_name[name]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"{name!r} is not a catalog field") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def __iter__(self):
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def names(self) -> list[str]:
        """Field names in catalog order."""
        return [f.name for f in self.features]

    @property
    def required(self) -> list[str]:
        """Fields that may not be missing."""
        return [f.name for f in self.features if not f.missing]

    def by_group(self, group: str) -> list[Feature]:
        """Features of one group, in catalog order."""
        return [f for f in self.features if f.group == group]

    @property
    def bmd_sites(self) -> list[Feature]:
        """The BMD (g/cm2) fields that have a young-adult reference."""
        return [f for f in self.features if f.bmd_reference is not None]

    def scores_of(self, site: str) -> list[Feature]:
        """T- and Z-score fields derived from the BMD field ``site``."""
        return [f for f in self.features if f.derived_from == site]


def default_catalog_path() -> Path:
    """Path of the catalog shipped with the package (or the repository's in a checkout)."""
    return shipped_file("catalog.yaml", Path("features") / "catalog.yaml")


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and check a feature catalog.

    Parameters
    ----------
    path : str or Path, default=None
        A catalog YAML file. ``None`` loads the catalog shipped with the package
        (cached).

    Returns
    -------
    Catalog

    Raises
    ------
    CatalogError
        On duplicate names, unknown keys, groups, dtypes or directions, bad ranges,
        unknown or non-positive unit factors, a T/Z score without its BMD field, or a
        reference that cites a key no ``docs/references/*.bib`` defines.
    """
    if path is None:
        return _load_default()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> Catalog:
    return _load(default_catalog_path())


def _load(path: Path) -> Catalog:
    raw = path.read_bytes()
    try:
        doc = safe_yaml(raw, str(path))
    except ConfigError as exc:
        raise CatalogError(str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("fields"), list):
        raise CatalogError(f"{path}: expected a mapping with a 'fields' list")
    extra = sorted(set(doc) - {"version", "fields", "rules"})
    if extra:
        raise CatalogError(
            f"{path}: unknown top-level keys {extra}; allowed: version, fields, rules"
        )
    features = []
    seen: set[str] = set()
    for i, entry in enumerate(doc["fields"]):
        feat = _parse_feature(entry, where=f"{path}: field #{i + 1}")
        if feat.name in seen:
            raise CatalogError(f"{path}: duplicate field name {feat.name!r}")
        seen.add(feat.name)
        features.append(feat)
    _check_citations(features, path)
    by_name = {f.name: f for f in features}
    for f in features:
        if f.derived_from is not None:
            site = by_name.get(f.derived_from)
            if site is None or site.bmd_reference is None:
                raise CatalogError(
                    f"{path}: {f.name}.derived_from={f.derived_from!r}: must name a "
                    "BMD field that has a bmd_reference"
                )
    try:
        rules = load_rules(doc.get("rules"), features, str(path))
    except RuleError as exc:
        raise CatalogError(str(exc)) from None
    refs = load_references()
    for rule in rules:
        try:
            format_citation(rule.reference, refs)
        except UnknownCitationError as exc:
            raise CatalogError(f"{path}: rule {rule.name}.reference: {exc}") from None
    return Catalog(tuple(features), hashlib.sha256(raw).hexdigest(), str(path), rules)


def _check_citations(features: list[Feature], path: Path) -> None:
    refs = load_references()
    for f in features:
        try:
            format_citation(f.reference, refs)
        except UnknownCitationError as exc:
            raise CatalogError(f"{path}: {f.name}.reference: {exc}") from None


def _parse_feature(entry: Any, where: str) -> Feature:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: expected a mapping, got {entry!r}")
    name = entry.get("name", "?")
    where = f"{where} ({name})"
    missing_keys = [k for k in _REQUIRED_KEYS if k not in entry]
    if missing_keys:
        raise CatalogError(f"{where}: missing keys {missing_keys}")
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise CatalogError(f"{where}: unknown keys {unknown}")
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise CatalogError(f"{where}: name must be a snake_case identifier")
    for key, allowed in (
        ("group", GROUPS),
        ("dtype", DTYPES),
        ("direction", DIRECTIONS),
    ):
        if entry[key] not in allowed:
            raise CatalogError(
                f"{where}: {key}={entry[key]!r}: must be one of {', '.join(allowed)}"
            )
    for key in ("missing", "modifiable"):
        if not isinstance(entry[key], bool):
            raise CatalogError(f"{where}: {key} must be true or false")
    dtype = entry["dtype"]
    rng = None
    if dtype in ("float", "int"):
        if "unit" not in entry or "range" not in entry:
            raise CatalogError(f"{where}: numeric fields need 'unit' and 'range'")
        rng = entry["range"]
        if (
            not isinstance(rng, list)
            or len(rng) != 2
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in rng)
            or rng[0] >= rng[1]
        ):
            raise CatalogError(f"{where}: range={rng!r}: must be [min, max], min < max")
        rng = (float(rng[0]), float(rng[1]))
    elif "range" in entry:
        raise CatalogError(f"{where}: range is only for numeric fields")
    categories: tuple[str, ...] = ()
    if dtype == "category":
        cats = entry.get("categories")
        if (
            not cats
            or not all(isinstance(c, str) for c in cats)
            or len(set(cats)) != len(cats)
        ):
            raise CatalogError(
                f"{where}: categories must be a list of distinct strings"
            )
        if taken := [c for c in cats if c.strip().lower() in MISSING_TEXT]:
            raise CatalogError(
                f"{where}: categories {taken!r}: these words mean a missing value "
                f"({', '.join(sorted(repr(t) for t in MISSING_TEXT))}); name the "
                "category otherwise"
            )
        categories = tuple(cats)
    alt = entry.get("alt_units") or {}
    if alt and dtype not in ("float", "int"):
        raise CatalogError(f"{where}: alt_units are only for numeric fields")
    for unit, factor in alt.items():
        if not isinstance(unit, str) or not unit or unit == entry.get("unit"):
            raise CatalogError(f"{where}: alternate unit {unit!r} is not a new unit")
        if (
            not isinstance(factor, (int, float))
            or not math.isfinite(factor)
            or factor <= 0
        ):
            raise CatalogError(
                f"{where}: alt_units[{unit!r}]={factor!r}: must be a positive number"
            )
    bref = entry.get("bmd_reference")
    if bref is not None:
        if (
            not isinstance(bref, dict)
            or set(bref) != {"mean", "sd"}
            or not bref["sd"] > 0
            or not bref["mean"] > 0
        ):
            raise CatalogError(f"{where}: bmd_reference must be {{mean: >0, sd: >0}}")
        bref = (float(bref["mean"]), float(bref["sd"]))
    score = entry.get("score")
    if (score is None) != (entry.get("derived_from") is None):
        raise CatalogError(f"{where}: 'score' and 'derived_from' go together")
    if score not in (None, "t", "z"):
        raise CatalogError(f"{where}: score={score!r}: must be t or z")
    return Feature(
        name=name,
        group=entry["group"],
        dtype=dtype,
        label=str(entry["label"]),
        missing=entry["missing"],
        modifiable=entry["modifiable"],
        direction=entry["direction"],
        reference=str(entry["reference"]),
        unit=str(entry.get("unit", "")),
        alt_units={str(k): float(v) for k, v in alt.items()},
        range=rng,
        categories=categories,
        bmd_reference=bref,
        derived_from=entry.get("derived_from"),
        score=score,
    )


_GROUP_TITLES = {
    "demographic": "Demographic",
    "reproductive": "Reproductive history and timing",
    "lactation": "Lactation",
    "nutrition": "Nutrition",
    "lifestyle": "Lifestyle",
    "family_genetic": "Family history and genetics",
    "medication": "Medication",
    "comorbidity": "Comorbidity",
    "markers": "Bone-turnover markers ([@mishra2024, Table 1])",
    "bmd": "Bone mineral density (DXA)",
}


def catalog_markdown(catalog: Catalog | None = None) -> str:
    """Render the catalog as the Markdown of ``features/README.md``.

    Parameters
    ----------
    catalog : Catalog, default=None
        ``None`` uses the shipped catalog.

    Returns
    -------
    str
        Sources in short form (``Mishra et al. 2024, Table 3``), with the full
        reference of every cited key at the end.
    """
    catalog = catalog or load_catalog()
    refs = load_references()
    lines = [
        "# Feature catalog",
        "",
        "<!-- Generated from features/catalog.yaml by "
        "`plo-risk catalog --markdown > features/README.md`; do not edit by hand. -->",
        "",
        f"{len(catalog)} input fields. *Required* fields must be given; every other "
        "field may be left out (the models handle missing values). A value is "
        "missing when it is absent, null, NaN, or text that is blank or one of "
        f"{', '.join(f'`{t}`' for t in sorted(MISSING_TEXT) if t)} (any case, "
        "spaces around ignored), for every field, in a record and in a frame or "
        "CSV alike; a missing required field is refused. Alternate units "
        "are accepted with `units={field: unit}` in `validate_record` and "
        "`validate_frame`; values are converted to the canonical unit "
        "(canonical = value × factor). *Direction* is how a higher value (or *yes*) "
        "moves fracture risk; the champion model is constrained to follow it. "
        "T- and Z-scores are derived from BMD in g/cm² (and BMD from a score) "
        "with the young-adult reference given.",
        "",
    ]
    for group in GROUPS:
        feats = catalog.by_group(group)
        if not feats:
            continue
        lines += [
            f"## {format_citation(_GROUP_TITLES[group], refs)}",
            "",
            "| field | label | type | unit | range / values | alternate units "
            "| required | modifiable | direction | source |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f in feats:
            values = f.values_text()
            if f.bmd_reference:
                values += (
                    f" (reference {f.bmd_reference[0]:g} ± {f.bmd_reference[1]:g})"
                )
            if f.derived_from:
                values += f" (from `{f.derived_from}`)"
            alt = ", ".join(f"{u} (×{k:g})" for u, k in f.alt_units.items())
            cells = [
                f"`{f.name}`",
                f.label,
                f.dtype,
                f.unit,
                values,
                alt,
                "no" if f.missing else "**yes**",
                "yes" if f.modifiable else "no",
                f.direction,
                format_citation(f.reference, refs),
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    if catalog.rules:
        lines += [
            "## Cross-field rules",
            "",
            "A record or row that breaks one is rejected with the rule's name (its "
            "reported field first). A rule applies only when every field it names is "
            "given, to the values as given (before T/Z are derived from BMD).",
            "",
            "| rule | requires | why | source |",
            "|---|---|---|---|",
        ]
        for r in catalog.rules:
            cells = [
                f"`{r.name}`",
                r.requirement(),
                r.explain,
                format_citation(r.reference, refs),
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    cited = {k for f in catalog for k in cite_keys(f.reference)}
    cited |= {k for r in catalog.rules for k in cite_keys(r.reference)}
    cited |= {k for t in _GROUP_TITLES.values() for k in cite_keys(t)}
    lines += ["## References", ""]
    for ref in sorted((refs[k] for k in cited), key=lambda r: r.short().lower()):
        lines.append(f"- **{ref.short()}** (`{ref.key}`). {ref.full()}")
    lines.append("")
    return "\n".join(lines)[:-1] + "\n"

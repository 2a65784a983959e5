"""Cross-field rules: what one field says about another, declared in the catalog.

A value can be in range and still contradict another: 10 months of breastfeeding at
4 months postpartum, a Z-score of -2.8 beside a T-score of -1.0 at the same site, a
T-score that the given BMD does not give. The ``rules:`` section of
``features/catalog.yaml`` declares each such rule; :func:`load_rules` reads and
checks them against the fields, and :meth:`Rule.broken` finds the rows that break
one. Validation of a record and of a frame both call it on the values as given
(before any T/Z score is derived from a BMD), so both reject with the same message:
the rule's name, what it requires and why.

Three kinds of rule, each on the fields' canonical values:

``at_most``
    ``field <= other + tolerance``; with ``other_floor``, an ``other`` below it
    counts as the floor (``months_postpartum`` is negative in pregnancy, when
    breastfeeding after this birth is 0 months).
``agree``
    ``|field - other| <= tolerance``. When ``other`` is the BMD a T- or Z-score is
    derived from, the BMD is first turned into a score with the site's young-adult
    reference, so the tolerance is in SD.
``requires``
    when ``when`` holds, ``then`` must: each a field with one test, ``is`` (a bool
    or category value), ``above``, ``at_least``, ``below`` or ``given: true``.

A rule applies to a row only when every field it names is given; a missing value
breaks no rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from plo_risk.data.catalog import Feature

__all__ = ["KINDS", "Condition", "Rule", "RuleError", "load_rules"]

KINDS = ("at_most", "agree", "requires")
_TESTS = ("is", "above", "at_least", "below", "given")
_RULE_KEYS = {
    "name",
    "kind",
    "field",
    "other",
    "other_floor",
    "tolerance",
    "when",
    "then",
    "explain",
    "reference",
}
_REQUIRED = {
    "at_most": ("name", "kind", "field", "other", "explain", "reference"),
    "agree": ("name", "kind", "field", "other", "tolerance", "explain", "reference"),
    "requires": ("name", "kind", "when", "then", "explain", "reference"),
}


class RuleError(ValueError):
    """A malformed rule in the catalog (the message names the rule and the key)."""


@dataclass(frozen=True)
class Condition:
    """One field and one test of a ``requires`` rule: ``breastfeeding_now is true``."""

    field: str
    test: Literal["is", "above", "at_least", "below", "given"]
    value: Any

    def text(self) -> str:
        """``parity at least 2``, ``breastfeeding_now is true``."""
        if self.test == "given":
            return f"{self.field} given"
        if isinstance(self.value, bool):
            shown = str(self.value).lower()
        elif isinstance(self.value, float):
            shown = f"{self.value:g}"
        else:
            shown = str(self.value)
        return f"{self.field} {self.test.replace('_', ' ')} {shown}"

    def holds(self, values: np.ndarray, feature: Feature) -> np.ndarray:
        """Row mask where the condition holds (False where the value is missing)."""
        known = ~np.isnan(values)
        if self.test == "given":
            return known
        if self.test == "is":
            target = (
                float(feature.categories.index(self.value))
                if feature.dtype == "category"
                else float(bool(self.value))
            )
            return known & (values == target)
        with np.errstate(invalid="ignore"):
            if self.test == "above":
                return known & (values > self.value)
            if self.test == "at_least":
                return known & (values >= self.value)
            return known & (values < self.value)


@dataclass(frozen=True)
class Rule:
    """One cross-field rule of the catalog (see the module docstring).

    Attributes
    ----------
    name : str
        Snake-case identifier, named in every rejection.
    kind : {"at_most", "agree", "requires"}
    field, other : str
        The constrained field and the one it is compared with (``at_most``,
        ``agree``); for ``requires``, ``field`` is the ``when`` field.
    tolerance : float
    other_floor : float or None
    when, then : Condition or None
        For ``requires``.
    explain : str
        Why, in plain words.
    reference : str
        The source, cited by key as in the catalog, or "by definition".
    bmd : tuple of (mean, sd) or None
        For ``agree`` of a score with its BMD: the site's young-adult reference.
    unit : str
        The unit of ``field`` (and of the tolerance).
    """

    name: str
    kind: Literal["at_most", "agree", "requires"]
    field: str
    explain: str
    reference: str
    other: str | None = None
    tolerance: float = 0.0
    other_floor: float | None = None
    when: Condition | None = None
    then: Condition | None = None
    bmd: tuple[float, float] | None = None
    unit: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field the rule reads, the reported one first."""
        if self.kind == "requires":
            assert self.when is not None and self.then is not None
            return (self.when.field, self.then.field)
        assert self.other is not None
        return (self.field, self.other)

    def requirement(self) -> str:
        """What the rule requires, in symbols and field names."""
        tol = f" + {self.tolerance:g}" if self.tolerance else ""
        if self.kind == "at_most":
            other = self.other
            if self.other_floor is not None:
                other = f"max({self.other}, {self.other_floor:g})"
            return f"{self.field} must be at most {other}{tol}"
        if self.kind == "agree":
            other = self.other
            if self.bmd is not None:
                mean, sd = self.bmd
                other = f"the score of {self.other} ((BMD - {mean:g}) / {sd:g})"
            unit = f" {self.unit}" if self.unit not in ("", "1") else ""
            return f"{self.field} must be within {self.tolerance:g}{unit} of {other}"
        assert self.when is not None and self.then is not None
        return f"{self.when.text()} requires {self.then.text()}"

    def reason(self) -> str:
        """The rejection message, the same for a record and for a frame row."""
        return f"breaks rule {self.name}: {self.requirement()} ({self.explain})"

    def broken(
        self, cols: Mapping[str, np.ndarray], features: Mapping[str, Feature]
    ) -> np.ndarray:
        """Row mask of the rows that break the rule.

        Parameters
        ----------
        cols : Mapping
            Field name to float array of canonical values as given (NaN for
            missing; bools 0/1; categories as codes in catalog order).
        features : Mapping
            Field name to its catalog :class:`~plo_risk.data.catalog.Feature`.
        """
        if self.kind == "requires":
            assert self.when is not None and self.then is not None
            w, t = cols[self.when.field], cols[self.then.field]
            applies = self.when.holds(w, features[self.when.field])
            if self.then.test == "given":
                return applies & np.isnan(t)
            return (
                applies & ~np.isnan(t) & ~self.then.holds(t, features[self.then.field])
            )
        a, b = cols[self.field], cols[self.other]  # type: ignore[index]
        known = ~np.isnan(a) & ~np.isnan(b)
        with np.errstate(invalid="ignore"):
            if self.kind == "at_most":
                if self.other_floor is not None:
                    b = np.maximum(b, self.other_floor)
                return known & (a > b + self.tolerance + 1e-9)
            if self.bmd is not None:
                mean, sd = self.bmd
                b = (b - mean) / sd
            return known & (np.abs(a - b) > self.tolerance + 1e-9)


def load_rules(raw: Any, features: Sequence[Feature], where: str) -> tuple[Rule, ...]:
    """Parse and check the catalog's ``rules:`` list against its fields.

    Parameters
    ----------
    raw : list or None
        The parsed YAML list (``None``: no rules).
    features : sequence of Feature
    where : str
        The catalog path, for messages.

    Returns
    -------
    tuple of Rule

    Raises
    ------
    RuleError
        For an unknown key or kind, a missing key, a field not in the catalog, a
        test that does not fit the field's type, or a duplicate name.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RuleError(f"{where}: 'rules' must be a list of rules")
    by_name = {f.name: f for f in features}
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        rule = _parse_rule(entry, by_name, f"{where}: rule #{i + 1}")
        if rule.name in seen:
            raise RuleError(f"{where}: duplicate rule name {rule.name!r}")
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules)


def _parse_rule(entry: Any, by_name: Mapping[str, Feature], where: str) -> Rule:
    if not isinstance(entry, dict):
        raise RuleError(f"{where}: expected a mapping, got {entry!r}")
    name = entry.get("name", "?")
    where = f"{where} ({name})"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise RuleError(f"{where}: kind={kind!r}: must be one of {', '.join(KINDS)}")
    unknown = sorted(set(entry) - _RULE_KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown keys {unknown}")
    missing = [k for k in _REQUIRED[kind] if k not in entry]
    if missing:
        raise RuleError(f"{where}: missing keys {missing} (needed by kind {kind})")
    if not isinstance(name, str) or not name.isidentifier():
        raise RuleError(f"{where}: name must be a snake_case identifier")
    for key in ("explain", "reference"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise RuleError(f"{where}: {key} must be a non-empty string")
    tolerance = _number(entry.get("tolerance", 0.0), where, "tolerance")
    if tolerance < 0:
        raise RuleError(f"{where}: tolerance={tolerance:g} must be >= 0")
    common = {"name": name, "kind": kind, "explain": entry["explain"].strip()}
    common["reference"] = entry["reference"].strip()
    if kind == "requires":
        when = _condition(entry["when"], by_name, where, "when")
        then = _condition(entry["then"], by_name, where, "then")
        return Rule(field=when.field, when=when, then=then, **common)
    field_, other = (_field(entry[k], by_name, where, k) for k in ("field", "other"))
    for f in (field_, other):
        if not f.is_numeric:
            raise RuleError(f"{where}: {f.name} is {f.dtype}; {kind} compares numbers")
    floor = entry.get("other_floor")
    if floor is not None:
        if kind != "at_most":
            raise RuleError(f"{where}: other_floor is for kind at_most")
        floor = _number(floor, where, "other_floor")
    bmd = None
    if kind == "agree":
        if field_.derived_from == other.name:
            bmd = other.bmd_reference
        elif other.derived_from == field_.name:
            raise RuleError(
                f"{where}: put the score first: field={other.name}, other={field_.name}"
            )
        elif field_.unit != other.unit:
            raise RuleError(
                f"{where}: {field_.name} ({field_.unit}) and {other.name} "
                f"({other.unit}) are in different units"
            )
    return Rule(
        field=field_.name,
        other=other.name,
        tolerance=tolerance,
        other_floor=floor,
        bmd=bmd,
        unit=field_.unit,
        **common,
    )


def _field(name: Any, by_name: Mapping[str, Feature], where: str, key: str) -> Feature:
    if name not in by_name:
        raise RuleError(f"{where}: {key}={name!r} is not a catalog field")
    return by_name[name]


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{where}: {key}={value!r} must be a number")
    return float(value)


def _condition(
    raw: Any, by_name: Mapping[str, Feature], where: str, key: str
) -> Condition:
    if not isinstance(raw, dict) or "field" not in raw:
        raise RuleError(f"{where}: {key} must be {{field: NAME, TEST: VALUE}}")
    tests = [t for t in raw if t != "field"]
    if len(tests) != 1 or tests[0] not in _TESTS:
        raise RuleError(
            f"{where}: {key} needs exactly one test of {', '.join(_TESTS)}; got {tests}"
        )
    feat = _field(raw["field"], by_name, where, f"{key}.field")
    test, value = tests[0], raw[tests[0]]
    if test == "given":
        if value is not True:
            raise RuleError(f"{where}: {key}.given must be true")
    elif test == "is":
        if feat.dtype == "bool" and not isinstance(value, bool):
            raise RuleError(f"{where}: {key}.is={value!r}: {feat.name} is true/false")
        if feat.dtype == "category" and value not in feat.categories:
            raise RuleError(
                f"{where}: {key}.is={value!r}: not a category of {feat.name} "
                f"({', '.join(feat.categories)})"
            )
        if feat.is_numeric:
            raise RuleError(
                f"{where}: {key}.is is for bool and category fields; "
                f"{feat.name} is a number (use above, at_least or below)"
            )
    else:
        if not feat.is_numeric:
            raise RuleError(f"{where}: {key}.{test}: {feat.name} is not a number")
        value = _number(value, where, f"{key}.{test}")
    return Condition(feat.name, test, value)

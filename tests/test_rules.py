"""Cross-field rules: declared in the catalog, one message for a record and a frame."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plo_risk.data.catalog import CatalogError, load_catalog
from plo_risk.data.rules import load_rules
from plo_risk.data.schema import ValidationError, validate_frame, validate_record
from plo_risk.data.synthetic import generate_cohort

CATALOG = load_catalog()
BASE = {"age_years": 31, "parity": 1, "months_postpartum": 4}

# The contradictory patients, and one more per kind of rule.
CONTRADICTIONS = [
    ({"lactation_months": 10}, "lactation_within_postpartum", "lactation_months"),
    (
        {"z_lumbar_spine": -2.8, "t_lumbar_spine": -1.0},
        "t_and_z_agree_lumbar_spine",
        "z_lumbar_spine",
    ),
    (
        {"bmd_lumbar_spine": 1.20, "t_lumbar_spine": -2.8},
        "t_lumbar_spine_fits_bmd",
        "t_lumbar_spine",
    ),
    (
        {"bmd_femoral_neck": 0.55, "z_femoral_neck": 0.5},
        "z_femoral_neck_fits_bmd",
        "z_femoral_neck",
    ),
    (
        {"months_postpartum": -2, "breastfeeding_now": True, "lactation_months": 0},
        "breastfeeding_after_delivery",
        "breastfeeding_now",
    ),
    (
        {"lactation_exclusive": True, "breastfeeding_now": False},
        "exclusive_while_breastfeeding",
        "lactation_exclusive",
    ),
    (
        {"prior_lactation_months": 12},
        "earlier_lactation_needs_an_earlier_birth",
        "prior_lactation_months",
    ),
    (
        {"interpregnancy_interval_months": 20},
        "interval_needs_an_earlier_birth",
        "interpregnancy_interval_months",
    ),
    (
        {"amenorrhea_months": 9},
        "amenorrhea_within_postpartum",
        "amenorrhea_months",
    ),
]


@pytest.mark.parametrize(
    ("extra", "rule", "field"), CONTRADICTIONS, ids=[c[1] for c in CONTRADICTIONS]
)
def test_contradiction_is_refused_the_same_way_by_record_and_frame(extra, rule, field):
    record = {**BASE, **extra}
    with pytest.raises(ValidationError) as info:
        validate_record(record)
    problems = [p for p in info.value.problems if f"rule {rule}:" in p.reason]
    assert len(problems) == 1 and problems[0].field == field
    res = validate_frame(pd.DataFrame([record, BASE]))
    assert res.n_rejected == 1 and res.valid.index.tolist() == [1]
    rejects = res.rejects[res.rejects["reason"].str.contains(f"rule {rule}:")]
    assert rejects["field"].tolist() == [field]
    # The same words in both paths.
    assert rejects["reason"].iloc[0] == problems[0].reason


def test_near_values_within_tolerance_are_accepted():
    ok = [
        {"lactation_months": 4.05},  # rounding
        {"z_lumbar_spine": -2.0, "t_lumbar_spine": -1.5},
        {"bmd_lumbar_spine": 0.95, "t_lumbar_spine": -2.0},  # Lunar vs Hologic
        {"months_postpartum": -1, "lactation_months": 0},
        {
            "parity": 2,
            "prior_lactation_months": 12,
            "interpregnancy_interval_months": 20,
        },
    ]
    for extra in ok:
        validate_record({**BASE, **extra})


def test_a_rule_needs_every_field_it_names():
    # Only one side given: nothing to contradict.
    validate_record({**BASE, "z_lumbar_spine": -2.8})
    validate_record({**BASE, "lactation_exclusive": True})


def test_the_oracle_cohorts_break_no_rule():
    for setting in ("referral", "population"):
        res = validate_frame(generate_cohort(20_000, setting=setting, seed=7))
        broken = res.rejects[res.rejects["reason"].str.contains("breaks rule")]
        assert broken.empty, broken.head()


def test_rules_are_declared_in_the_catalog_not_in_code(tmp_path):
    doc = yaml.safe_load(Path(CATALOG.path).read_text())
    names = {r["name"] for r in doc["rules"]}
    assert names == {r.name for r in CATALOG.rules}
    # A copy of the catalog without the rules accepts the contradiction.
    doc["rules"] = []
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc))
    bare = load_catalog(path)
    validate_record({**BASE, "lactation_months": 10}, catalog=bare)
    # ... and a new rule there refuses what the shipped catalog accepts.
    doc["rules"] = [
        {
            "name": "calcium_with_supplement",
            "kind": "requires",
            "when": {"field": "calcium_supplement", "is": True},
            "then": {"field": "calcium_intake_mg_day", "at_least": 500},
            "explain": "a test rule",
            "reference": "assumption",
        }
    ]
    path.write_text(yaml.safe_dump(doc))
    custom = load_catalog(path)
    record = {**BASE, "calcium_supplement": True, "calcium_intake_mg_day": 300}
    validate_record(record)
    with pytest.raises(ValidationError, match="breaks rule calcium_with_supplement"):
        validate_record(record, catalog=custom)


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        ({"kind": "between"}, "kind='between': must be one of"),
        ({"field": "lactation_month"}, "field='lactation_month' is not a catalog"),
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
        ({"tolerance": -1}, "tolerance=-1 must be >= 0"),
        ({"field": "ancestry"}, "ancestry is category; at_most compares numbers"),
        ({"reference": "[@nobody2030]"}, "nobody2030"),
    ],
    ids=["kind", "field", "key", "tolerance", "dtype", "citation"],
)
def test_a_malformed_rule_is_a_catalog_error_naming_it(tmp_path, rule, match):
    doc = yaml.safe_load(Path(CATALOG.path).read_text())
    doc["rules"] = [{**doc["rules"][0], **rule}]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CatalogError, match=match) as info:
        load_catalog(path)
    assert "lactation_within_postpartum" in str(info.value)


def test_conditions_check_their_values_against_the_field():
    feats = list(CATALOG)
    bad = [
        {"field": "ancestry", "is": "martian"},
        {"field": "breastfeeding_now", "is": "yes"},
        {"field": "parity", "is": 2},
        {"field": "ancestry", "above": 1},
        {"field": "parity", "given": False},
        {"field": "parity", "above": 1, "below": 3},
    ]
    for cond in bad:
        raw = [
            {
                "name": "r",
                "kind": "requires",
                "when": cond,
                "then": {"field": "parity", "at_least": 1},
                "explain": "x",
                "reference": "assumption",
            }
        ]
        with pytest.raises(ValueError, match="when"):
            load_rules(raw, feats, "test")


# -------------------------------------------------------------- property test

_VALUES = {
    "months_postpartum": st.floats(-3, 18),
    "lactation_months": st.one_of(st.none(), st.floats(0, 20)),
    "amenorrhea_months": st.one_of(st.none(), st.floats(0, 20)),
    "breastfeeding_now": st.one_of(st.none(), st.booleans()),
    "lactation_exclusive": st.one_of(st.none(), st.booleans()),
    "parity": st.integers(1, 4),
    "prior_lactation_months": st.one_of(st.none(), st.floats(0, 30)),
    "bmd_lumbar_spine": st.one_of(st.none(), st.floats(0.6, 1.4)),
    "t_lumbar_spine": st.one_of(st.none(), st.floats(-4, 3)),
    "z_lumbar_spine": st.one_of(st.none(), st.floats(-4, 3)),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries(_VALUES), min_size=1, max_size=8))
def test_property_record_and_frame_reject_the_same_rows_for_the_same_rules(rows):
    records = [
        {"age_years": 30, **{k: v for k, v in r.items() if v is not None}} for r in rows
    ]
    res = validate_frame(pd.DataFrame(records))
    for i, record in enumerate(records):
        frame_reasons = sorted(
            res.rejects.loc[res.rejects["row"] == i, "reason"].tolist()
        )
        try:
            validate_record(record)
            record_reasons = []
        except ValidationError as exc:
            record_reasons = sorted(p.reason for p in exc.problems)
        frame_rules = [r for r in frame_reasons if "breaks rule" in r]
        record_rules = [r for r in record_reasons if "breaks rule" in r]
        assert frame_rules == record_rules, (record, frame_reasons, record_reasons)
        assert (i in res.valid.index) == (not record_reasons)
        # And each rule's verdict is the rule's own arithmetic.
        lact, mpp = record.get("lactation_months"), record["months_postpartum"]
        broken = lact is not None and lact > max(mpp, 0) + 0.1 + 1e-9
        assert any("lactation_within_postpartum" in r for r in record_rules) == broken
        z, t = record.get("z_lumbar_spine"), record.get("t_lumbar_spine")
        apart = z is not None and t is not None and abs(z - t) > 1.0 + 1e-9
        assert any("t_and_z_agree_lumbar_spine" in r for r in record_rules) == apart


def test_rules_cost_little_on_a_large_frame():
    # Not a timing test: the rules are vectorised, so 100,000 rows with 1% broken
    # give exactly the broken rows.
    df = generate_cohort(100_000, seed=9)
    bad = np.random.default_rng(0).choice(len(df), 1000, replace=False)
    df.loc[df.index[bad], "lactation_months"] = (
        df["months_postpartum"].iloc[bad].clip(lower=0) + 2.0
    )
    res = validate_frame(df)
    rule = res.rejects["reason"].str.contains("lactation_within_postpartum")
    assert sorted(res.rejects.loc[rule, "row"]) == sorted(df.index[bad])
    assert math.isclose(res.n_rejected, 1000)

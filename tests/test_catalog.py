"""The feature catalog: loading, checks at load, and what it must contain."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from plo_risk.data.catalog import CatalogError, load_catalog

CAT = load_catalog()
REPO = Path(__file__).resolve().parents[1]


def test_every_field_has_a_source_label_and_direction():
    for f in CAT:
        assert f.reference.strip(), f.name
        assert f.label.strip(), f.name
        assert f.direction in ("increases", "decreases", "none")


@pytest.mark.parametrize(
    "name",
    [
        "parity",
        "multiple_gestation",
        "interpregnancy_interval_months",
        "lactation_months",
        "lactation_planned_months",
        "lactation_exclusive",
        "prior_lactation_months",
        "amenorrhea_months",
        "calcium_intake_mg_day",
        "vitamin_d_25oh",
        "bmi",
        "calcium_supplement",
        "vitamin_d_supplement",
        "family_history_osteoporosis",
        "genetic_variant",
        "heparin",
        "glucocorticoids",
        "mgso4_tocolysis",
        "hyperthyroidism",
        "anorexia_nervosa",
        "ibd_celiac",
        "smoking",
        "ctx",
        "p1np",
        "bap",
        "osteocalcin",
        "pth",
        "pthrp",
        "prolactin",
        "estradiol",
        "bmd_lumbar_spine",
        "bmd_femoral_neck",
        "bmd_total_hip",
        "t_lumbar_spine",
        "z_lumbar_spine",
        "t_femoral_neck",
        "z_femoral_neck",
        "t_total_hip",
        "z_total_hip",
    ],
)
def test_design_groups_are_covered(name):
    assert name in CAT


def test_bmd_lowers_risk_for_monotone_constraints():
    for f in CAT.by_group("bmd"):
        assert f.monotone == -1, f.name


def _write(tmp_path, fields):
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "fields": fields}))
    return path


def _field(**over):
    base = {
        "name": "x",
        "group": "nutrition",
        "dtype": "float",
        "unit": "mg",
        "range": [0, 1],
        "missing": True,
        "label": "x",
        "modifiable": False,
        "direction": "none",
        "reference": "assumption",
    }
    return {**base, **over}


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ([_field(), _field()], "duplicate field name 'x'"),
        ([_field(range=[5, 1])], r"range=\[5, 1\]: must be \[min, max\]"),
        ([_field(range=[0, float("inf")])], "must be"),
        ([_field(alt_units={"g": -1})], r"alt_units\['g'\]=-1: must be a positive"),
        ([_field(alt_units={"mg": 2})], "is not a new unit"),
        ([_field(group="food")], "group='food': must be one of"),
        ([_field(dtype="str")], "dtype='str'"),
        ([_field(direction="up")], "direction='up'"),
        ([_field(colour="red")], r"unknown keys \['colour'\]"),
        ([{k: v for k, v in _field().items() if k != "reference"}], "missing keys"),
        ([_field(derived_from="nope", score="t")], "derived_from='nope'"),
        ([_field(dtype="category", range=None)], "categories must be"),
    ],
    ids=[
        "duplicate",
        "reversed-range",
        "infinite-range",
        "negative-factor",
        "same-unit",
        "group",
        "dtype",
        "direction",
        "unknown-key",
        "missing-key",
        "derived-from",
        "no-categories",
    ],
)
def test_bad_catalog_is_refused_at_load(tmp_path, fields, match):
    for f in fields:
        if f.get("range") is None:
            f.pop("range", None)
    with pytest.raises(CatalogError, match=match):
        load_catalog(_write(tmp_path, fields))


def test_catalog_hash_changes_with_content(tmp_path):
    a = load_catalog(_write(tmp_path, [_field()]))
    b = load_catalog(_write(tmp_path, [_field(label="other")]))
    assert a.sha256 != b.sha256 and a != b


def test_features_readme_is_up_to_date():
    from plo_risk.data.catalog import catalog_markdown

    readme = (REPO / "features" / "README.md").read_text()
    assert readme == catalog_markdown(CAT), (
        "features/README.md is out of date: run `plo-risk catalog --markdown "
        "> features/README.md`"
    )

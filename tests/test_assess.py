"""The clinician API: RiskModel and RiskAssessment."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit

from plo_risk import ValidationError
from plo_risk.data.reference import reference_values
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import save_bundle
from plo_risk.model.ensemble import fit_bootstrap_ensemble
from plo_risk.model.zoo import make_model
from plo_risk.serve import RiskModel

THRESHOLDS = {"moderate": 0.02, "high": 0.10}


@pytest.fixture(scope="module")
def training():
    valid = validate_frame(generate_cohort(8000, seed=21)).valid
    y = valid["fracture"].to_numpy()
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    return X, y


@pytest.fixture(scope="module")
def bundle_path(training, tmp_path_factory):
    X, y = training
    model = make_model(
        "xgboost", params={"n_estimators": 120}, cv=3, thresholds=THRESHOLDS
    ).fit(X, y)
    fit_bootstrap_ensemble(model, X, y, n_models=5)
    return save_bundle(
        model,
        tmp_path_factory.mktemp("b") / "bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X)},
    )


@pytest.fixture(scope="module")
def risk_model(bundle_path):
    return RiskModel.load(bundle_path)


PATIENT = {
    "age_years": 33,
    "parity": 2,
    "months_postpartum": 4,
    "lactation_months": 4,
    "breastfeeding_now": True,
    "lactation_exclusive": True,
    "calcium_intake_mg_day": 700,
    "vitamin_d_25oh": 14,
    "z_lumbar_spine": -2.8,
    "z_femoral_neck": -1.9,
    "family_history_osteoporosis": True,
}


def test_assess_gives_risk_category_interval_and_factors(risk_model):
    a = risk_model.assess(PATIENT)
    assert 0 < a.risk < 1
    assert a.category == str(risk_model.model.categorize([a.risk])[0])
    lo, hi = a.interval
    assert 0 < lo <= hi < 1
    assert {f.field for f in a.factors} == set(risk_model.catalog.names)
    sizes = [abs(f.contribution) for f in a.factors]
    assert sizes == sorted(sizes, reverse=True)
    # Additive in calibrated log-odds.
    logit = a.base_log_odds + sum(f.contribution for f in a.factors)
    assert abs(logit - np.log(a.risk / (1 - a.risk))) < 1e-6
    # Same number as the batch path.
    assert a.risk == pytest.approx(
        risk_model.predict_proba(pd.DataFrame([PATIENT]))[0], abs=1e-9
    )


def test_assess_equals_contributions_of_the_one_row_frame(risk_model):
    # assess explains the record on numpy arrays; the public contributions() of
    # the one-row canonical frame must give the very same numbers.
    from plo_risk.data.schema import validate_record
    from plo_risk.explain import contributions

    for record in (PATIENT, {"age_years": 30, "parity": 1, "months_postpartum": 2}):
        a = risk_model.assess(record)
        canonical = validate_record(record, catalog=risk_model.catalog)
        expl = contributions(risk_model.model, risk_model._frame(canonical))
        assert a.base_log_odds == float(expl.base[0])
        assert a.risk == float(expit(expl.base[0] + expl.values.iloc[0].sum()))
        assert {f.field: f.contribution for f in a.factors} == {
            k: float(v) for k, v in expl.values.iloc[0].items()
        }


def test_low_z_is_a_top_reason(risk_model):
    a = risk_model.assess(PATIENT)
    top = [f.field for f in a.top_factors(3)]
    assert any(
        f in top for f in ("z_lumbar_spine", "bmd_lumbar_spine", "t_lumbar_spine")
    )


def test_missing_dxa_would_change_the_estimate_most(risk_model):
    no_dxa = {k: v for k, v in PATIENT.items() if not k.startswith("z_")}
    a = risk_model.assess(no_dxa)
    assert a.missing, "missing inputs should be listed"
    assert a.missing[0].name.startswith("dxa_")
    assert "DXA" in a.missing[0].describe()
    spreads = [m.spread for m in a.missing]
    assert spreads == sorted(spreads, reverse=True)


def test_considerations_cite_the_seed(risk_model):
    a = risk_model.assess(PATIENT)
    topics = {c.topic for c in a.considerations}
    assert {"calcium", "vitamin_d"} <= topics
    for c in a.considerations:
        assert "seed" in c.source
    calcium = next(c for c in a.considerations if c.topic == "calcium")
    assert "1500 mg/day" in calcium.text and "700 mg/day" in calcium.text
    if a.category != "low":
        assert "weaning" in topics


def test_bisphosphonate_caution_for_high_risk(risk_model):
    from plo_risk.serve.assessment import considerations_for

    cons = considerations_for({"breastfeeding_now": True}, "high")
    bis = next(c for c in cons if c.topic == "bisphosphonates")
    assert "pregnan" in bis.text and "seed Bisphosphonates" in bis.source
    assert "weaning" in {c.topic for c in cons}
    assert "weaning" not in {
        c.topic for c in considerations_for({"breastfeeding_now": True}, "low")
    }


def test_what_if_only_for_modifiable_fields(risk_model):
    a = risk_model.assess(PATIENT)
    weaned = a.what_if(breastfeeding_now=False, calcium_intake_mg_day=1500)
    assert weaned.record["breastfeeding_now"] is False
    assert weaned.record["calcium_intake_mg_day"] == 1500
    with pytest.raises(ValidationError, match=r"parity=3: is not modifiable"):
        a.what_if(parity=3)
    with pytest.raises(ValidationError, match=r"calcium_intake_mg_day=-5"):
        a.what_if(calcium_intake_mg_day=-5)


def test_what_if_keeps_the_units_of_unchanged_fields(risk_model):
    a = risk_model.assess(
        {**PATIENT, "vitamin_d_25oh": 35}, units={"vitamin_d_25oh": "nmol/L"}
    )
    b = a.what_if(smoking=True)
    assert b.record["vitamin_d_25oh"] == pytest.approx(35 / 2.496, rel=1e-4)


@pytest.mark.parametrize(
    "bad",
    [
        {**PATIENT, "lactation_months": -3},
        {**PATIENT, "vitamin_d_25oh": "low"},
        {"age_years": 30},
        {**PATIENT, "z_lumbar_spin": -2},
    ],
)
def test_bad_input_is_a_validation_error(risk_model, bad):
    with pytest.raises(ValidationError):
        risk_model.assess(bad)


def test_outputs_are_readable_and_json_ready(risk_model):
    a = risk_model.assess(PATIENT)
    d = a.to_dict()
    json.dumps(d)
    assert d["risk"] == a.risk and d["interval"]["level"] == 0.9
    text = str(a)
    assert f"{a.risk:.1%}" in text and "not a prescription" in text
    assert "<table" in a._repr_html_()


def test_round_trip_identical_on_100k_rows(risk_model, tmp_path, monkeypatch):
    cohort = generate_cohort(100_000, setting="population", seed=5)
    before = risk_model.predict_proba(cohort.drop(columns=["fracture", "true_risk"]))
    path = risk_model.save(tmp_path / "again")

    def refuse(*a, **k):
        raise AssertionError("pickle on the load path")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    again = RiskModel.load(path)
    after = again.predict_proba(cohort.drop(columns=["fracture", "true_risk"]))
    np.testing.assert_array_equal(before, after)
    assert again.version == risk_model.version


def test_predict_proba_refuses_bad_rows_by_name(risk_model):
    rows = pd.DataFrame([PATIENT, {**PATIENT, "parity": 0}])
    with pytest.raises(ValidationError, match=r"row 1: parity"):
        risk_model.predict_proba(rows)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such bundle"):
        RiskModel.load(tmp_path / "nothing")


_site = st.sampled_from(["lumbar_spine", "femoral_neck", "total_hip"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    z=st.floats(-4.5, 1.5),
    dz=st.floats(0.05, 2.0),
    site=_site,
    months=st.floats(0, 10),
    extra=st.floats(0.1, 8),
)
def test_monotone_in_z_and_lactation(risk_model, z, dz, site, months, extra):
    base = {**PATIENT, "z_lumbar_spine": None, "z_femoral_neck": None}
    base = {k: v for k, v in base.items() if v is not None}
    hi = risk_model.assess({**base, f"z_{site}": z}).risk
    lo_z = risk_model.assess({**base, f"z_{site}": z - dz}).risk
    assert lo_z >= hi - 1e-12
    rec = {**base, "months_postpartum": 18, "lactation_months": months}
    more = {**rec, "lactation_months": months + extra}
    assert risk_model.assess(more).risk >= risk_model.assess(rec).risk - 1e-12


def test_mlflow_serve_answers_invocations_like_assess(
    tmp_path, monkeypatch, start_mlflow
):
    """`mlflow models serve -m models:/plo-risk@champion --env-manager local`."""
    import urllib.request

    from plo_risk.training import compare

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    compare(
        {
            "name": "serve",
            "seed": 1,
            "data": {
                "train": {"source": "synthetic", "n": 3000, "seed": 1},
                "test": {"source": "synthetic", "n": 2000, "seed": 2},
            },
            "models": [{"name": "xgboost", "params": {"n_estimators": 60}}],
            "cv": {"folds": 3},
            "evaluation": {"n_boot": 10},
            "interval": {"n_models": 3},
        }
    )
    patients = [
        PATIENT,
        {**PATIENT, "smoking": True, "z_lumbar_spine": -1.0},
        {**PATIENT, "parity": 0},
    ]
    args = [
        "models",
        "serve",
        "-m",
        "models:/plo-risk@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
    ]
    with start_mlflow(
        args, "/ping", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri}
    ) as base:
        body = json.dumps({"dataframe_records": patients}).encode()
        request = urllib.request.Request(
            f"{base}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = json.load(r)["predictions"]
    model = RiskModel.load("models:/plo-risk@champion")
    assert "factor_1" in answer[0], answer[0]
    for served, patient in zip(answer[:2], patients[:2], strict=True):
        a = model.assess(patient)
        assert served["risk"] == pytest.approx(a.risk, abs=1e-9)
        assert served["category"] == a.category
        top = a.factors[0]
        assert served["factor_1"] == top.field
        assert served["contribution_1"] == pytest.approx(top.contribution, abs=1e-6)
    assert answer[2]["risk"] is None or np.isnan(answer[2]["risk"])
    assert "parity=0" in answer[2]["error"]

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
    # The clinician knows she has not fractured in this episode (when not
    # given, asking is the most informative step: see the test below).
    "fractured_this_episode": False,
}


def test_assess_gives_risk_category_interval_and_factors(risk_model):
    a = risk_model.assess(PATIENT)
    assert 0 < a.risk < 1
    assert a.category == str(risk_model.model.categorize([a.risk])[0])
    lo, hi = a.interval
    assert 0 < lo <= hi < 1
    # Every field is in exactly one factor: the values given (a derived T/Z or BMD
    # folded into the value it came from) and one factor for all not given.
    covered = [name for f in a.factors for name in f.fields]
    assert sorted(covered) == sorted(risk_model.catalog.names)
    assert [f.field for f in a.factors if not f.given] == ["not_known"]
    given = {k for k, v in PATIENT.items() if v is not None}
    assert {f.field for f in a.factors if f.given} == given
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
        row = expl.values.iloc[0]
        for f in a.factors:
            assert f.contribution == pytest.approx(
                float(row[list(f.fields)].sum()), abs=1e-12
            )


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


def test_an_unknown_fracture_this_episode_is_asked_first(risk_model):
    unasked = {k: v for k, v in PATIENT.items() if k != "fractured_this_episode"}
    a = risk_model.assess(unasked)
    names = [m.name for m in a.missing]
    assert "fractured_this_episode" in names[:2], names


def test_a_woman_who_already_fractured_is_told_apart(risk_model):
    from plo_risk.serve.assessment import ALREADY_FRACTURED

    fractured = risk_model.assess({**PATIENT, "fractured_this_episode": True})
    assert ALREADY_FRACTURED in fractured.context()
    assert ALREADY_FRACTURED in str(fractured)
    topics = [c.topic for c in fractured.considerations]
    assert topics[0] == "established_plo"
    assert "severe_disease" in topics
    not_fractured = risk_model.assess(PATIENT)
    assert ALREADY_FRACTURED not in not_fractured.context()
    assert "established_plo" not in {c.topic for c in not_fractured.considerations}
    # the model learned that an earlier fracture raises the risk of the next
    assert fractured.risk > not_fractured.risk


def test_considerations_cite_the_review_by_key(risk_model):
    a = risk_model.assess(PATIENT)
    topics = {c.topic for c in a.considerations}
    assert {"calcium", "vitamin_d"} <= topics
    for c in a.considerations:
        # Cited by key (docs/references/*.bib), shown in readable form.
        assert "[@mishra2024" in c.source and "seed" not in c.source
        assert c.citation.startswith("Mishra et al. 2024")
    calcium = next(c for c in a.considerations if c.topic == "calcium")
    assert "1500 mg/day" in calcium.text and "700 mg/day" in calcium.text
    if a.category != "low":
        assert "weaning" in topics


def test_bisphosphonate_caution_for_high_risk(risk_model):
    from plo_risk.serve.assessment import considerations_for

    cons = considerations_for({"breastfeeding_now": True}, "high")
    bis = next(c for c in cons if c.topic == "bisphosphonates")
    assert "pregnan" in bis.text and "[@mishra2024, Bisphosphonates" in bis.source
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
    # z - dz >= -5.5: every site's BMD stays in the catalog range.
    z=st.floats(-3.5, 1.5),
    dz=st.floats(0.05, 2.0),
    site=_site,
    # Breastfeeding now: at least some months so far (the catalog's rules).
    months=st.floats(0.1, 10),
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


# ------------------------------------------------- issue 14: what is shown


def test_one_measurement_is_one_factor(risk_model):
    """A lumbar BMD entered alone: its derived T and Z fold into it."""
    from plo_risk.explain import contributions

    record = {
        "age_years": 31,
        "parity": 1,
        "months_postpartum": 3,
        "bmd_lumbar_spine": 0.78,
    }
    a = risk_model.assess(record)
    fields = {f.field for f in a.factors}
    assert "bmd_lumbar_spine" in fields
    assert not fields & {"t_lumbar_spine", "z_lumbar_spine"}
    bmd = next(f for f in a.factors if f.field == "bmd_lumbar_spine")
    assert bmd.fields == ("bmd_lumbar_spine", "t_lumbar_spine", "z_lumbar_spine")
    row = contributions(risk_model.model, risk_model._frame(a.record)).values.iloc[0]
    assert bmd.contribution == pytest.approx(row[list(bmd.fields)].sum(), abs=1e-12)
    # The T-score typed instead: the T-score is the factor, BMD and Z fold into it.
    t = risk_model.assess({**record, "bmd_lumbar_spine": None, "t_lumbar_spine": -2.7})
    names = {f.field for f in t.factors}
    assert "t_lumbar_spine" in names and "bmd_lumbar_spine" not in names
    # Typed both: two factors, each its own.
    both = risk_model.assess({**record, "t_lumbar_spine": -2.7})
    assert {"bmd_lumbar_spine", "t_lumbar_spine"} <= {f.field for f in both.factors}
    # The batch path folds the same way.
    out = risk_model.predict_frame(pd.DataFrame([record]), explain="all", top_k=6)
    factors = [out[f"factor_{k}"].iloc[0] for k in range(1, 7)]
    assert "t_lumbar_spine" not in factors and "z_lumbar_spine" not in factors
    assert out["contribution_1"].iloc[0] == pytest.approx(
        a.factors[0].contribution, abs=1e-9
    )


def test_missing_inputs_are_one_not_known_factor_in_text_and_plot(risk_model):
    import matplotlib.pyplot as plt

    a = risk_model.assess(PATIENT)
    unknown = a.not_known
    assert unknown is not None and not unknown.given
    covered = {d for f in a.factors if f.given for d in f.fields}
    assert set(unknown.fields) == set(risk_model.catalog.names) - covered
    assert set(PATIENT) < covered  # the derived BMD and T-scores fold in
    text = str(a)
    assert "not known" in text and "missing" not in text
    assert not any(f.not_known for f in a.top_factors(50))  # never a finding
    for label in (risk_model.catalog[f].label for f in unknown.fields):
        assert f"{label} =" not in text
    fig = a.plot_waterfall(max_display=50)
    try:
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    finally:
        plt.close(fig)
    bars = [lab for lab in labels if " = " in lab]
    assert sum(lab.startswith("not known = ") for lab in bars) == 1
    assert "yes = Breastfeeding at assessment" in bars  # a label, not a code
    assert len(bars) == len(PATIENT) + 1  # each value given, and one not known
    assert not any(lab.startswith(("1.0 =", "1 =", "missing =")) for lab in bars)


def test_assessment_says_what_the_number_is(risk_model):
    a = risk_model.assess(PATIENT)
    pop = risk_model.for_setting(setting="population").assess(PATIENT)
    for x in (a, pop):
        assert x.horizon and "18 months postpartum" in x.horizon
        assert x.average_risk == pytest.approx(
            float(x._model.model.prevalence_), rel=1e-12
        )
        assert x.relative_risk == pytest.approx(x.risk / x.average_risk)
        text, data, page = str(x), x.to_dict(), x._repr_html_()
        for shown in (text, page):
            assert x.horizon in shown and f"{x.average_risk:.2%}" in shown
            assert f"{x.relative_risk:.1f} times" in shown or (
                f"{x.relative_risk:.2f} times" in shown
            )
        assert data["horizon"] == x.horizon
        assert data["setting"]["average_risk"] == x.average_risk
        assert data["relative_risk"] == pytest.approx(x.relative_risk)
    assert "population" in pop.setting and pop.setting != a.setting
    # The same woman, two settings: the absolute risks differ tenfold or more, the
    # relative risks hardly (an intercept shift keeps the odds ratio).
    assert pop.risk < a.risk / 10
    assert pop.relative_risk == pytest.approx(a.relative_risk, rel=0.2)


def test_t_score_consideration_follows_the_t_score_not_the_category():
    from plo_risk.serve.assessment import considerations_for

    low_t = considerations_for({"t_lumbar_spine": -2.9}, "low")
    severe = next(c for c in low_t if c.topic == "severe_disease")
    assert "-2.9" in severe.text and "lumbar spine" in severe.text
    high_ok = considerations_for({"t_lumbar_spine": -1.0, "t_total_hip": -2.0}, "high")
    assert "severe_disease" not in {c.topic for c in high_ok}
    fracture = considerations_for({"prior_fragility_fracture": True}, "low")
    assert "severe_disease" in {c.topic for c in fracture}


def test_considerations_show_readable_citations(risk_model):
    import html

    a = risk_model.assess(PATIENT)
    text = str(a)
    for c in a.considerations:
        assert f"[{c.citation}]" in text and "[@" not in text
        assert html.escape(c.citation) in a._repr_html_()

"""A model with a horizon model, as a clinician, a pipeline and the web page see it."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from plo_risk import RiskModel
from plo_risk.model.horizon import HazardModel, simulate_interval
from plo_risk.model.zoo import make_model
from plo_risk.serve.scoring import score_cohort
from tests.test_horizon import cohort

THRESHOLDS = {"moderate": 0.02, "high": 0.10}
CASE = {
    "age_years": 31,
    "parity": 1,
    "months_postpartum": 3,
    "lactation_months": 3,
    "breastfeeding_now": True,
    "lactation_planned_months": 12,
    "lactation_exclusive": True,
    "z_lumbar_spine": -2.8,
    "smoking": True,
    "vitamin_d_25oh": 14,
}


def _champion(X, d, t, *, changes=None, extra=None):
    champion = make_model(
        "xgboost", params={"n_estimators": 40}, cv=2, thresholds=THRESHOLDS
    ).fit(X, d)
    hm = HazardModel(params={"n_estimators": 80}, thresholds=THRESHOLDS)
    if extra is not None:
        X, t, d = extra
    champion.horizon_ = hm.fit(X, t, d, changes=changes)
    champion.horizon_interval_ = simulate_interval(champion.horizon_, n=3_000)
    return champion


@pytest.fixture(scope="module")
def rm(tmp_path_factory):
    X, t, d, _ = cohort(6_000, seed=61)
    folder = tmp_path_factory.mktemp("hz") / "bundle"
    RiskModel(_champion(X, d, t)).save(folder)
    return RiskModel.load(folder)


def test_assess_reports_every_horizon_and_explains_the_default_one(rm):
    a = rm.assess(CASE)
    assert list(a.risks) == ["3m", "6m", "12m", "end"]
    # The default horizon is the binary outcome's: to 18 months postpartum.
    assert a.risk == a.risks["end"] == a.risk_at("end")
    assert a.risks["12m"] == a.risk_at(12) == a.risk_at("12m")
    values = list(a.risks.values())
    assert values == sorted(values)
    # The factors add up to the risk's calibrated log-odds.
    total = a.base_log_odds + sum(f.contribution for f in a.factors)
    assert math.isclose(total, logit(a.risk), abs_tol=1e-9)
    lo, hi = a.interval
    assert lo <= a.risk <= hi and a.interval == a.intervals["end"]
    assert "simulation" in a.interval_meaning
    assert "before 18 months postpartum" in a.horizon
    assert a.risk_at(9) <= a.risk_at(12) + 1e-12
    assert a.baseline_at(6) == rm.horizon_model.prevalence_["6m"]
    text = str(a)
    assert "within 6 months" in text and "before 18 months postpartum" in text
    d = json.loads(json.dumps(a.to_dict()))
    assert d["horizons"]["6m"]["risk"] == a.risks["6m"]
    assert "<table>" in a._repr_html_()


def test_a_horizon_outside_the_window_is_refused_with_what_is_allowed(rm):
    a = rm.assess(CASE)
    with pytest.raises(ValueError, match="horizon=30"):
        a.risk_at(30)


def test_predict_frame_writes_every_horizon_and_agrees_with_assess(rm):
    X, _, _, _ = cohort(200, seed=62)
    out = rm.predict_frame(X, explain="all", top_k=2)
    assert {"risk_3m", "risk_6m", "risk_12m", "risk_end"} <= set(out.columns)
    np.testing.assert_allclose(out["risk"], out["risk_end"])
    record = {k: v for k, v in X.iloc[0].items() if not pd.isna(v)}
    a = rm.assess(record)
    assert math.isclose(a.risks["6m"], out["risk_6m"].iloc[0], rel_tol=1e-9)
    assert out["factor_1"].iloc[0] == a.top_factors(1, given_only=False)[0].field


def test_score_cohort_writes_the_horizon_columns(rm, tmp_path):
    X, _, _, rows = cohort(500, seed=63)
    src = tmp_path / "in.parquet"
    rows.to_parquet(src)
    score_cohort(rm, src, tmp_path / "out", progress=False)
    scored = pd.concat(
        pd.read_parquet(f) for f in sorted((tmp_path / "out").glob("part-*.parquet"))
    )
    assert len(scored) == len(rows)
    assert {"risk_3m", "risk_12m", "risk_end"} <= set(scored.columns)
    assert scored["risk_3m"].le(scored["risk_12m"] + 1e-12).all()


def test_what_if_stopping_breastfeeding_intervenes_from_now_on(rm):
    a = rm.assess(CASE)
    weaned = a.what_if(breastfeeding_now=False)
    assert weaned.intervention["answered"] == ["breastfeeding_now"]
    assert "stays lost" in weaned.intervention["text"]
    assert weaned.risk_at(12) < a.risk_at(12)
    assert weaned.risk < a.risk
    # The record, her past, is the same record.
    assert weaned.record == a.record
    total = weaned.base_log_odds + sum(f.contribution for f in weaned.factors)
    assert math.isclose(total, logit(weaned.risk), abs_tol=1e-9)


@pytest.mark.parametrize("change", [{"vitamin_d_25oh": 35}, {"bmi": 24.0}])
def test_what_if_says_the_data_cannot_tell_instead_of_a_proxy_effect(rm, change):
    a = rm.assess(CASE)
    w = a.what_if(**change)
    assert w.risks == a.risks
    assert w.intervention["not_answered"] == list(change)
    assert "cannot tell" in w.intervention["text"]


def test_a_model_that_saw_a_trial_answers_vitamin_d():
    from plo_risk.data.synthetic import simulated_trial
    from tests.test_horizon import model_inputs, validate_frame

    X, t, d, _ = cohort(3_000, seed=64)
    trial = simulated_trial(3_000, seed=65)
    valid = validate_frame(trial.frame, unknown="ignore").valid
    from plo_risk.model.horizon import follow_up

    tt, td = follow_up(trial.frame.loc[valid.index])
    changes = pd.concat(
        [
            pd.DataFrame(np.nan, index=range(len(X)), columns=trial.changes.columns),
            trial.changes.loc[valid.index].reset_index(drop=True),
        ],
        ignore_index=True,
    )
    XX = pd.concat([X, model_inputs(valid)], ignore_index=True)
    model = RiskModel(
        _champion(X, d, t, changes=changes, extra=(XX, np.r_[t, tt], np.r_[d, td]))
    )
    assert model.horizon_model.interventions_["vitamin_d_25oh"]["women"] >= 200
    w = model.assess(CASE).what_if(vitamin_d_25oh=35)
    assert w.intervention["answered"] == ["vitamin_d_25oh"]
    assert "simulated randomised trial" in w.intervention["text"]


def test_the_web_page_shows_a_row_per_horizon(rm, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from plo_risk.web.app import create_app

    client = TestClient(create_app(rm, audit_log=tmp_path / "audit.jsonl"))
    assert client.get("/").status_code == 200
    r = client.post("/api/assess", json={"record": CASE})
    assert r.status_code == 200
    assert set(r.json()["horizons"]) == {"3m", "6m", "12m", "end"}
    form = {
        k: ("yes" if v is True else "no" if v is False else str(v))
        for k, v in CASE.items()
    }
    page = client.post(
        "/assess", data={**form, "csrf_token": client.cookies.get("plo_risk_csrf")}
    )
    assert page.status_code == 200
    assert "fracture within 6 months" in page.text
    assert "fracture within 12 months" in page.text


# ---------------------------------------------------------------- training


def test_an_experiment_trains_the_horizon_model_into_every_bundle(tmp_path):
    import mlflow

    from plo_risk.training import train

    config = {
        "name": "horizon",
        "seed": 3,
        "data": {
            "train": {"source": "synthetic", "n": 3000, "seed": 1},
            "test": {"source": "synthetic", "n": 2000, "seed": 2},
        },
        "models": [{"name": "xgboost", "params": {"n_estimators": 30}}],
        "interval": {"n_models": 0},
        "evaluation": {"n_boot": 20},
        "champion": {"register": False},
        "horizon": {"enabled": True, "interval_n": 1000, "trial_n": 1000},
    }
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(config, tracking_uri=uri)
    (model,) = result.results
    assert model.model.horizon_.interventions_["vitamin_d_25oh"]["women"] > 0
    run = mlflow.MlflowClient(uri).get_run(model.run_id)
    assert 0.5 < run.data.metrics["horizon_12m_auroc_td"] <= 1.0
    assert "horizon_6m_slope_ci_lower" in run.data.metrics


@pytest.mark.parametrize(
    ("horizon", "match"),
    [
        ({"enabled": True, "trial_n": 100}, "at least 500"),
        ({"enabled": True, "horizons": [3, 40]}, "horizon=40"),
        ({"enabled": True, "family": "cox"}, "family"),
    ],
)
def test_a_bad_horizon_section_is_refused_before_any_work(horizon, match):
    from plo_risk.training import load_experiment
    from plo_risk.utils.config import ConfigError

    config = {
        "data": {"train": {"source": "synthetic", "n": 1000}},
        "models": [{"name": "xgboost"}],
        "horizon": horizon,
    }
    with pytest.raises(ConfigError, match=match):
        load_experiment(config)

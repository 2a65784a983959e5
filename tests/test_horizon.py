"""The horizon models: risk over the months ahead, checked against the oracle.

The generator's oracle knows every woman's true risk at any horizon after the
assessment; these tests compare the hazard model's risks, its calibration, its
intervals and its bundle with that truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logit

from plo_risk import validate_frame
from plo_risk.data.synthetic import (
    TRIAL_ARMS,
    counterfactual_risk,
    generate_cohort,
    oracle_risk,
    simulated_trial,
)
from plo_risk.evaluate.metrics import auroc, calibration_slope_intercept
from plo_risk.model.bundle import BundleError, load_bundle, save_bundle
from plo_risk.model.horizon import (
    END,
    WINDOW_END,
    HazardModel,
    follow_up,
    missing_group,
    model_inputs,
    parse_horizon,
    person_months,
    simulate_interval,
)
from plo_risk.model.zoo import make_model
from tests.forge import reseal

ORACLE = {"3m": "true_risk_3m", "6m": "true_risk_6m", "12m": "true_risk_12m"}


def cohort(n, *, seed, missingness="realistic", setting="referral"):
    df = generate_cohort(n, setting=setting, missingness=missingness, seed=seed)
    valid = validate_frame(df, unknown="ignore").valid
    rows = df.loc[valid.index]
    t, d = follow_up(rows)
    return model_inputs(valid), t, d, rows


@pytest.fixture(scope="module")
def realistic():
    """The champion's setting: referral, realistic missingness, 20,000 women."""
    X, t, d, _ = cohort(20_000, seed=11)
    return HazardModel(random_state=0).fit(X, t, d)


@pytest.fixture(scope="module")
def complete():
    """Every input recorded: the oracle's ceiling is reachable."""
    X, t, d, _ = cohort(20_000, seed=12, missingness="none")
    return HazardModel(random_state=0).fit(X, t, d)


# ------------------------------------------------------------ person-months


def test_person_months_follow_each_woman_to_her_fracture_or_censoring():
    X = pd.DataFrame({"months_postpartum": [16.0, 10.0, -2.5, 3.0]})
    # Followed to the end (2 months), a fracture at 3.4 months, a fracture at
    # once in pregnancy, censored after 5.5 months (5 whole months seen).
    rows, k, y = person_months(X, [2.0, 3.4, 0.2, 5.5], [0, 1, 1, 0])
    assert rows.tolist() == [0, 0, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3]
    assert k.tolist() == [0, 1, 0, 1, 2, 3, 0, 0, 1, 2, 3, 4]
    assert y.tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-3.0, 18.0),
            st.floats(0.0, 1.0),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_person_months_property(women):
    a = np.array([w[0] for w in women])
    t = np.array([w[1] for w in women]) * (WINDOW_END - a)
    d = np.array([w[2] for w in women]) & (t < WINDOW_END - a)
    rows, k, y = person_months(pd.DataFrame({"months_postpartum": a}), t, d)
    for i in range(len(women)):
        ks = k[rows == i]
        # Consecutive months from the assessment, never past the window.
        assert ks.tolist() == list(range(ks.size))
        assert ks.size <= int(np.ceil(WINDOW_END - a[i] - 1e-9))
        # One fracture row, in her last month, exactly when she fractured.
        assert int(y[rows == i].sum()) == int(d[i] and ks.size > 0)
        if d[i] and ks.size:
            assert y[rows == i][-1] == 1
            assert ks[-1] == min(int(np.floor(t[i])), ks.size - 1)


def test_follow_up_reads_fractures_and_censoring_and_refuses_the_impossible():
    df = pd.DataFrame(
        {
            "months_postpartum": [2.0, 5.0, 1.0],
            "fracture": [1, 0, 0],
            "fracture_month": [4.5, 18.0, 18.0],
            "follow_up_end_month": [18.0, 9.0, np.nan],
        }
    )
    t, d = follow_up(df)
    assert t.tolist() == [2.5, 4.0, 17.0] and d.tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="before the assessment"):
        follow_up(df.assign(fracture_month=[1.0, 18.0, 18.0]))
    with pytest.raises(ValueError, match="'fracture'"):
        follow_up(df.drop(columns=["fracture"]))
    with pytest.raises(ValueError, match="fracture: must be 0 or 1"):
        follow_up(df.assign(fracture=[2, 0, 0]))


@pytest.mark.parametrize("bad", [0, -1, 22, "soon", True, float("nan")])
def test_parse_horizon_names_what_is_allowed(bad):
    with pytest.raises(ValueError, match="horizon="):
        parse_horizon(bad)


def test_parse_horizon_reads_months_and_the_end():
    assert parse_horizon("6m") == 6.0 and parse_horizon(12) == 12.0
    assert parse_horizon("end") == END


# ------------------------------------------------------------------ risks


def test_risk_grows_with_the_horizon_and_equals_each_horizon_asked_alone(realistic):
    X, _, _, _ = cohort(1_000, seed=41)
    all_at_once = realistic.risk(X, [3, 6, 12, END])
    assert (np.diff(all_at_once.to_numpy(), axis=1) >= -1e-12).all()
    for col, h in zip(all_at_once.columns, (3, 6, 12, END), strict=True):
        alone = realistic.risk(X, [h]).iloc[:, 0]
        np.testing.assert_allclose(alone.to_numpy(), all_at_once[col].to_numpy())
    assert all_at_once.columns.tolist() == [
        "risk_3m",
        "risk_6m",
        "risk_12m",
        "risk_end",
    ]


def test_one_patient_or_a_few_get_the_risks_of_the_same_rows_in_a_batch(realistic):
    # A few rows take the feature pipeline's array path: the same risks, bit for
    # bit, as the same rows inside a batch (pandas path).
    X, _, _, _ = cohort(300, seed=42)
    batch = realistic.risk(X, [3, 12, END])
    for rows in ([0], [5], [1, 2, 3], list(range(40))):
        few = realistic.risk(X.iloc[rows], [3, 12, END])
        np.testing.assert_array_equal(few.to_numpy(), batch.iloc[rows].to_numpy())


def test_calibrated_at_6_and_12_months_on_a_held_out_referral_cohort(realistic):
    X, t, d, _ = cohort(40_000, seed=42)
    risks = realistic.risk(X, [6, 12])
    for h in (6, 12):
        y = ((d == 1) & (t <= h)).astype(int)
        p = risks[f"risk_{h}m"].to_numpy()
        slope, _ = calibration_slope_intercept(y, p)
        citl = logit(y.mean()) - logit(p.mean())
        assert 0.9 <= slope <= 1.1, (h, slope)
        assert abs(citl) <= 0.1, (h, citl)


def test_auroc_at_12_months_is_within_0_02_of_the_oracle_with_every_input(complete):
    X, t, d, rows = cohort(10_000, seed=43, missingness="none")
    y = ((d == 1) & (t <= 12)).astype(int)
    model_auc = auroc(y, complete.risk(X, [12])["risk_12m"])
    oracle_auc = auroc(y, rows["true_risk_12m"])
    assert oracle_auc - model_auc <= 0.02, (model_auc, oracle_auc)


def test_censoring_is_handled_not_dropped():
    """Women leaving follow-up early: the censored likelihood and the IPCW
    calibration keep the risk right; counting them as fracture-free does not."""
    X, t, d, _ = cohort(12_000, seed=44, missingness="none")
    rng = np.random.default_rng(0)
    a = X["months_postpartum"].to_numpy()
    span = WINDOW_END - a
    leaves = rng.random(len(t)) < 0.6
    c = np.where(leaves, rng.uniform(0, 0.5, len(t)) * span, np.inf)
    seen_t = np.minimum(t, c)
    seen_d = np.where(t <= c, d, 0)
    censored = HazardModel(random_state=0).fit(X, seen_t, seen_d)
    naive_t = np.where(seen_d == 1, seen_t, span)  # as if followed to the end
    naive = HazardModel(random_state=0).fit(X, naive_t, seen_d)
    Xh, _, _, rows = cohort(4_000, seed=45, missingness="none")
    truth = rows["true_risk_12m"].mean()
    kept = censored.risk(Xh, [12])["risk_12m"].mean()
    dropped = naive.risk(Xh, [12])["risk_12m"].mean()
    assert abs(kept / truth - 1) < 0.08, (kept, truth)
    assert dropped / truth < 0.9, (dropped, truth)
    assert abs(kept / truth - 1) < 0.5 * abs(dropped / truth - 1), (kept, dropped)


# --------------------------------------------------------------- intervals


def test_the_90_percent_interval_holds_the_true_risk_at_each_horizon(realistic):
    interval = simulate_interval(realistic, n=20_000, seed=300)
    X, _, _, rows = cohort(2_000, seed=46, missingness="none")
    risks = realistic.risk(X, [3, 6, 12, END])
    groups = missing_group(X)
    truth = {**{k: rows[v].to_numpy() for k, v in ORACLE.items()}}
    truth["end"] = rows["true_risk"].to_numpy()
    for label, o in truth.items():
        lo, hi = interval.interval(risks[f"risk_{label}"].to_numpy(), label, groups)
        inside = (o >= lo) & (o <= hi)
        assert 0.85 <= inside.mean() <= 0.95, (label, inside.mean())
        tertile = pd.qcut(o, 3, labels=False)
        for i in range(3):
            share = inside[tertile == i].mean()
            assert 0.83 <= share <= 0.97, (label, i, share)


def test_missing_group_tells_complete_records_from_those_without_dxa():
    X, _, _, _ = cohort(300, seed=47, missingness="none")
    assert (missing_group(X) == 0).all()
    no_dxa = X.copy()
    for c in no_dxa.columns:
        if c.startswith(("bmd_", "t_", "z_")):
            no_dxa[c] = np.nan
    assert (missing_group(no_dxa) == 2).all()
    partial = X.assign(ctx=np.nan)
    assert (missing_group(partial) == 1).all()


# ------------------------------------------------------------------ bundles


@pytest.fixture(scope="module")
def bundled(tmp_path_factory, realistic):
    X, _, d, _ = cohort(2_000, seed=48)
    champion = make_model("clinical_rule", cv=2).fit(X, d)
    champion.horizon_ = realistic
    champion.horizon_interval_ = simulate_interval(realistic, n=2_000, seed=301)
    folder = save_bundle(
        champion, tmp_path_factory.mktemp("b") / "bundle", model_name="rule"
    )
    return folder, X


def test_a_bundle_keeps_the_horizon_model_and_its_intervals(bundled, realistic):
    folder, X = bundled
    model, _ = load_bundle(folder)
    np.testing.assert_allclose(
        model.horizon_.risk(X).to_numpy(), realistic.risk(X).to_numpy(), rtol=1e-6
    )
    assert model.horizon_.calibration_ == realistic.calibration_
    groups = missing_group(X)
    lo, hi = model.horizon_interval_.interval(np.full(len(X), 0.05), "12m", groups)
    assert ((lo <= 0.05) & (0.05 <= hi)).all()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("calibration", "12m"), [0.0, 0.0], "slope > 0"),
        (("calibration", "12m"), ["1e999", 1.0], "finite"),
        (("prevalence", "12m"), 1.5, "in \\(0, 1\\)"),
        (("family",), "pickle", "must be xgboost"),
        (("features_file",), "../x.json", "features_file"),
        (("horizons",), [99], "horizon.horizons"),
    ],
)
def test_a_forged_horizon_section_is_refused(bundled, tmp_path, path, value, message):
    import json
    import shutil

    folder, _ = bundled
    forged = tmp_path / "forged"
    shutil.copytree(folder, forged)
    manifest = json.loads((forged / "manifest.json").read_text())
    node = manifest["horizon"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (forged / "manifest.json").write_text(json.dumps(manifest))
    reseal(forged)
    with pytest.raises(BundleError, match=message):
        load_bundle(forged)


def test_a_changed_horizon_booster_is_refused(bundled, tmp_path):
    import shutil

    folder, _ = bundled
    forged = tmp_path / "changed"
    shutil.copytree(folder, forged)
    booster = forged / "horizon-model.json"
    booster.write_bytes(booster.read_bytes().replace(b'"', b'"', 1) + b" ")
    with pytest.raises(BundleError, match="horizon-model.json"):
        load_bundle(forged)


# ---------------------------------------------------------- the trial rows


def test_the_simulated_trial_randomises_only_what_applies_and_draws_from_the_oracle():
    trial = simulated_trial(6_000, seed=5, missingness="none")
    frame, changes, arm = trial.frame, trial.changes, trial.arm
    assert set(arm) == set(TRIAL_ARMS)
    assert changes.loc[arm == "control"].isna().all().all()
    smokers = frame["smoking"].astype(bool)
    assert smokers[arm == "stop_smoking"].all()
    feeding = frame["breastfeeding_now"].astype(bool) & (frame["months_postpartum"] > 0)
    assert feeding[arm == "stop_breastfeeding"].all()
    # The outcome follows the arm's oracle risk (within 4 standard errors).
    for name in TRIAL_ARMS:
        sel = (arm == name).to_numpy()
        p = frame.loc[sel, "true_risk"].to_numpy()
        se = np.sqrt(np.sum(p * (1 - p))) / sel.sum()
        assert abs(frame.loc[sel, "fracture"].mean() - p.mean()) <= 4 * se + 1e-9
    # The arm's oracle is the intervention's, not the factual risk.
    sel = (arm == "stop_smoking").to_numpy()
    base = generate_cohort(6_000, missingness="none", seed=5).loc[sel]
    np.testing.assert_allclose(
        frame.loc[sel, "true_risk"].to_numpy(),
        counterfactual_risk(base, {"smoking": False}).to_numpy(),
        rtol=1e-9,
    )
    assert (frame.loc[sel, "true_risk"] <= oracle_risk(base) + 1e-12).all()

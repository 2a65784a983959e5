"""The synthetic generator: contract, event histories, oracle, interventions, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit
from sklearn.metrics import roc_auc_score

from plo_risk.data import episode
from plo_risk.data.catalog import load_catalog
from plo_risk.data.synthetic import (
    EPISODE_INPUT_COLUMNS,
    OUTCOME_COLUMNS,
    InterventionError,
    ParamsError,
    _simulate,
    counterfactual_risk,
    default_params_path,
    generate_cohort,
    load_params,
    oracle_risk,
    write_sample,
)

CAT = load_catalog()
P = load_params()
EXTRA = [
    "patient_id",
    *[c for c in EPISODE_INPUT_COLUMNS if c not in CAT],
    *OUTCOME_COLUMNS,
]
REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "synthetic" / "sample_cohort.csv"


@pytest.fixture(scope="module")
def population_none():
    return _simulate(50_000, setting="population", missingness="none", seed=11)


@pytest.fixture(scope="module")
def referral_none():
    return _simulate(100_000, setting="referral", missingness="none", seed=12)


# -------------------------------------------------------------------- params


def _leaves(node, path=()):
    """Every parameter entry: a mapping that holds a 'value'."""
    if isinstance(node, dict) and "value" in node:
        yield path, node
        return
    assert isinstance(node, dict), f"{'.'.join(path)}: not a {{value, source}} entry"
    for key, child in node.items():
        yield from _leaves(child, (*path, str(key)))


def test_every_parameter_has_a_source():
    doc = yaml.safe_load(default_params_path().read_text())
    leaves = list(_leaves(doc))
    assert len(leaves) > 100
    for path, entry in leaves:
        assert set(entry) == {"value", "source"}, ".".join(path)
        assert isinstance(entry["source"], str) and entry["source"].strip(), ".".join(
            path
        )


def test_sources_cite_by_key_or_say_assumption():
    # A reader can look every number up: a citation key ([@key]) or an assumption
    # with its reason; "seed" and "params sheet" named no publication.
    doc = yaml.safe_load(default_params_path().read_text())
    for path, entry in _leaves(doc):
        src = entry["source"]
        assert "[@" in src or src.startswith(("assumption (", "tuned (")), ".".join(
            path
        )
        assert "params sheet" not in src and "seed Table" not in src, ".".join(path)


def test_ratios_are_labelled():
    doc = yaml.safe_load(default_params_path().read_text())
    named = [
        (f"{section}.{name}", entry["source"])
        for section, entries in doc.items()
        for name, entry in entries.items()
        if name.endswith("_rr")
    ]
    assert len(named) >= 12
    for key, source in named:
        assert "RR" in source or source.startswith("assumption ("), key


@settings(max_examples=200, deadline=None)
@given(rr=st.floats(1.01, 5.0), p0=st.floats(1e-5, 0.15))
def test_odds_ratio_gives_the_risk_ratio_at_the_baseline_risk(rr, p0):
    from plo_risk.data.synthetic import _odds_ratio

    odds = _odds_ratio(rr, p0)
    risk = expit(logit(p0) + np.log(odds))
    assert risk / p0 == pytest.approx(rr, rel=1e-9)


def test_bad_params_file_names_the_parameter(tmp_path):
    doc = yaml.safe_load(default_params_path().read_text())
    doc["lactation"]["spine_loss_per_month"]["source"] = " "
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError, match=r"lactation\.spine_loss_per_month"):
        load_params(bad)
    with pytest.raises(ParamsError, match=r"lactation\.spine_loss_per_month"):
        generate_cohort(10, params=bad)


def test_every_problem_of_a_params_file_is_reported_at_once(tmp_path):
    doc = yaml.safe_load(default_params_path().read_text())
    doc["lactation"]["spine_loss_per_mnth"] = doc["lactation"].pop(
        "spine_loss_per_month"
    )
    doc["fracture"]["glucocorticoids_rr"]["value"] = "high"
    doc["bone"]["variant_sd"]["source"] = ""
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError) as info:
        load_params(bad)
    text = str(info.value)
    assert "lactation: missing key 'spine_loss_per_month'" in text
    assert "did you mean 'spine_loss_per_month'?" in text
    assert "fracture.glucocorticoids_rr.value='high'" in text
    assert "bone.variant_sd.source" in text


def test_params_argument_changes_the_model(tmp_path):
    doc = yaml.safe_load(default_params_path().read_text())
    doc["nutrition"]["vitamin_d_median_ng_ml"]["value"] = 50.0
    other = tmp_path / "params.yaml"
    other.write_text(yaml.safe_dump(doc))
    base = generate_cohort(2000, setting="population", missingness="none", seed=1)
    moved = generate_cohort(
        2000, setting="population", missingness="none", seed=1, params=other
    )
    assert moved["vitamin_d_25oh"].median() > 1.6 * base["vitamin_d_25oh"].median()


# --------------------------------------------------------------- determinism


@pytest.mark.parametrize("style", ["clean", "registry"])
@pytest.mark.parametrize("setting", ["population", "referral"])
def test_same_seed_same_frame_other_seed_other_frame(style, setting):
    a = generate_cohort(3000, setting=setting, style=style, seed=7)
    b = generate_cohort(3000, setting=setting, style=style, seed=7)
    c = generate_cohort(3000, setting=setting, style=style, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_missingness_only_hides_values():
    full = generate_cohort(3000, missingness="none", seed=3)
    seen = generate_cohort(3000, missingness="realistic", seed=3)
    for col in OUTCOME_COLUMNS:
        pd.testing.assert_series_equal(full[col], seen[col])
    assert seen[CAT.names].isna().to_numpy().mean() > 0.2
    for name in CAT.names:
        observed = seen[name].notna().to_numpy()
        np.testing.assert_array_equal(
            seen[name].to_numpy()[observed],
            full[name].to_numpy()[observed],
            err_msg=name,
        )


def test_oracle_is_one_function_whatever_seed_or_n():
    _, small = _simulate(10, setting="referral", seed=1)
    _, large = _simulate(5000, setting="referral", seed=2)
    assert small["scale"] == large["scale"]


def test_referral_hazard_is_the_population_hazard_times_a_constant():
    _, pop = _simulate(10, setting="population", seed=1)
    _, ref = _simulate(10, setting="referral", seed=1)
    assert ref["scale"] > 5 * pop["scale"]


# ------------------------------------------------------------------ contract


def _check_contract(df: pd.DataFrame, missingness: str) -> None:
    extra = [c for c in EPISODE_INPUT_COLUMNS if c not in CAT]
    assert list(df.columns) == ["patient_id", *CAT.names, *extra, *OUTCOME_COLUMNS]
    assert df["patient_id"].is_unique
    assert df["patient_id"].str.fullmatch(r"P\d{7,}").all()
    assert df["fracture"].dtype == np.int64 and set(df["fracture"]) <= {0, 1}
    for col in ("true_risk", "true_risk_3m", "true_risk_6m", "true_risk_12m"):
        assert df[col].dtype == np.float64
        assert df[col].between(0, 1).all(), col
    assert (df["true_risk_3m"] <= df["true_risk_6m"] + 1e-12).all()
    assert (df["true_risk_6m"] <= df["true_risk_12m"] + 1e-12).all()
    assert (df["true_risk_12m"] <= df["true_risk"] + 1e-12).all()
    fx = df["fracture"].to_numpy() == 1
    t = df["months_postpartum"].to_numpy()
    month = df["fracture_month"].to_numpy()
    assert (month[fx] > t[fx]).all() and (month[fx] <= 18).all()
    assert (month[~fx] == 18).all()  # censored at the end of the window
    assert set(df["fracture_site"][fx]) <= {"vertebral", "hip", "other"}
    assert df["fracture_site"][~fx].isna().all()
    vert = (df["fracture_site"] == "vertebral").to_numpy()
    assert (df["n_vertebral_fractures"][vert] >= 1).all()
    assert (df["n_vertebral_fractures"][~vert] == 0).all()
    assert (df["n_fractures"][fx] >= 1).all() and (df["n_fractures"][~fx] == 0).all()
    for feat in CAT:
        s = df[feat.name]
        if not feat.missing or (
            missingness == "none" and feat.name != "interpregnancy_interval_months"
        ):
            assert s.notna().all(), feat.name
        if feat.dtype == "bool":
            assert s.dtype == "boolean", feat.name
        elif feat.dtype == "category":
            assert pd.api.types.is_string_dtype(s) or s.dtype == object, feat.name
            assert set(s.dropna()) <= set(feat.categories), feat.name
        else:
            assert s.dtype == np.float64, feat.name
            lo, hi = feat.range
            assert s.dropna().between(lo, hi).all(), feat.name
            if feat.dtype == "int":
                assert (s.dropna() == np.round(s.dropna())).all(), feat.name


@pytest.mark.parametrize("missingness", ["realistic", "none"])
@pytest.mark.parametrize("setting", ["population", "referral"])
def test_clean_frame_contract(setting, missingness):
    df = generate_cohort(5000, setting=setting, missingness=missingness, seed=5)
    _check_contract(df, missingness)


def test_binary_outcomes_keep_the_first_wave_shape():
    df = generate_cohort(50, outcomes="binary", seed=5)
    extra = [c for c in EPISODE_INPUT_COLUMNS if c not in CAT]
    assert list(df.columns) == [
        "patient_id",
        *CAT.names,
        *extra,
        "fracture",
        "true_risk",
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    setting=st.sampled_from(["population", "referral"]),
    missingness=st.sampled_from(["realistic", "none"]),
)
def test_any_small_cohort_is_in_range(n, seed, setting, missingness):
    df = generate_cohort(n, setting=setting, missingness=missingness, seed=seed)
    assert len(df) == n
    _check_contract(df, missingness)


@pytest.mark.parametrize("setting", ["population", "referral"])
def test_clinical_consistency(setting):
    df = generate_cohort(20_000, setting=setting, missingness="none", seed=6)
    t = df["months_postpartum"]
    since = t.clip(lower=0)
    assert (df["lactation_months"] <= since + 1e-9).all()
    assert (df["lactation_months"][t <= 0] == 0).all()
    assert (df["amenorrhea_months"] <= since + 1e-9).all()
    feeding = df["breastfeeding_now"].astype(bool)
    assert not feeding[t <= 0].any()
    assert not (df["lactation_exclusive"].astype(bool) & ~feeding).any()
    # The plan is what she does: weaned women breastfed as planned.
    weaned = (t > 0) & ~feeding
    np.testing.assert_allclose(
        df["lactation_planned_months"][weaned], df["lactation_months"][weaned]
    )
    first = df["parity"] == 1
    assert df["interpregnancy_interval_months"][first].isna().all()
    assert df["interpregnancy_interval_months"][~first].notna().all()
    assert (df["prior_lactation_months"][first] == 0).all()
    assert not (df["heparin_unfractionated"] & ~df["heparin"]).any()


def test_bmd_scores_exact_and_missing_together():
    df = generate_cohort(20_000, setting="referral", seed=9)
    for site in CAT.bmd_sites:
        mean, sd = site.bmd_reference
        bmd = df[site.name]
        assert (np.round(bmd.dropna(), 3) == bmd.dropna()).all()
        for score in CAT.scores_of(site.name):
            s = df[score.name]
            pd.testing.assert_series_equal(s.isna(), bmd.isna(), check_names=False)
            np.testing.assert_array_equal(s.to_numpy(), ((bmd - mean) / sd).to_numpy())
    spine = df["bmd_lumbar_spine"].notna()
    hip = df["bmd_femoral_neck"].notna()
    assert (spine & ~hip).any()  # spine-only scans
    assert not (hip & ~spine).any()
    assert df["bmd_lumbar_spine"][df["months_postpartum"] < 0].isna().all()


@pytest.mark.parametrize("missingness", ["realistic", "none"])
@pytest.mark.parametrize("setting", ["population", "referral"])
def test_every_clean_row_passes_validation(setting, missingness):
    schema = pytest.importorskip("plo_risk.schema")
    df = generate_cohort(5000, setting=setting, missingness=missingness, seed=10)
    res = schema.validate_frame(df.drop(columns=[c for c in EXTRA if c in df]))
    assert len(res.rejects) == 0, res.rejects.head().to_string()
    assert len(res.valid) == len(df)


# ----------------------------------------------------------------- marginals


@pytest.mark.parametrize(
    ("setting", "rate"),
    [("population", 0.08), ("referral", 0.7)],
    ids=["population", "referral"],
)
def test_dxa_and_markers_observed_as_designed(setting, rate):
    df = generate_cohort(20_000, setting=setting, seed=13)
    dxa = df["bmd_lumbar_spine"].notna().mean()
    panel = df["ctx"].notna().mean()
    assert abs(dxa - rate) < 0.03
    assert panel < dxa


def test_vitamin_d_below_20_share_matches_zhao_2012(population_none):
    vitd = population_none[0]["vitamin_d_25oh"]
    assert abs((vitd < 20).mean() - 0.37) < 0.015
    assert abs((vitd < 12).mean() - 0.11) < 0.015


def test_six_months_exclusive_breastfeeding_costs_about_6_percent(population_none):
    df, x = population_none
    t = df["months_postpartum"].to_numpy()
    sel = (x["full_rate_months"] >= 6) & (t >= 5.5) & (t <= 6.5) & ~x["heparin"]
    sel &= x["vitamin_d_25oh"] >= 20
    assert sel.sum() > 50
    loss = x["loss_spine_at_assessment"][sel]
    preg = P["pregnancy"]["loss_mean"]
    assert 0.05 <= np.mean(loss - preg) <= 0.065


def _lactation_course(n, W, K, vitd_low=False, **over):
    course = {
        "a": np.full(n, 18.0),
        "twins": np.zeros(n, bool),
        "heparin": np.zeros(n, bool),
        "ufh_past": np.zeros(n, bool),
        "ufh_future": np.zeros(n, bool),
        "heparin_stop": np.full(n, 1.4),
        "W": np.full(n, float(W)),
        "K": np.full(n, float(K)),
        "vitd_low_past": np.full(n, vitd_low),
        "vitd_low_future": np.full(n, vitd_low),
        "calcium_past": np.full(n, 900.0),
        "calcium_future": np.full(n, 900.0),
    }
    course.update(over)
    course["t"] = episode.grid(course["a"], P["heparin"]["postpartum_months"])
    return course


def test_lactation_is_transient(population_none):
    # 12 months after weaning, a woman who breastfed 6 months exclusively is back
    # within 1% of her pre-pregnancy spine BMD (recovery within a year).
    df, x = population_none
    six = (x["lactation_total_months"] == 6) & (x["full_rate_months"] == 6)
    six &= ~x["heparin"]
    n = int(six.sum())
    assert n > 100
    course = _lactation_course(
        n, 6, 6, vitd_low=False, vitd_low_past=x["vitamin_d_25oh"][six] < 20
    )
    course["vitd_low_future"] = course["vitd_low_past"]
    L = episode.loss_path(course, P)["spine"]
    t = course["t"]
    at_weaning = episode.value_at(L, t, np.full(n, 6.0))
    after_a_year = episode.value_at(L, t, np.full(n, 18.0))
    assert at_weaning.mean() > 0.06  # she did lose
    assert after_a_year.mean() <= 0.01
    # A cause that persists (unfractionated heparin that never stops) prevents it.
    on = _lactation_course(
        n,
        6,
        6,
        heparin=np.ones(n, bool),
        ufh_past=np.ones(n, bool),
        ufh_future=np.ones(n, bool),
        heparin_stop=np.full(n, 99.0),
    )
    L_on = episode.loss_path(on, P)["spine"]
    assert episode.value_at(L_on, on["t"], np.full(n, 18.0)).mean() > 0.05


def test_bmd_recovers_after_weaning(population_none):
    df, x = population_none
    t = df["months_postpartum"].to_numpy()
    weaned_long_ago = (t - x["lactation_total_months"] > 10) & ~x["heparin"]
    ratio = x["bmd_lumbar_spine_latent"] / x["bmd_lumbar_spine_baseline"]
    assert ratio[weaned_long_ago].mean() > 0.985
    assert ratio[weaned_long_ago].mean() > ratio[x["breastfeeding_now"]].mean()


def _binomial_ok(k: int, n: int, p: float) -> bool:
    return abs(k - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize(
    ("setting", "prevalence", "target"),
    [("referral", None, 0.05), ("referral", 0.2, 0.2), ("population", 0.01, 0.01)],
    ids=["referral-default", "referral-0.2", "population-0.01"],
)
def test_prevalence_hits_target(setting, prevalence, target):
    df = generate_cohort(20_000, setting=setting, prevalence=prevalence, seed=14)
    assert df["true_risk"].mean() == pytest.approx(target, rel=0.15)
    assert _binomial_ok(int(df["fracture"].sum()), len(df), df["true_risk"].mean())


def test_population_incidence_is_kasahara_2024(population_none):
    # 460 per million episodes with a vertebral or hip fracture from -3 to 12 months.
    df, x = population_none
    ev = x["events"]
    hit = ev[ev["site"].isin(["vertebral", "hip"]) & ev["month"].between(-3, 12)]
    k = hit["row"].nunique()
    assert _binomial_ok(k, len(df), 4.6e-4)


def test_referral_cases_have_low_bone_mass(referral_none):
    df, x = referral_none
    ev = x["events"]
    first = ev[ev["first"]]
    assert -3.6 <= first["z_lumbar_spine"].mean() <= -2.5
    assert 28 <= df["age_years"].to_numpy()[first["row"]].mean() <= 36


def test_oracle_auroc_in_band(referral_none):
    df = referral_none[0]
    auc = roc_auc_score(df["fracture"], df["true_risk"])
    assert 0.72 <= auc <= 0.99


# -------------------------------------------------------------------- oracle


def test_oracle_matches_the_sample_at_every_horizon(referral_none):
    # The share of women with a fracture within h months of the assessment is the
    # mean oracle risk at h (sampling error only).
    df = referral_none[0]
    t = df["months_postpartum"].to_numpy()
    fx = df["fracture"].to_numpy() == 1
    for h in (3, 6, 12):
        seen = fx & (df["fracture_month"].to_numpy() - t <= h)
        risk = df[f"true_risk_{h}m"].to_numpy()
        se = np.sqrt((risk * (1 - risk)).sum()) / len(df)
        assert abs(seen.mean() - risk.mean()) <= 4 * se, h
    risk = df["true_risk"].to_numpy()
    se = np.sqrt((risk * (1 - risk)).sum()) / len(df)
    assert abs(fx.mean() - risk.mean()) <= 4 * se


def test_a_fracture_before_the_assessment_is_an_input(referral_none):
    df, x = referral_none
    before = df["fractured_this_episode"].to_numpy(bool)
    assert 0.02 < before.mean() < 0.3
    # She is at higher risk of the next one, and the oracle knows it.
    assert df["true_risk"][before].mean() > 3 * df["true_risk"][~before].mean()


def test_counterfactual_without_change_is_the_factual_risk_exactly():
    df = generate_cohort(3000, missingness="none", seed=17)
    np.testing.assert_array_equal(counterfactual_risk(df).to_numpy(), df["true_risk"])
    for h in (3, 6, 12):
        np.testing.assert_array_equal(
            oracle_risk(df, h).to_numpy(), df[f"true_risk_{h}m"].to_numpy()
        )
    pop = generate_cohort(2000, setting="population", missingness="none", seed=17)
    np.testing.assert_array_equal(
        counterfactual_risk(pop, setting="population").to_numpy(), pop["true_risk"]
    )


def test_oracle_reads_the_record_only():
    # The same record gives the same risk whatever her latent history.
    df = generate_cohort(3000, missingness="none", seed=18)
    order = np.random.default_rng(0).permutation(len(df))
    shuffled = df.iloc[order].reset_index(drop=True)
    np.testing.assert_allclose(
        counterfactual_risk(shuffled).to_numpy(),
        df["true_risk"].to_numpy()[order],
        rtol=1e-6,
        atol=1e-12,
    )


@pytest.fixture(scope="module")
def intervention_rows():
    df = generate_cohort(60_000, setting="referral", missingness="none", seed=19)
    t = df["months_postpartum"]
    sel = (
        t.between(3.0, 3.99)
        & df["lactation_exclusive"].astype(bool)
        & (df["amenorrhea_months"] >= t - 1e-9)
        & (df["z_lumbar_spine"] < -2.0)
        & (df["lactation_planned_months"] >= 8)
        & ~df["fractured_this_episode"].astype(bool)
        & ~df["heparin"].astype(bool)
    )
    rows = df[sel.to_numpy()].reset_index(drop=True)
    assert len(rows) >= 20
    return rows


def test_stopping_breastfeeding_at_3_months_lowers_the_risk(intervention_rows):
    rows = intervention_rows
    base = oracle_risk(rows, 12)
    weaned = counterfactual_risk(rows, {"breastfeeding_now": False}, 12)
    assert (weaned < base).all()
    assert (weaned / base).mean() < 0.8


def test_calcium_alone_changes_the_risk_by_less_than_5_percent(intervention_rows):
    rows = intervention_rows
    base = oracle_risk(rows, 12)
    more = counterfactual_risk(rows, {"calcium_intake_mg_day": 2000.0}, 12)
    assert (np.abs(more / base - 1) < 0.05).all()
    assert (more <= base + 1e-15).all()


def test_stopping_smoking_lowers_the_hazard_by_the_params_factor():
    df = generate_cohort(30_000, setting="population", missingness="none", seed=20)
    smokers = df[
        df["smoking"].astype(bool) & ~df["fractured_this_episode"].astype(bool)
    ]
    smokers = smokers.reset_index(drop=True)
    base = oracle_risk(smokers, 12, setting="population")
    quit_ = counterfactual_risk(smokers, {"smoking": False}, 12, setting="population")
    low = (base > 0) & (base < 1e-3)  # where risk and cumulative hazard agree
    assert low.sum() > 100
    ratio = np.log1p(-quit_[low]) / np.log1p(-base[low])
    np.testing.assert_allclose(ratio, P["fracture"]["smoking_stopped_rr"], rtol=0.01)


def test_vitamin_d_repletion_helps_only_a_deficient_breastfeeding_woman(
    intervention_rows,
):
    rows = intervention_rows
    low = rows["vitamin_d_25oh"].to_numpy() < 20
    base = oracle_risk(rows, 12)
    replete = counterfactual_risk(rows, {"vitamin_d_25oh": 30.0}, 12)
    assert (replete[low] < base[low]).all()
    np.testing.assert_allclose(replete[~low], base[~low], rtol=1e-12)


def test_interventions_act_only_forward():
    df = generate_cohort(3000, missingness="none", seed=21)
    # Nothing can happen in no time, whatever the change.
    zero = counterfactual_risk(df, {"breastfeeding_now": False, "smoking": False}, 0.0)
    assert (zero == 0).all()
    # For a weaned woman stopping breastfeeding changes nothing: the loss is done.
    weaned = df[
        (df["months_postpartum"] >= 0) & ~df["breastfeeding_now"].astype(bool)
    ].reset_index(drop=True)
    np.testing.assert_array_equal(
        counterfactual_risk(weaned, {"breastfeeding_now": False}).to_numpy(),
        weaned["true_risk"].to_numpy(),
    )


def test_heparin_switch_and_stop():
    df = generate_cohort(60_000, setting="referral", missingness="none", seed=22)
    on = df[
        df["heparin_unfractionated"].astype(bool)
        & (df["months_postpartum"] < -1)
        & ~df["fractured_this_episode"].astype(bool)
    ].reset_index(drop=True)
    assert len(on) >= 10
    base = counterfactual_risk(on)
    lmwh = counterfactual_risk(on, {"heparin_unfractionated": False})
    stop = counterfactual_risk(on, {"heparin": False})
    assert (lmwh < base).all() and (stop <= lmwh + 1e-15).all()
    # Dalteparin hardly: switching does most of what stopping does.
    assert ((base - lmwh) / (base - stop)).mean() > 0.8


def test_naive_what_if_overstates_stopping_heparin():
    # Confounding on purpose: heparin goes with a latent thrombophilia that itself
    # raises the hazard, so the record-based risk with heparin=False (what a model
    # fitted to the data says) drops far more than the intervention does.
    df = generate_cohort(80_000, setting="referral", missingness="none", seed=23)
    on = df[
        df["heparin"].astype(bool)
        & (df["months_postpartum"] < 1.0)
        & ~df["fractured_this_episode"].astype(bool)
    ].reset_index(drop=True)
    assert len(on) >= 20
    base = oracle_risk(on)
    true_do = counterfactual_risk(on, {"heparin": False})
    naive = oracle_risk(on.assign(heparin=False, heparin_unfractionated=False))
    assert (naive / base).mean() < (true_do / base).mean() - 0.1


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"lactation_month": 2},
            r"cannot intervene on 'lactation_month'; did you mean",
        ),
        ({"smoking": True}, r"smoking=True"),
        ({"lactation_exclusive": True}, r"lactation_exclusive=True"),
        (
            {"bmi": [20.0, 21.0]},
            r"changes\['bmi'\] must be a scalar or one value per row",
        ),
    ],
    ids=["unknown", "start-smoking", "restart-exclusive", "bad-shape"],
)
def test_impossible_interventions_are_named(changes, match):
    df = generate_cohort(300, missingness="none", seed=24)
    if "smoking" in changes:
        df = df.assign(smoking=False)
    if "lactation_exclusive" in changes:
        df = df.assign(lactation_exclusive=False)
    with pytest.raises(InterventionError, match=match):
        counterfactual_risk(df, changes)


def test_oracle_needs_every_input():
    df = generate_cohort(50, missingness="realistic", seed=25)
    with pytest.raises(ValueError, match="missing values in"):
        counterfactual_risk(df)
    with pytest.raises(ValueError, match="lacks fractured_this_episode"):
        counterfactual_risk(
            generate_cohort(50, missingness="none", seed=25).drop(
                columns=["fractured_this_episode"]
            )
        )


# ------------------------------------------------------------------ registry


def _invert_registry(reg_df: pd.DataFrame) -> pd.DataFrame:
    """What an ingestion step would do with the maps of params.yaml."""
    reg = P["registry"]
    cols = reg["columns"]
    df = reg_df.drop_duplicates(subset=[cols["patient_id"]], keep="first")
    tokens = {
        t.strip().lower(): v
        for key, v in (("true", True), ("false", False))
        for t in reg["bool_variants"][key]
    }
    spellings = {
        s.strip().lower(): cat
        for cat, names in reg["category_variants"].items()
        for s in names
    }
    out = {"patient_id": df[cols["patient_id"]].to_numpy()}
    for feat in CAT:
        raw = df[cols[feat.name]]
        if feat.dtype == "bool":
            out[feat.name] = pd.array(
                [
                    tokens.get(v.strip().lower()) if isinstance(v, str) else None
                    for v in raw
                ],
                dtype="boolean",
            )
        elif feat.dtype == "category":
            out[feat.name] = np.array(
                [
                    spellings.get(v.strip().lower(), np.nan)
                    if isinstance(v, str)
                    else np.nan
                    for v in raw
                ],
                dtype=object,
            )
        else:
            v = raw.to_numpy(dtype=float)
            if feat.name in reg["column_units"]:
                v = v * feat.unit_factor(reg["column_units"][feat.name])
            mixed = reg["mixed_units"].get(feat.name)
            if mixed is not None:
                units = df[mixed["unit_column"]].fillna(mixed["default"])
                v = v * np.array([feat.unit_factor(u) for u in units])
            out[feat.name] = v
    return pd.DataFrame(out).set_index("patient_id")


def _matches(clean: pd.Series, back: pd.Series, name: str) -> np.ndarray:
    reg = P["registry"]
    both_missing = clean.isna().to_numpy() & back.isna().to_numpy()
    if CAT[name].dtype in ("bool", "category"):
        same = (
            (clean.astype(object) == back.astype(object)).fillna(False).to_numpy(bool)
        )
        return both_missing | same
    digits = reg["decimals"].get(name)
    factor = CAT[name].unit_factor(reg["column_units"].get(name, CAT[name].unit))
    tol = 1e-9 + (0.5 * 10.0**-digits * factor * 1.0001 if digits is not None else 0.0)
    if name in reg["mixed_units"]:
        tol = 1e-9 + 0.5 * 10.0 ** -reg["decimals"][name] * max(
            [1.0, *CAT[name].alt_units.values()]
        )
    close = np.abs(clean.to_numpy(float) - back.to_numpy(float)) <= tol + 1e-9 * np.abs(
        clean.to_numpy(float)
    )
    return both_missing | np.nan_to_num(close, nan=False).astype(bool)


@pytest.fixture(scope="module")
def registry_pair():
    clean = generate_cohort(10_000, setting="referral", missingness="none", seed=21)
    reg = generate_cohort(
        10_000, setting="referral", missingness="none", seed=21, style="registry"
    )
    return clean, reg


def test_registry_looks_like_an_extract(registry_pair):
    clean, reg = registry_pair
    cols = P["registry"]["columns"]
    assert {"Age", "vit_d_nmol", "LS_BMD_mg", "Hospital", "E2_unit"} <= set(reg.columns)
    assert not set(CAT.names) & set(reg.columns) - {"fracture", "true_risk"}
    n_dup = int(reg[cols["patient_id"]].duplicated().sum())
    assert 0.01 * len(clean) < n_dup < 0.03 * len(clean)
    assert len(reg) == len(clean) + n_dup
    # alternate units: nmol/L, mg/cm2, g/day, pmol/L, mixed units by hospital
    first = reg.drop_duplicates(cols["patient_id"]).set_index(cols["patient_id"])
    first = first.loc[clean["patient_id"]]
    np.testing.assert_allclose(
        first["vit_d_nmol"], clean["vitamin_d_25oh"] / 0.400641, atol=0.051
    )
    np.testing.assert_allclose(first["LS_BMD_mg"], clean["bmd_lumbar_spine"] * 1000)
    assert first["Ca_intake_g"].max() < 5
    assert set(reg["E2_unit"].dropna()) == {"pg/mL", "pmol/L"}
    # messy tokens
    assert {"Y", "yes", "1", "TRUE"} <= set(reg["Smoker"].dropna())
    assert {"European", "Europian"} <= set(reg["Ethnicity"].dropna())
    # one hospital's marker block
    block = reg[reg["Hospital"] == P["registry"]["block_hospital"]]
    markers = [cols[m] for m in P["registry"]["block_fields"]]
    no_markers = block[markers].isna().all(axis=1).mean()
    assert 0.3 < no_markers < 0.7


def test_registry_is_invertible_to_99_percent(registry_pair):
    clean, reg = registry_pair
    back = _invert_registry(reg).loc[clean["patient_id"]]
    clean = clean.set_index("patient_id")
    ok = np.column_stack([_matches(clean[n], back[n], n) for n in CAT.names])
    share = ok.mean()
    assert 0.99 <= share < 1.0
    per_field = pd.Series(ok.mean(axis=0), index=CAT.names)
    assert (per_field > 0.9).all(), per_field[per_field <= 0.9]


# ------------------------------------------------------------ bad arguments
# ------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, r"'n' parameter of generate_cohort must be an int .* Got 0"),
        ({"n": 2.5}, r"'n' parameter .* Got 2\.5"),
        ({"n": True}, r"'n' parameter"),
        (
            {"setting": "clinic"},
            r"'setting' parameter of generate_cohort must be one "
            r"of 'population', 'referral'\. Got 'clinic' instead",
        ),
        ({"style": "messy"}, r"'style' parameter .* 'clean', 'registry'\. Got 'messy'"),
        ({"missingness": "some"}, r"'missingness' parameter .* Got 'some'"),
        ({"prevalence": 0.0}, r"'prevalence' parameter .* range \(0, 1\)\. Got 0\.0"),
        ({"prevalence": 1.5}, r"'prevalence' parameter .* Got 1\.5"),
        ({"prevalence": "0.1"}, r"'prevalence' parameter .* Got '0\.1'"),
        ({"seed": -1}, r"'seed' parameter .* Got -1"),
        ({"seed": 1.5}, r"'seed' parameter .* Got 1\.5"),
        ({"params": "/nonexistent/params.yaml"}, r"'params' parameter .* existing"),
    ],
    ids=[
        "n-zero",
        "n-float",
        "n-bool",
        "setting",
        "style",
        "missingness",
        "prevalence-zero",
        "prevalence-above-1",
        "prevalence-str",
        "seed-negative",
        "seed-float",
        "params-missing",
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = {"n": 10, **kwargs}
    n = args.pop("n")
    with pytest.raises(ValueError, match=match):
        generate_cohort(n, **args)


# ------------------------------------------------------------------- sample


def _read_cohort_csv(path: Path) -> pd.DataFrame:
    dtypes = {f.name: "boolean" for f in CAT if f.dtype == "bool"}
    dtypes.update({c: "boolean" for c in EPISODE_INPUT_COLUMNS})
    dtypes.update({"patient_id": "str", "ancestry": "str", "fracture_site": "object"})
    df = pd.read_csv(path, dtype=dtypes)
    floats = [f.name for f in CAT if f.is_numeric]
    df[floats] = df[floats].astype(np.float64)
    return df


def test_committed_sample_is_current():
    committed = _read_cohort_csv(SAMPLE)
    now = generate_cohort(2000, setting="referral", style="clean", seed=0)
    assert len(committed) == 2000
    pd.testing.assert_frame_equal(
        committed, now, check_dtype=False, check_exact=False, rtol=1e-12, atol=1e-12
    )


def test_write_sample_round_trips(tmp_path):
    path = write_sample(tmp_path / "sample.csv")
    assert path.read_bytes() == SAMPLE.read_bytes()

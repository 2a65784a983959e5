"""The synthetic cohort generator: contract, structure, marginals, oracle, registry."""

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

from plo_risk.data.catalog import load_catalog
from plo_risk.data.synthetic import (
    ParamsError,
    _risk_from_record,
    _simulate,
    default_params_path,
    generate_cohort,
    load_params,
    write_sample,
)

CAT = load_catalog()
P = load_params()
EXTRA = ["patient_id", "fracture", "true_risk"]
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


def test_effects_are_labelled_as_the_ratio_they_are():
    # The first wave labelled odds ratios as RR. An effect that enters the log-odds
    # is either a source's risk ratio (*_rr, converted by the generator) or an odds
    # ratio (*_or), and its source says which.
    doc = yaml.safe_load(default_params_path().read_text())
    named = [
        (f"{section}.{name}", entry["source"])
        for section, entries in doc.items()
        for name, entry in entries.items()
        if "_rr" in name or name.endswith("_or")
    ]
    assert len(named) >= 10
    for key, source in named:
        if key.endswith("_or"):
            assert "odds ratio" in source, key
        else:
            assert "RR" in source, key


@settings(max_examples=200, deadline=None)
@given(
    rr=st.floats(1.01, 5.0),
    p0=st.floats(1e-5, 0.15),
)
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
    doc["fracture"]["smoking_rr"]["value"] = "high"
    doc["bone"]["variant_sd"]["source"] = ""
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError) as info:
        load_params(bad)
    text = str(info.value)
    assert "lactation: missing key 'spine_loss_per_month'" in text
    assert "did you mean 'spine_loss_per_month'?" in text
    assert "fracture.smoking_rr.value='high'" in text
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
    pd.testing.assert_series_equal(full["true_risk"], seen["true_risk"])
    pd.testing.assert_series_equal(full["fracture"], seen["fracture"])
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
    assert small["intercept"] == large["intercept"]


@pytest.mark.parametrize("setting", ["population", "referral"])
def test_settings_differ_by_a_constant_log_odds_shift(setting):
    df, x = _simulate(2000, setting=setting, missingness="none", seed=4)
    risk = df["true_risk"].to_numpy()
    shift = np.log(risk) - np.log1p(-risk) - x["log_odds"]
    np.testing.assert_allclose(shift, x["intercept"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("setting", ["population", "referral"])
def test_true_risk_is_a_function_of_the_recorded_columns(setting):
    # The oracle reads the record only (no latent nadir or loss rate), so with every
    # input observed its AUROC is the ceiling a model can reach.
    df = generate_cohort(5000, setting=setting, missingness="none", seed=15)
    again = generate_cohort(5000, setting=setting, missingness="realistic", seed=15)
    np.testing.assert_allclose(
        _risk_from_record(df, setting=setting), df["true_risk"], rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        _risk_from_record(df, setting=setting), again["true_risk"], rtol=0, atol=1e-9
    )
    # The same record gives the same risk, however its latent past differs: only the
    # recorded columns are passed in, shuffled.
    order = np.random.default_rng(0).permutation(len(df))
    shuffled = df.iloc[order].reset_index(drop=True)
    np.testing.assert_allclose(
        _risk_from_record(shuffled, setting=setting),
        df["true_risk"].to_numpy()[order],
        rtol=0,
        atol=1e-9,
    )


def test_projected_nadir_uses_the_plan():
    # More planned lactation (still breastfeeding) never lowers the risk.
    df = generate_cohort(5000, missingness="none", seed=16)
    feeding = df[df["breastfeeding_now"].astype(bool)].reset_index(drop=True)
    longer = feeding.copy()
    longer["lactation_planned_months"] = feeding["lactation_planned_months"] + 6
    before, after = _risk_from_record(feeding), _risk_from_record(longer)
    assert (after >= before - 1e-15).all()
    assert (after > before).mean() > 0.5


# ------------------------------------------------------------------ contract


def _check_contract(df: pd.DataFrame, missingness: str) -> None:
    assert list(df.columns) == ["patient_id", *CAT.names, "fracture", "true_risk"]
    assert df["patient_id"].is_unique
    assert df["patient_id"].str.fullmatch(r"P\d{7,}").all()
    assert df["fracture"].dtype == np.int64 and set(df["fracture"]) <= {0, 1}
    assert df["true_risk"].dtype == np.float64
    assert df["true_risk"].between(0, 1).all()
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
    first = df["parity"] == 1
    assert df["interpregnancy_interval_months"][first].isna().all()
    assert df["interpregnancy_interval_months"][~first].notna().all()
    assert (df["prior_lactation_months"][first] == 0).all()
    assert (df["parity"] >= 1).all()


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
    res = schema.validate_frame(df.drop(columns=EXTRA))
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
    sel = (
        df["lactation_exclusive"].astype(bool)
        & df["months_postpartum"].between(5.5, 6.5)
    ).to_numpy()
    assert sel.sum() > 100
    loss = 1 - x["bmd_lumbar_spine_latent"][sel] / x["bmd_lumbar_spine_delivery"][sel]
    assert 0.05 <= loss.mean() <= 0.07


def test_bmd_recovers_after_weaning(population_none):
    df, x = population_none
    weaned_long_ago = (
        df["months_postpartum"] - x["lactation_total_months"] > 10
    ).to_numpy()
    ratio = x["bmd_lumbar_spine_latent"] / x["bmd_lumbar_spine_baseline"]
    assert ratio[weaned_long_ago].mean() > 0.985
    assert (
        ratio[weaned_long_ago].mean()
        > ratio[df["breastfeeding_now"].to_numpy(bool)].mean()
    )


def _binomial_ok(k: int, n: int, p: float) -> bool:
    return abs(k - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1


def test_population_prevalence_is_kasahara_2024(population_none):
    df = population_none[0]
    assert df["true_risk"].mean() == pytest.approx(4.6e-4, rel=0.2)
    assert _binomial_ok(int(df["fracture"].sum()), len(df), df["true_risk"].mean())


@pytest.mark.parametrize(
    ("setting", "prevalence", "target"),
    [("referral", None, 0.05), ("referral", 0.2, 0.2), ("population", 0.01, 0.01)],
    ids=["referral-default", "referral-0.2", "population-0.01"],
)
def test_prevalence_hits_target(setting, prevalence, target):
    df = generate_cohort(20_000, setting=setting, prevalence=prevalence, seed=14)
    assert df["true_risk"].mean() == pytest.approx(target, rel=0.1)
    assert _binomial_ok(int(df["fracture"].sum()), len(df), target)


def test_referral_cases_look_like_seed_table3(referral_none):
    df = referral_none[0]
    cases = df[df["fracture"] == 1]
    assert -3.2 <= cases["z_lumbar_spine"].mean() <= -2.5
    assert -2.0 <= cases["z_femoral_neck"].mean() <= -1.3  # spine about 1 SD worse
    assert 28 <= cases["age_years"].mean() <= 36


def test_oracle_auroc_in_band(referral_none):
    df = referral_none[0]
    auc = roc_auc_score(df["fracture"], df["true_risk"])
    assert 0.72 <= auc <= 0.90


def test_risk_follows_the_causal_chain(referral_none):
    df, x = referral_none
    low = df["z_lumbar_spine"] < -2.5
    assert df["true_risk"][low].mean() > 3 * df["true_risk"][~low].mean()
    vd_low = (df["vitamin_d_25oh"] < 20).to_numpy()
    long_bf = x["lactation_total_months"] >= 6
    # Interaction: low vitamin D matters for long breastfeeding only.
    gap_long = (
        df["true_risk"][vd_low & long_bf].mean()
        / df["true_risk"][~vd_low & long_bf].mean()
    )
    gap_short = (
        df["true_risk"][vd_low & ~long_bf].mean()
        / df["true_risk"][~vd_low & ~long_bf].mean()
    )
    assert gap_long > 1.5 * gap_short


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
    dtypes.update({"patient_id": "str", "ancestry": "str"})
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

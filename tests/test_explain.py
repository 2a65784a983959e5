"""Tests of plo_risk.explain: additive contributions in calibrated log-odds, their
grouping back to catalog fields, global importance, per-row top factors, plots."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import shap
from matplotlib.figure import Figure
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

from plo_risk.data.catalog import load_catalog
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.explain import (
    Explanation,
    contributions,
    explain_cohort,
    explainer_for,
    global_importance,
    plot_beeswarm,
    plot_waterfall,
)
from plo_risk.model.calibration import margin
from plo_risk.model.zoo import make_model

CAT = load_catalog()
FIELDS = list(CAT.names)
Z_FIELDS = [f.name for f in CAT if f.score == "z"]
T_FIELDS = [f.name for f in CAT if f.score == "t"]
MARKERS = [f.name for f in CAT if f.group == "markers"]
N_TRAIN = 2000
# Small but real models: enough trees and splits to use most columns.
PARAMS = {
    "xgboost": {"n_estimators": 60},
    "hist_gradient_boosting": {"max_iter": 40},
    "logistic_regression": None,
    "clinical_rule": None,
}


@pytest.fixture(scope="module", autouse=True)
def _no_display():
    backend = plt.get_backend()
    plt.switch_backend("Agg")
    yield
    plt.switch_backend(backend)


@pytest.fixture(scope="module", autouse=True)
def _one_openmp_thread():
    # HistGradientBoosting's OpenMP threads slow down tenfold when other processes
    # share the 2 cores; one thread changes no result tested here.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    """10,000 validated rows: the first N_TRAIN train, all are explained."""
    frame = validate_frame(generate_cohort(10_000, seed=7)).valid
    return frame.drop(columns=["patient_id", "fracture", "true_risk"]).assign(
        fracture=frame["fracture"].astype(int)
    )


@pytest.fixture(scope="module")
def X(cohort) -> pd.DataFrame:
    return cohort.drop(columns=["fracture"])


@pytest.fixture(scope="module")
def models(cohort) -> dict:
    train = cohort.iloc[:N_TRAIN]
    return {
        name: make_model(name, params=params, cv=2).fit(
            train.drop(columns=["fracture"]), train["fracture"]
        )
        for name, params in PARAMS.items()
    }


def _rows(name: str) -> int:
    # The champion on all 10,000 rows; the others on fewer (they are slower or
    # simpler).
    return 10_000 if name == "xgboost" else N_TRAIN


# ------------------------------------------------------------------ additivity


@pytest.mark.parametrize("by", ["column", "field"])
@pytest.mark.parametrize("name", list(PARAMS))
def test_additive_in_calibrated_log_odds(models, X, name, by):
    model, rows = models[name], X.iloc[: _rows(name)]
    expl = contributions(model, rows, by=by)
    assert isinstance(expl, Explanation)
    assert expl.values.shape[0] == len(rows) and expl.base.shape == (len(rows),)
    assert expl.values.index.equals(rows.index)
    target = model.decision_function(rows)
    gap = expl.base + expl.values.to_numpy().sum(axis=1) - target
    assert np.max(np.abs(gap)) < 1e-5
    np.testing.assert_allclose(expl.logit, target, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", list(PARAMS))
def test_base_is_one_value(models, X, name):
    # Only xgboost's float32 rounding is folded into the base: it stays constant.
    expl = contributions(models[name], X.iloc[: _rows(name)])
    assert np.ptp(expl.base) < 1e-4


def test_xgboost_matches_shap_tree_explainer(models, X):
    model, rows = models["xgboost"], X.iloc[:2000]
    ours = contributions(model, rows, by="column")
    Xt = model.estimator_[:-1].transform(rows)
    explainer = shap.TreeExplainer(model.estimator_[-1].get_booster())
    theirs = model.slope_ * np.asarray(explainer.shap_values(Xt), dtype=np.float64)
    assert list(ours.values.columns) == list(Xt.columns)
    np.testing.assert_allclose(ours.values.to_numpy(), theirs, rtol=0, atol=1e-4)
    base = model.intercept_ + model.slope_ * float(explainer.expected_value)
    np.testing.assert_allclose(ours.base, base, rtol=0, atol=1e-4)


def test_logistic_columns_are_coef_times_standardized_value(models, X):
    model, rows = models["logistic_regression"], X.iloc[:500]
    ours = contributions(model, rows, by="column")
    design = model.estimator_[:-1].transform(rows)
    lr = model.estimator_[-1]
    expected = model.slope_ * design.to_numpy() * lr.coef_[0]
    assert list(ours.values.columns) == list(design.columns)
    np.testing.assert_allclose(ours.values.to_numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        ours.base, model.intercept_ + model.slope_ * lr.intercept_[0], atol=1e-12
    )


@pytest.mark.parametrize("field", ["age_years", "vitamin_d_25oh", "ancestry"])
def test_logistic_field_depends_only_on_that_field(models, X, field):
    # The logistic model is additive in its fields (splines, one-hot, indicators
    # of one field each): changing one field moves only that field's contribution.
    model, rows = models["logistic_regression"], X.iloc[:200].copy()
    before = contributions(model, rows).values
    changed = rows.copy()
    changed[field] = rows[field].sample(frac=1.0, random_state=0).to_numpy()
    after = contributions(model, changed).values
    moved = (after - before).abs().max()
    assert moved[field] > 0
    assert moved.drop(field).max() < 1e-12


@pytest.mark.parametrize("name", ["xgboost", "clinical_rule"])
def test_saved_and_loaded_model_explains_the_same(models, X, tmp_path, name):
    from plo_risk.model.bundle import load_bundle, save_bundle

    rows = X.iloc[:200]
    path = save_bundle(models[name], tmp_path / name, model_name=name)
    loaded, _ = load_bundle(path)
    before, after = contributions(models[name], rows), contributions(loaded, rows)
    pd.testing.assert_frame_equal(after.values, before.values, atol=1e-6)
    np.testing.assert_allclose(after.base, before.base, atol=1e-6)


# -------------------------------------------------------------------- grouping


@pytest.mark.parametrize("name", list(PARAMS))
def test_field_columns_are_the_catalog(models, X, name):
    expl = contributions(models[name], X.iloc[:50])
    assert list(expl.values.columns) == FIELDS
    assert expl.by == "field"


def test_one_hot_columns_sum_into_their_field(models, X):
    model, rows = models["xgboost"], X.iloc[:2000]
    by_column = contributions(model, rows, by="column").values
    by_field = contributions(model, rows, by="field").values
    one_hot = [c for c in by_column.columns if c.startswith("ancestry=")]
    assert len(one_hot) == len(CAT["ancestry"].categories)
    assert by_column[one_hot].abs().to_numpy().max() > 0  # the model uses ancestry
    np.testing.assert_allclose(
        by_field["ancestry"], by_column[one_hot].sum(axis=1), rtol=0, atol=1e-12
    )


def test_multi_source_columns_are_split_equally(models, X):
    model, rows = models["xgboost"], X.iloc[:2000]
    col = contributions(model, rows, by="column").values
    field = contributions(model, rows, by="field").values
    cumulative, product = col["cumulative_lactation_months"], col["lactation_x_parity"]
    expected = {
        "parity": col["parity"] + product / 2 + cumulative / 3,
        "lactation_months": col["lactation_months"] + product / 2 + cumulative / 3,
        "prior_lactation_months": col["prior_lactation_months"] + cumulative / 3,
    }
    for name, values in expected.items():
        np.testing.assert_allclose(field[name], values, rtol=0, atol=1e-12)


def _dxa_rows(X: pd.DataFrame, fields: list[str]) -> tuple[pd.DataFrame, list]:
    """Rows with a known lowest site (None: no site measured) among ``fields``."""
    patterns = [
        ([-3.0, -1.0, -0.5], 0),
        ([-0.2, -2.5, -1.0], 1),
        ([0.5, np.nan, -1.5], 2),
        ([np.nan, -1.2, np.nan], 1),
        ([-1.0, -1.0, 0.0], 0),  # a tie: the first site
        ([np.nan, np.nan, np.nan], None),
    ]
    rows = X.iloc[: len(patterns)].copy()
    for i, (values, _) in enumerate(patterns):
        rows.iloc[i, [rows.columns.get_loc(f) for f in fields]] = values
    return rows, [winner for _, winner in patterns]


@pytest.mark.parametrize(
    ("name", "score"),
    [("xgboost", "z"), ("xgboost", "t"), ("logistic_regression", "z")],
    ids=["xgboost-lowest_z", "xgboost-lowest_t", "logistic_regression-lowest_z"],
)
def test_row_min_goes_to_the_lowest_site(models, X, name, score):
    fields = Z_FIELDS if score == "z" else T_FIELDS
    rows, winners = _dxa_rows(X, fields)
    model = models[name]
    col = contributions(model, rows, by="column").values
    field = contributions(model, rows, by="field").values
    # What a site field gets beyond its own columns (the site's value, and for the
    # logistic model its splines and missing indicator) comes from lowest_<score>.
    own = {
        f: col[[c for c in col.columns if c == f or c.startswith(f"{f}_")]].sum(axis=1)
        for f in fields
    }
    from_min = col[
        [
            c
            for c in col.columns
            if c == f"lowest_{score}" or c.startswith(f"lowest_{score}_sp_")
        ]
    ].sum(axis=1)
    indicator = col.get(f"lowest_{score}_missing", pd.Series(0.0, index=col.index))
    assert from_min.abs().max() > 0
    for i, winner in enumerate(winners):
        share = np.zeros(len(fields))
        if winner is None:
            share[:] = 1 / 3
        else:
            share[winner] = 1.0
        got = [field[f].iloc[i] - own[f].iloc[i] for f in fields]
        expected = share * from_min.iloc[i] + indicator.iloc[i] / 3
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_clinical_rule_goes_to_the_lowest_z_site(models, X):
    model = models["clinical_rule"]
    rows, winners = _dxa_rows(X, Z_FIELDS)
    field = contributions(model, rows).values
    total = model.decision_function(rows) - contributions(model, rows).base
    assert np.abs(field.drop(columns=Z_FIELDS).to_numpy()).max() == 0
    for i, winner in enumerate(winners):
        expected = np.zeros(3)
        if winner is not None:  # no DXA is the base: nothing to attribute
            expected[winner] = total[i]
        np.testing.assert_allclose(field[Z_FIELDS].iloc[i], expected, atol=1e-12)
    assert abs(total[0]) > 0  # Z = -3.0 is rule positive


@pytest.mark.parametrize("name", ["xgboost", "logistic_regression"])
def test_field_left_out_still_appears(models, X, name):
    rows = X.iloc[:300].copy()
    rows[MARKERS] = np.nan
    expl = contributions(models[name], rows)
    assert set(MARKERS) <= set(expl.values.columns)
    markers = expl.values[MARKERS]
    assert np.isfinite(markers.to_numpy()).all()
    if name == "logistic_regression":
        # Additive in its fields: the same (imputed) value in every row gives the
        # same contribution in every row. Trees interact: no such promise.
        np.testing.assert_allclose(markers.max() - markers.min(), 0.0, atol=1e-9)
    np.testing.assert_allclose(
        expl.logit, models[name].decision_function(rows), rtol=0, atol=1e-5
    )


# -------------------------------------------------------- importance, top factors


@pytest.mark.parametrize("name", ["xgboost", "logistic_regression"])
def test_global_importance_is_sorted_mean_abs(models, X, name):
    rows = X.iloc[:1000]
    importance = global_importance(models[name], rows)
    assert list(importance.index) != FIELDS
    assert sorted(importance.index) == sorted(FIELDS)
    assert (np.diff(importance.to_numpy()) <= 0).all()
    values = contributions(models[name], rows).values
    pd.testing.assert_series_equal(
        importance, values.abs().mean().loc[importance.index], check_names=False
    )


@pytest.mark.parametrize("top_k", [1, 3, 5])
@pytest.mark.parametrize("name", ["xgboost", "clinical_rule"])
def test_explain_cohort_matches_brute_force(models, X, name, top_k):
    rows = X.iloc[:300]
    top = explain_cohort(models[name], rows, top_k=top_k)
    assert list(top.columns) == [
        f"{kind}_{k}"
        for k in range(1, top_k + 1)
        for kind in ("factor", "contribution")
    ]
    assert top.index.equals(rows.index)
    values = contributions(models[name], rows).values
    for i in range(len(rows)):
        row = values.iloc[i]
        # By hand: a field given is its own factor, all fields not given are one
        # "not_known" factor (after the fields, for ties).
        given = [f for f in FIELDS if pd.notna(rows[f].iloc[i])]
        folded = {f: row[f] for f in given}
        folded["not_known"] = sum(row[f] for f in FIELDS if f not in given)
        ranked = sorted(folded, key=lambda f: -abs(folded[f]))[:top_k]  # stable
        for k, f in enumerate(ranked, start=1):
            factor, value = top[f"factor_{k}"].iloc[i], top[f"contribution_{k}"].iloc[i]
            assert value == pytest.approx(folded[f], abs=1e-12)
            assert factor == (f if folded[f] != 0 else None)


def test_explain_cohort_without_contribution_gives_no_factor(models, X):
    # The rule explains nothing beyond one Z-score field: factor_2 is None.
    top = explain_cohort(models["clinical_rule"], X.iloc[:100], top_k=2)
    assert top["factor_2"].isna().all() and (top["contribution_2"] == 0).all()
    assert top["factor_1"].dropna().isin(Z_FIELDS).all()


# ---------------------------------------------------------------------- plots


def test_beeswarm_shows_catalog_labels(models, X):
    fig = plot_beeswarm(models["xgboost"], X.iloc[:300], max_display=6)
    try:
        assert isinstance(fig, Figure)
        assert len(fig.axes) == 2  # the swarm and its colour bar
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert len(labels) == 6
        top = global_importance(models["xgboost"], X.iloc[:300]).index[:5]
        assert set(labels[-5:]) == {CAT[f].label for f in top}
        assert "Sum of" in labels[0]
    finally:
        plt.close(fig)


@pytest.mark.parametrize("as_series", [False, True], ids=["frame", "series"])
def test_waterfall_shows_one_patient(models, X, as_series):
    row = X.iloc[3] if as_series else X.iloc[[3]]
    fig = plot_waterfall(models["xgboost"], row, max_display=5)
    try:
        assert isinstance(fig, Figure)
        assert len(fig.axes) == 3  # bars, and the E[f(X)] and f(x) axes
        # "<value> = <label>" for the 4 largest factors (the fields given, and one
        # "not known" bar for all the others), then the rest in one bar.
        labels = {t.get_text() for t in fig.axes[0].get_yticklabels()}
        shown = {lab.split(" = ")[-1].strip() for lab in labels if " = " in lab}
        top = explain_cohort(models["xgboost"], X.iloc[[3]], top_k=4).iloc[0]
        n_missing = int(X.iloc[[3]][FIELDS].isna().sum(axis=1).iloc[0])
        names = {
            CAT[f].label if f in CAT else f"{n_missing} inputs"
            for f in (top[f"factor_{k}"] for k in range(1, 5))
        }
        assert shown == names
        n_bars = len(FIELDS) - n_missing + (1 if n_missing else 0)
        assert f"{n_bars - 4} other features" in labels
        values = {lab.split(" = ")[0].strip() for lab in labels if " = " in lab}
        assert not values & {"1.0", "0.0", "1", "0", "missing", "nan"}
    finally:
        plt.close(fig)


# --------------------------------------------------------------------- errors


def test_unfitted_model_is_refused(X):
    with pytest.raises(NotFittedError, match="not fitted"):
        contributions(make_model("xgboost"), X.iloc[:5])


def test_frame_missing_a_field_is_refused(models, X):
    with pytest.raises(ValueError, match="no column 'parity'"):
        contributions(models["xgboost"], X.iloc[:5].drop(columns=["parity"]))


def test_array_is_refused(models, X):
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        contributions(models["xgboost"], X.iloc[:5].to_numpy())


def test_not_a_plo_risk_model_is_refused(X):
    with pytest.raises(TypeError, match="PlattCalibratedClassifier"):
        contributions(object(), X.iloc[:5])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, X: contributions(m, X, by="site"), "'by' parameter"),
        (lambda m, X: explain_cohort(m, X, top_k=0), "'top_k' parameter"),
        (lambda m, X: explain_cohort(m, X, top_k=len(FIELDS) + 1), "at most"),
        (lambda m, X: plot_waterfall(m, X), "one row"),
        (lambda m, X: plot_beeswarm(m, X, max_display=0), "'max_display'"),
    ],
    ids=["by", "top_k-0", "top_k-too-many", "waterfall-rows", "max_display"],
)
def test_bad_arguments_are_refused(models, X, call, match):
    with pytest.raises((ValueError, InvalidParameterError), match=match):
        call(models["xgboost"], X.iloc[:5])


# ----------------------------------------- array path (one patient at a time)


def _assert_same_bits(a, b) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_array_equal(
        np.ascontiguousarray(a).view(np.uint64), np.ascontiguousarray(b).view(np.uint64)
    )


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: None if pd.isna(v) else v for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


@pytest.mark.parametrize("name", list(PARAMS))
def test_array_path_explains_bit_for_bit_like_frames(models, X, name):
    """The feature pipeline on numpy arrays (and a float32 matrix for xgboost)
    gives the same contributions, to the bit, as pandas frames step by step: for
    frames, and for one record as RiskModel.assess explains a patient."""
    model = models[name]
    rows = X.iloc[:400]
    fast = explainer_for(model)
    assert fast.arrays is not None
    assert fast.xgboost_arrays == (name == "xgboost")
    slow = explainer_for(model)
    slow.arrays, slow.xgboost_arrays = None, False  # the step-by-step frame path
    for by in ("field", "column"):
        v_fast, b_fast, c_fast = fast.explain(rows, by)
        v_slow, b_slow, c_slow = slow.explain(rows, by)
        assert c_fast == c_slow
        _assert_same_bits(v_fast, v_slow)
        _assert_same_bits(b_fast, b_slow)
        expl = contributions(model, rows, by=by)
        _assert_same_bits(expl.values.to_numpy(), v_fast)
    for i, record in list(enumerate(_records(rows)))[::20]:
        v_fast, b_fast, c_fast = fast.explain(record, "field")
        v_slow, b_slow, c_slow = slow.explain(rows.iloc[[i]], "field")
        assert c_fast == c_slow
        _assert_same_bits(v_fast, v_slow)
        _assert_same_bits(b_fast, b_slow)
        # additive to the model's own log-odds
        logit = model.decision_function(rows.iloc[[i]])
        assert abs(b_fast[0] + v_fast[0].sum() - logit[0]) < 1e-5


def test_xgboost_margin_of_a_frame_is_inplace_predict_to_the_bit(models, X):
    model = models["xgboost"]
    rows = X.iloc[:500]
    clf = model.estimator_[-1]
    booster = clf.get_booster()
    design = model.estimator_[:-1].transform(rows)
    expected = booster.inplace_predict(design, predict_type="margin")
    _assert_same_bits(margin(clf, design), expected)  # frame -> float32 array
    _assert_same_bits(margin(model.estimator_, rows), expected)  # whole pipeline
    _assert_same_bits(margin(clf, design.to_numpy()), expected)
    with pytest.raises(ValueError, match="feature_names mismatch|feature names"):
        margin(clf, design[design.columns[::-1]])

"""Tests of plo_risk.evaluate.survival: time-to-event metrics at a horizon.

Each metric is checked against a computation that does not share its code:
scikit-survival's own estimators called directly, brute-force loops written from
the published formulas, the binary metrics of plo_risk.evaluate when no one is
censored before the horizon, and scikit-learn's logistic regression for the
weighted calibration fits.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sksurv.metrics import brier_score, cumulative_dynamic_auc, integrated_brier_score
from sksurv.nonparametric import CensoringDistributionEstimator, kaplan_meier_estimator

from plo_risk.evaluate import metrics as binary
from plo_risk.evaluate import survival as sv
from plo_risk.model.glm import logistic_irls, rcs_design

H = 12.0


def _cohort(n, *, seed=0, censor_share=0.3, horizon=H, ties=False):
    """Exponential times to fracture with a known risk by ``horizon``; a random
    ``censor_share`` of the women censored uniformly before the horizon, the rest
    at 3 horizons (end of the study)."""
    rng = np.random.default_rng(seed)
    rate = np.exp(rng.normal(-4.5, 0.8, n))
    true_risk = 1.0 - np.exp(-horizon * rate)
    fracture = rng.exponential(1.0 / rate)
    end = np.where(
        rng.random(n) < censor_share, rng.uniform(0, horizon, n), 3 * horizon
    )
    time = np.minimum(fracture, end)
    if ties:
        time = np.ceil(time)  # whole months: many ties, some exactly at the horizon
    return time, fracture <= end, true_risk


def _surv(event, time):
    out = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    out["event"], out["time"] = event, time
    return out


def _censoring_km(time, event):
    """G(x) = P(C > x) by a loop over the distinct times (fractures first at a
    tie): the textbook reverse Kaplan-Meier, written independently."""
    time, event = np.asarray(time, float), np.asarray(event, bool)
    steps = []
    g = 1.0
    for u in np.unique(time):
        at_risk = np.sum(time >= u)
        d = np.sum((time == u) & event)
        c = np.sum((time == u) & ~event)
        if at_risk - d > 0:
            g *= 1.0 - c / (at_risk - d)
        steps.append((u, g))

    def G(x, *, left=False):
        value = 1.0
        for u, g_u in steps:
            if u < x or (u == x and not left):
                value = g_u
        return value

    return G


def _auc_brute(time, event, risk, h, G):
    """Uno's cumulative/dynamic AUC by a double loop over cases and controls."""
    num = den = 0.0
    for i in range(len(time)):
        if not (event[i] and time[i] <= h):
            continue
        w = 1.0 / G(time[i])
        for j in range(len(time)):
            if time[j] > h:
                den += w
                num += w * ((risk[j] < risk[i]) + 0.5 * (risk[j] == risk[i]))
    return num / den


def _brier_brute(time, event, risk, h, G):
    """Graf's IPCW Brier score, term by term."""
    total = 0.0
    for i in range(len(time)):
        if event[i] and time[i] <= h:
            total += (1.0 - risk[i]) ** 2 / G(time[i])
        elif time[i] > h:
            total += risk[i] ** 2 / G(h)
    return total / len(time)


def _logistic(x, y, w=None):
    """(slope, intercept) by scikit-learn, unpenalised (C=inf)."""
    fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000)
    fit.fit(x[:, None], y, sample_weight=w)
    return fit.coef_[0, 0], fit.intercept_[0]


def _small(seed=0, n=60):
    """A small cohort with tied whole-month times, tied risks and a last follow-up
    that is a lone censoring (so scikit-survival accepts it as it is)."""
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 30, n).astype(float)
    event = rng.random(n) < 0.4
    risk = rng.choice(np.linspace(0.05, 0.6, 12), n)
    time[-1], event[-1] = 40.0, False
    return time, event, risk


# ------------------------------------------------------------------ Kaplan-Meier


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("horizon", [1.0, 6.0, 11.5, 12.0, 29.0])
def test_km_risk_matches_scikit_survival(seed, horizon):
    time, event, _ = _small(seed)
    times, surv = kaplan_meier_estimator(event, time)
    expected = 1.0 - (surv[times <= horizon][-1] if (times <= horizon).any() else 1.0)
    assert sv.km_risk(time, event, horizon) == pytest.approx(expected, abs=1e-12)


def test_km_risk_weights_count_as_repeated_women():
    time, event, _ = _small(3)
    weights = np.random.default_rng(3).integers(0, 4, time.shape[0])
    weights[-1] = 1
    repeated = sv.km_risk(np.repeat(time, weights), np.repeat(event, weights), H)
    assert sv.km_risk(time, event, H, weights=weights) == pytest.approx(repeated)
    assert sv.km_risk(time, event, H, weights=2.5 * weights) == pytest.approx(repeated)


def test_km_risk_beyond_the_follow_up_only_when_the_curve_reached_zero():
    assert sv.km_risk([1, 2, 3], [1, 0, 1], horizon=10) == 1.0
    with pytest.raises(ValueError, match=r"'horizon'.*longest follow-up.*\(3 months"):
        sv.km_risk([1, 2, 3], [1, 1, 0], horizon=10)


# ------------------------------------------------------------------ scikit-survival


def test_auroc_without_censoring_before_the_horizon_is_the_ordinary_auroc():
    rng = np.random.default_rng(4)
    time, event, risk = _cohort(3_000, seed=4, censor_share=0.0)
    # Censoring only after the horizon, and coarse risks (ties).
    end = H + rng.uniform(0.5, 30, time.shape[0])
    event = event & (time <= end)
    time = np.minimum(time, end)
    risk = np.round(risk, 2)
    status = event & (time <= H)
    assert not (~event & (time <= H)).any()
    expected = binary.auroc(status, risk)
    assert sv.time_dependent_auroc(time, event, risk, H) == pytest.approx(expected)
    assert sv.brier_at(time, event, risk, H) == pytest.approx(
        binary.brier(status, risk)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("horizon", [6.0, 12.0, 20.0])
def test_auroc_and_brier_match_brute_force_and_scikit_survival(seed, horizon):
    time, event, risk = _small(seed)
    G = _censoring_km(time, event)
    auc = sv.time_dependent_auroc(time, event, risk, horizon)
    brier = sv.brier_at(time, event, risk, horizon)
    assert auc == pytest.approx(_auc_brute(time, event, risk, horizon, G), abs=1e-12)
    assert brier == pytest.approx(
        _brier_brute(time, event, risk, horizon, G), abs=1e-12
    )
    y = _surv(event, time)
    direct_auc = cumulative_dynamic_auc(y, y, risk, [horizon])[0][0]
    assert auc == pytest.approx(direct_auc, abs=1e-12)
    assert brier == pytest.approx(brier_score(y, y, 1 - risk, [horizon])[1][0])


def test_the_training_censoring_distribution_is_used():
    time, event, risk = _small(5)
    train_time, train_event, _ = _small(6, n=200)
    G = _censoring_km(train_time, train_event)
    kwargs = {"train_time": train_time, "train_event": train_event}
    auc = sv.time_dependent_auroc(time, event, risk, H, **kwargs)
    assert auc == pytest.approx(_auc_brute(time, event, risk, H, G), abs=1e-12)
    assert auc != pytest.approx(sv.time_dependent_auroc(time, event, risk, H))
    brier = sv.brier_at(time, event, risk, H, **kwargs)
    assert brier == pytest.approx(_brier_brute(time, event, risk, H, G), abs=1e-12)


def test_follow_up_past_the_training_data_is_no_error():
    # scikit-survival refuses test times beyond the training follow-up even where
    # the metric at the horizon does not use them; the metric is still defined.
    time, event, risk = _small(7)
    time[-1], event[-1] = 100.0, True
    train_time, train_event, _ = _small(8, n=200)
    train_event[-1] = True  # the training censoring curve ends above 0, at 40
    y_train, y_test = _surv(train_event, train_time), _surv(event, time)
    with pytest.raises(ValueError, match="smaller than largest observed"):
        cumulative_dynamic_auc(y_train, y_test, risk, [H])
    G = _censoring_km(train_time, train_event)
    kwargs = {"train_time": train_time, "train_event": train_event}
    assert sv.time_dependent_auroc(time, event, risk, H, **kwargs) == pytest.approx(
        _auc_brute(time, event, risk, H, G), abs=1e-12
    )
    assert sv.brier_at(time, event, risk, H, **kwargs) == pytest.approx(
        _brier_brute(time, event, risk, H, G), abs=1e-12
    )


def test_a_censoring_curve_that_reaches_zero_after_the_horizon_is_no_error():
    time, event, risk = _small(9)
    time[-2:], event[-2:] = 40.0, [True, False]  # G(40) = 0
    y = _surv(event, time)
    with pytest.raises(ValueError, match="censoring survival function is zero"):
        cumulative_dynamic_auc(y, y, risk, [H])
    G = _censoring_km(time, event)
    assert sv.time_dependent_auroc(time, event, risk, H) == pytest.approx(
        _auc_brute(time, event, risk, H, G), abs=1e-12
    )


def test_integrated_brier_is_the_trapezoid_of_the_brier_scores():
    time, event, _ = _small(10)
    grid = np.array([6.0, 9.0, 12.0, 20.0])
    rng = np.random.default_rng(10)
    risks = np.sort(rng.uniform(0, 0.7, (time.shape[0], grid.shape[0])), axis=1)
    scores = [sv.brier_at(time, event, risks[:, j], h) for j, h in enumerate(grid)]
    expected = np.sum(np.diff(grid) * (np.array(scores[1:]) + scores[:-1]) / 2) / (
        grid[-1] - grid[0]
    )
    ibs = sv.integrated_brier(time, event, risks, grid)
    assert ibs == pytest.approx(expected, abs=1e-12)
    y = _surv(event, time)
    assert ibs == pytest.approx(integrated_brier_score(y, y, 1 - risks, grid))


# ----------------------------------------------------------------- calibration


def test_calibration_without_censoring_is_the_binary_calibration():
    time, event, risk = _cohort(4_000, seed=11, censor_share=0.0)
    status = (event & (time <= H)).astype(int)
    cal = sv.horizon_calibration(time, event, risk, H)
    slope, intercept = _logistic(logit(risk), status)
    assert cal["slope"] == pytest.approx(slope, abs=1e-6)
    assert cal["intercept"] == pytest.approx(intercept, abs=1e-6)
    assert cal["observed"] == pytest.approx(status.mean())
    assert cal["expected"] == pytest.approx(risk.mean())
    assert cal["o_e"] == pytest.approx(status.mean() / risk.mean())
    assert cal["citl"] == pytest.approx(logit(status.mean()) - logit(risk.mean()))
    assert cal["ici"] == pytest.approx(binary.ici(status, risk, method="spline"))


def test_calibration_weights_are_the_inverse_probability_of_censoring():
    time, event, risk = _cohort(3_000, seed=12)
    cens = CensoringDistributionEstimator().fit(_surv(event, time))
    known = event | (time >= H)
    # Continuous times: G just before min(T, H) is G at it.
    weights = 1.0 / cens.predict_proba(np.minimum(time[known], H))
    status = (event & (time <= H))[known].astype(int)
    slope, intercept = _logistic(logit(risk[known]), status, weights)
    cal = sv.horizon_calibration(time, event, risk, H)
    assert cal["slope"] == pytest.approx(slope, abs=1e-6)
    assert cal["intercept"] == pytest.approx(intercept, abs=1e-6)


def test_tied_times_weigh_by_the_censoring_curve_just_before():
    # Whole months: fractures and censorings share times, and women are censored
    # exactly at the horizon (known fracture-free then, weight 1 / G(H-)).
    time, event, risk = _cohort(3_000, seed=19, ties=True)
    assert (~event & (time == H)).any() and (event & (time < H)).any()
    G = _censoring_km(time, event)
    known = event | (time >= H)
    weights = np.array([1 / G(min(t, H), left=True) for t in time[known]])
    status = (event & (time <= H))[known].astype(int)
    x = logit(risk)
    slope, intercept = _logistic(x[known], status, weights)
    cal = sv.horizon_calibration(time, event, risk, H)
    assert cal["slope"] == pytest.approx(slope, abs=1e-6)
    assert cal["intercept"] == pytest.approx(intercept, abs=1e-6)
    # The ICI's curve: the same weights on a restricted cubic spline of logit(risk).
    knots = np.quantile(x, [0.05, 0.35, 0.65, 0.95])
    design = rcs_design(x, knots)[:, 1:]
    fit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=100_000)
    fit.fit(design[known], status, sample_weight=weights)
    curve = fit.predict_proba(design)[:, 1]
    assert cal["ici"] == pytest.approx(np.mean(np.abs(risk - curve)), abs=1e-5)


def test_censoring_is_corrected_where_dropping_it_is_biased():
    """30% of the women censored at random before the horizon. The Kaplan-Meier
    risk and the weighted recalibration recover the simulated truth; the same
    estimates without the censored women (dropped) do not."""
    n = 50_000
    time, event, risk = _cohort(n, seed=13, censor_share=0.3)
    assert 0.25 < np.mean(~event & (time < H)) < 0.31
    truth = risk.mean()  # the women's own risks are the truth
    se = math.sqrt(truth * (1 - truth) / n)
    status = event & (time <= H)
    known = event | (time >= H)
    naive = status[known].mean()
    assert abs(sv.km_risk(time, event, H) - truth) < 3 * se
    assert naive - truth > 10 * se

    cal = sv.horizon_calibration(time, event, risk, H)
    assert abs(cal["citl"]) < 0.05
    assert abs(cal["slope"] - 1) < 0.08
    assert abs(cal["intercept"]) < 0.1
    x = logit(risk[known])
    design = np.column_stack([np.ones_like(x), x])
    beta, _, _ = logistic_irls(
        design, status[known].astype(float), np.ones_like(x), beta=np.array([0, 1.0])
    )
    assert beta[0] > 0.15  # dropped: the intercept says it under-predicts
    assert logit(naive) - logit(truth) > 0.2
    assert cal["ici"] < 0.01


def test_miscalibration_is_detected():
    time, event, risk = _cohort(20_000, seed=14)
    good = sv.horizon_calibration(time, event, risk, H)
    extreme = sv.horizon_calibration(time, event, expit(2 * logit(risk)), H)
    high = sv.horizon_calibration(time, event, expit(logit(risk) + 1), H)
    assert extreme["slope"] == pytest.approx(0.5 * good["slope"], rel=1e-6)
    assert high["o_e"] < 0.6 and high["citl"] < -0.6
    assert high["slope"] == pytest.approx(good["slope"], rel=1e-6)
    assert high["ici"] > 5 * good["ici"]


def test_a_slope_that_does_not_exist_is_nan_with_a_warning():
    time = np.array([1.0, 2.0, 20.0, 30.0])
    event = np.array([1, 1, 0, 0])
    with pytest.warns(UserWarning, match="slope does not exist"):
        cal = sv.horizon_calibration(time, event, [0.5, 0.4, 0.1, 0.2], H)
    assert math.isnan(cal["slope"]) and not math.isnan(cal["o_e"])


# ----------------------------------------------------------------- net benefit


@pytest.mark.parametrize("threshold", [0.02, 0.1, 0.3])
def test_net_benefit_without_censoring_is_the_binary_net_benefit(threshold):
    time, event, risk = _cohort(3_000, seed=15, censor_share=0.0)
    status = event & (time <= H)
    assert sv.net_benefit_at(time, event, risk, H, threshold) == pytest.approx(
        binary.net_benefit(status, risk, threshold)
    )


def test_net_benefit_with_censoring_uses_the_kaplan_meier_risk_above_threshold():
    time, event, risk = _cohort(3_000, seed=16)
    pos = risk >= 0.2
    r_pos = sv.km_risk(time[pos], event[pos], H)
    n_pos = pos.mean()
    expected = r_pos * n_pos - (1 - r_pos) * n_pos * 0.2 / 0.8
    assert sv.net_benefit_at(time, event, risk, H, 0.2) == pytest.approx(expected)
    assert sv.net_benefit_at(time, event, risk, H, 0.999) == 0.0


# ------------------------------------------------------------ several horizons


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(17)
    n = 1_500
    rate = np.exp(rng.normal(-4.5, 0.8, n))
    fracture = rng.exponential(1 / rate)
    end = rng.uniform(3, 36, n)
    time, event = np.minimum(fracture, end), fracture <= end
    risks = {h: 1 - np.exp(-h * rate * rng.lognormal(0, 0.3, n)) for h in (3, 6, 12)}
    return time, event, risks


def test_evaluate_horizons_estimates_are_the_single_metrics(cohort):
    time, event, risks = cohort
    train_time, train_event, _ = _cohort(800, seed=18)
    table = sv.evaluate_horizons(
        time, event, risks, n_boot=0, train_time=train_time, train_event=train_event
    )
    assert table.columns.tolist() == ["horizon", "metric", "estimate", "low", "high"]
    assert table.low.isna().all()
    got = table.set_index(["horizon", "metric"]).estimate
    kwargs = {"train_time": train_time, "train_event": train_event}
    for h, r in risks.items():
        cal = sv.horizon_calibration(time, event, r, h)
        expected = {
            "auroc_td": sv.time_dependent_auroc(time, event, r, h, **kwargs),
            "brier": sv.brier_at(time, event, r, h, **kwargs),
            **{k: cal[k] for k in ("observed", "expected", "citl", "slope", "ici")},
            "net_benefit@0.02": sv.net_benefit_at(time, event, r, h, 0.02),
            "net_benefit@0.1": sv.net_benefit_at(time, event, r, h, 0.10),
        }
        assert list(got.loc[float(h)].index) == list(expected)
        for metric, value in expected.items():
            assert got.loc[(h, metric)] == pytest.approx(value, abs=1e-12), metric


def test_a_replicate_resamples_the_same_women_at_every_horizon(cohort):
    time, event, risks = cohort
    table = sv.evaluate_horizons(time, event, risks, n_boot=1, seed=3)
    idx = np.random.default_rng(3).integers(0, time.shape[0], time.shape[0])
    t, e = time[idx], event[idx]
    got = table.set_index(["horizon", "metric"])
    assert (got.low == got.high).all()
    for h, r in risks.items():
        assert got.loc[(h, "auroc_td"), "low"] == pytest.approx(
            sv.time_dependent_auroc(t, e, r[idx], h)
        )
        assert got.loc[(h, "observed"), "low"] == pytest.approx(sv.km_risk(t, e, h))
        assert got.loc[(h, "slope"), "low"] == pytest.approx(
            sv.horizon_calibration(t, e, r[idx], h)["slope"]
        )


def test_intervals_are_seeded_and_cover_the_estimate(cohort):
    time, event, risks = cohort
    a = sv.evaluate_horizons(time, event, risks, n_boot=40, seed=1)
    b = sv.evaluate_horizons(time, event, risks, n_boot=40, seed=1)
    c = sv.evaluate_horizons(time, event, risks, n_boot=40, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.low, c.low)
    assert (a.low <= a.estimate).all() and (a.estimate <= a.high).all()
    wide = sv.evaluate_horizons(time, event, risks, n_boot=40, seed=1, level=0.99)
    assert (wide.high - wide.low >= a.high - a.low - 1e-12).all()
    assert a.attrs == {"level": 0.95, "n_boot": 40}


def test_a_frame_of_risk_columns_is_read_by_horizon(cohort):
    time, event, risks = cohort
    frame = pd.DataFrame({f"risk_{h}m": risks[h] for h in (12, 3, 6)})
    from_frame = sv.evaluate_horizons(time, event, frame, n_boot=0, thresholds=[0.1])
    from_dict = sv.evaluate_horizons(time, event, risks, n_boot=0, thresholds=[0.1])
    pd.testing.assert_frame_equal(from_frame, from_dict)
    assert from_frame.horizon.unique().tolist() == [3.0, 6.0, 12.0]
    named = sv.evaluate_horizons(
        time, event, {12: risks[12]}, n_boot=0, thresholds={"treat": 0.1}
    )
    assert named.metric.iloc[-1] == "net_benefit@treat"


def test_subgroups_are_the_table_of_each_level_with_small_cells_suppressed(cohort):
    time, event, risks = cohort
    n = time.shape[0]
    group = np.where(np.arange(n) < 700, "a", "b").astype(object)
    group[:3] = "tiny"  # 3 women: suppressed
    table = sv.evaluate_horizon_subgroups(
        time, event, risks, pd.DataFrame({"g": group}), n_boot=0
    )
    assert table.columns.tolist() == [
        *("group", "level", "horizon", "metric", "estimate", "low", "high"),
        *("n", "events", "suppressed"),
    ]
    assert table.level.unique().tolist() == ["a", "b", "tiny"]
    tiny = table[table.level == "tiny"]
    assert tiny.estimate.isna().all() and (tiny.n == "<5").all()
    # One small level: the next smallest is suppressed too (complementary).
    assert table[table.level == "a"].suppressed.all()
    b = table[table.level == "b"]
    assert not b.suppressed.any()
    mask = group == "b"
    alone = sv.evaluate_horizons(
        time[mask], event[mask], {h: r[mask] for h, r in risks.items()}, n_boot=0
    )
    np.testing.assert_allclose(b.estimate, alone.estimate)
    events = [int((event[mask] & (time[mask] <= h)).sum()) for h in (3, 6, 12)]
    assert b.drop_duplicates("horizon").events.tolist() == events
    assert (b.n == mask.sum()).all()

    full = sv.evaluate_horizon_subgroups(
        time, event, risks, {"g": group}, n_boot=0, min_cell=None
    )
    assert "suppressed" not in full and full.n.dtype.kind == "i"
    assert full[full.level == "a"].estimate.notna().any()


def test_a_level_without_fractures_gives_nan_not_an_error(cohort):
    time, event, risks = cohort
    group = np.where(event & (time <= 12), "fracture", "none")
    table = sv.evaluate_horizon_subgroups(
        time, event, risks, {"g": group}, n_boot=5, min_cell=None
    )
    none = table[(table.level == "none") & (table.metric == "auroc_td")]
    assert none.estimate.isna().all() and (none.events == 0).all()


# ------------------------------------------------------------------ bad input

_T, _E, _R = [1.0, 5.0, 8.0, 20.0], [1, 0, 1, 0], [0.3, 0.1, 0.2, 0.05]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sv.km_risk([-1, 2], [1, 0], H), r"'time'.*>= 0.*got -1 at index 0"),
        (lambda: sv.km_risk([1, np.nan], [1, 0], H), r"'time'.*got nan at index 1"),
        (lambda: sv.km_risk([1, 2], [1, 2], H), r"'event'.*1 \(fracture\).*got 2"),
        (lambda: sv.km_risk([1, 2], [1], H), r"'time' and 'event'.*same length"),
        (lambda: sv.km_risk([], [], H), r"'time' and 'event'.*empty"),
        (lambda: sv.km_risk(_T, _E, 0), r"'horizon'.*> 0; got 0"),
        (lambda: sv.km_risk(_T, _E, True), r"'horizon'.*got True"),
        (lambda: sv.km_risk(_T, _E, "12"), r"'horizon'.*got '12'"),
        (lambda: sv.km_risk(_T, _E, H, weights=[1, -1, 1, 1]), r"'weights'.*got -1"),
        (lambda: sv.km_risk(_T, _E, H, weights=[1, 1]), r"'weights'.*expected 4"),
        (lambda: sv.km_risk(_T, _E, H, weights=[0, 0, 0, 0]), r"'weights'.*is 0"),
        (
            lambda: sv.time_dependent_auroc(_T, _E, [0.3, 1.5, 0.2, 0.1], H),
            r"'risk'.*\[0, 1\]; got 1.5 at index 1",
        ),
        (
            lambda: sv.time_dependent_auroc(_T, _E, [0.3, 0.2], H),
            r"'risk'.*2 values; expected 4",
        ),
        (
            lambda: sv.time_dependent_auroc(_T, _E, _R, 20),
            r"'horizon'.*below the longest follow-up in 'time' \(20 months\)",
        ),
        (
            lambda: sv.brier_at(_T, _E, _R, 0.5),
            r"'event'.*no fracture by horizon=0.5",
        ),
        (
            lambda: sv.time_dependent_auroc(_T, _E, _R, H, train_time=_T),
            r"both 'train_time' and 'train_event'.*only 'train_time'",
        ),
        (
            lambda: sv.brier_at(_T, _E, _R, H, train_time=[1, 10], train_event=[1, 0]),
            r"'horizon'.*'train_time' \(10 months\)",
        ),
        (
            lambda: sv.brier_at(_T, _E, _R, H, train_time=[1, 30], train_event=[0, 0]),
            r"'train_event'.*no fracture",
        ),
        (
            lambda: sv.integrated_brier(_T, _E, np.c_[_R, _R], [12, 6]),
            r"'times'.*increasing; got \[12.0, 6.0\]",
        ),
        (
            lambda: sv.integrated_brier(_T, _E, np.c_[_R], [12]),
            r"'times'.*at least two",
        ),
        (
            lambda: sv.integrated_brier(_T, _E, np.c_[_R, _R], [0.5, 12]),
            r"'times'.*shortest follow-up in 'time' \(1 months\)",
        ),
        (
            lambda: sv.integrated_brier(_T, _E, np.c_[_R], [6, 12]),
            r"'risks'.*shape \(4, 2\).*got shape \(4, 1\)",
        ),
        (
            lambda: sv.net_benefit_at(_T, _E, _R, H, 1.0),
            r"'threshold'.*\(0, 1\); got 1",
        ),
        (
            lambda: sv.net_benefit_at([2, 3, 20], [0, 0, 1], [0.5, 0.5, 0.1], H, 0.4),
            r"'risk' >= threshold=0.4 are all censored before horizon=12",
        ),
        (
            lambda: sv.horizon_calibration(_T, [0, 0, 0, 0], _R, H),
            r"'event'.*no fracture by horizon=12",
        ),
        (
            lambda: sv.evaluate_horizons(_T, _E, {"risk_twelve": _R}),
            r"'risks'.*'risk_12m'; got 'risk_twelve'",
        ),
        (
            lambda: sv.evaluate_horizons(_T, _E, {12: _R, "risk_12m": _R}),
            r"'risks'.*horizon twice",
        ),
        (lambda: sv.evaluate_horizons(_T, _E, [_R]), r"'risks'.*dict.*got list"),
        (lambda: sv.evaluate_horizons(_T, _E, {-3: _R}), r"'risks\[-3\]'.*> 0"),
        (lambda: sv.evaluate_horizons(_T, _E, {12: _R}, n_boot=-1), r"'n_boot'"),
        (lambda: sv.evaluate_horizons(_T, _E, {12: _R}, level=95), r"'level'.*95"),
        (lambda: sv.evaluate_horizons(_T, _E, {12: _R}, seed=-1), r"'seed'"),
        (
            lambda: sv.evaluate_horizons(_T, _E, {12: _R}, thresholds=[1.5]),
            r"'thresholds\[0\]'.*\(0, 1\); got 1.5",
        ),
        (
            lambda: sv.evaluate_horizons(_T, _E, {25: _R}),
            r"'horizon'.*below the longest follow-up",
        ),
        (
            lambda: sv.evaluate_horizon_subgroups(_T, _E, {12: _R}, {"g": [1, 2]}),
            r"'groups' variable 'g' has 2 values; expected 4, one per row of 'time'",
        ),
        (
            lambda: sv.evaluate_horizon_subgroups(_T, _E, {12: _R}, {}, min_cell=0),
            r"'min_cell'.*>= 1.*got 0",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ properties


@st.composite
def _follow_up(draw, min_size=2):
    n = draw(st.integers(min_value=min_size, max_value=30))
    # A coarse grid of months gives ties between fractures and censorings.
    month = st.one_of(
        st.sampled_from([0.0, 1.0, 2.0, 3.0, 6.0, 12.0]), st.floats(0.0, 40.0)
    )
    time = np.array(draw(st.lists(month, min_size=n, max_size=n)))
    event = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return time, event


@settings(max_examples=150, deadline=None)
@given(_follow_up(), st.floats(0.01, 40.0))
def test_km_risk_is_scikit_survivals_and_a_probability(data, horizon):
    time, event = data
    assume(time.max() > 0)
    horizon = min(horizon, time.max())
    risk = sv.km_risk(time, event, horizon)
    assert 0.0 <= risk <= 1.0
    times, surv = kaplan_meier_estimator(event, time) if event.any() else ([], [])
    before = np.flatnonzero(np.asarray(times) <= horizon)
    expected = 1.0 - (surv[before[-1]] if before.size else 1.0)
    assert risk == pytest.approx(expected, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(_follow_up(), st.lists(st.floats(0.01, 40.0), min_size=2, max_size=5))
def test_km_risk_does_not_fall_as_the_horizon_grows(data, horizons):
    time, event = data
    assume(time.max() > 0)
    hs = sorted(min(h, time.max()) for h in horizons)
    risks = [sv.km_risk(time, event, h) for h in hs]
    assert all(a <= b + 1e-15 for a, b in zip(risks, risks[1:], strict=False))


@settings(max_examples=100, deadline=None)
@given(
    _follow_up(min_size=4),
    st.data(),
    st.sampled_from([np.sqrt, np.square, lambda r: expit(3 * logit(r)), np.exp]),
)
def test_auroc_is_invariant_to_monotone_transforms_of_risk(data, draw, transform):
    time, event = data
    h = 6.0
    assume((event & (time <= h)).any() and (time > h).any())
    grid = st.sampled_from(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())
    risk = np.array(draw.draw(st.lists(grid, min_size=time.size, max_size=time.size)))
    moved = transform(risk)
    moved = moved / moved.max() if moved.max() > 1 else moved
    auc = sv.time_dependent_auroc(time, event, risk, h)
    assert 0.0 <= auc <= 1.0
    assert sv.time_dependent_auroc(time, event, moved, h) == pytest.approx(auc)
    assert sv.time_dependent_auroc(time, event, 1 - risk, h) == pytest.approx(1 - auc)

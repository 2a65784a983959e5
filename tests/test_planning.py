"""Tests of plo_risk.planning: Riley et al.'s minimum sample size.

Expected numbers come from the pmsampsize R package (Ensor, Martin, Riley; CRAN,
version 1.1.3), its testthat suite (tests/testthat/test_bin.R, test_surv.R) and
documentation, which reproduce the worked examples of Riley et al., BMJ
2020;368:m441 (doi:10.1136/bmj.m441) and Riley et al., Stat Med 2019;38:1276-1296
(doi:10.1002/sim.7992).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plo_risk.planning import (
    PlanningError,
    cox_snell_from_c_statistic,
    sample_size,
)


@pytest.mark.parametrize(
    ("r2", "parameters", "prevalence", "ns", "epp"),
    [
        pytest.param(0.288, 24, 0.174, (623, 662, 221, 662), 4.80, id="bmj-binary"),
        pytest.param(0.55, 24, 0.174, (255, 532, 221, 532), 3.86, id="r2-0.55"),
        pytest.param(0.288, 36, 0.174, (934, 992, 221, 992), 4.79, id="36-params"),
        pytest.param(0.288, 24, 0.25, (623, 590, 289, 623), 6.49, id="prev-0.25"),
    ],
)
def test_binary_reproduces_pmsampsize(r2, parameters, prevalence, ns, epp):
    """pmsampsize testthat Tests 4.1-4.4; 4.1 is the binary worked example of
    Riley et al. BMJ 2020 (doi:10.1136/bmj.m441): R2_CS 0.288, 24 parameters,
    prevalence 0.174 -> N=662, 115.2 events (4.80 per parameter)."""
    result = sample_size(parameters=parameters, prevalence=prevalence, r2=r2)
    assert tuple(c[1] for c in result.criteria) + (result.n,) == ns
    assert result.events_per_parameter == pytest.approx(epp)
    assert result.events == math.ceil(ns[-1] * prevalence)


def test_binary_example_details():
    """Riley et al. BMJ 2020 (doi:10.1136/bmj.m441), binary example: max R2_CS
    0.603, Nagelkerke 0.477, criterion 2's shrinkage 0.905, 116 events rounded up."""
    result = sample_size(parameters=24, prevalence=0.174, r2=0.288)
    assert round(result.max_r2, 3) == 0.603
    assert round(result.r2_nagelkerke, 3) == 0.477
    assert round(result.shrinkage, 3) == 0.905
    assert result.events == 116
    assert result.binding == "criterion 2"
    assert "662" in str(result)


@pytest.mark.parametrize(
    ("r2", "parameters", "rate", "ns", "epp"),
    [
        pytest.param(0.051, 25, 0.065, (4286, 866, 4286, 4286), 23.07, id="25-params"),
        pytest.param(0.065, 25, 0.065, (3335, 859, 3335, 3335), 17.95, id="r2-0.065"),
        pytest.param(0.051, 50, 0.065, (8572, 1731, 8572, 8572), 23.07, id="50-params"),
        pytest.param(0.051, 25, 0.1, (4286, 731, 4286, 4286), 35.49, id="rate-0.1"),
        pytest.param(0.051, 30, 0.065, (5143, 1039, 5143, 5143), 23.07, id="bmj-30"),
    ],
)
def test_survival_reproduces_pmsampsize(r2, parameters, rate, ns, epp):
    """pmsampsize testthat Tests 3.1-3.4 (timepoint 2, mean follow-up 2.07), and
    the time-to-event example of Riley et al. BMJ 2020 (doi:10.1136/bmj.m441) /
    the pmsampsize help page: R2_CS 0.051, 30 parameters, rate 0.065 -> N=5143,
    691.7 events (23.07 per parameter)."""
    result = sample_size(
        parameters=parameters, r2=r2, rate=rate, timepoint=2, mean_follow_up=2.07
    )
    assert tuple(c[1] for c in result.criteria) + (result.n,) == ns
    assert result.events_per_parameter == pytest.approx(epp)


def test_survival_example_events():
    """Riley et al. BMJ 2020 (doi:10.1136/bmj.m441): 5143 x 0.065 x 2.07 = 691.99
    events, reported rounded up as 692; max R2_CS 0.555."""
    result = sample_size(
        parameters=30, r2=0.051, rate=0.065, timepoint=2, mean_follow_up=2.07
    )
    assert result.events == 692
    assert round(result.max_r2, 3) == 0.555


def test_c_statistic_matches_large_simulation():
    """pmsampsize's cstat2rsq (Riley, Van Calster, Collins Stat Med 2021;
    doi:10.1002/sim.9025) simulates 1e6 patients with R's seed 123456; our
    quadrature is that simulation's limit. Two numpy simulations of 2e6 patients
    gave 0.2910 and 0.2906 for C=0.89, prevalence 0.174 (the pmsampsize help
    page example, which prints no expected output). Like pmsampsize we round the
    R2 to four decimals before the criteria."""
    assert cox_snell_from_c_statistic(0.89, 0.174) == pytest.approx(0.2908, abs=0.001)
    result = sample_size(parameters=24, prevalence=0.174, c_statistic=0.89)
    assert result.r2_cox_snell == 0.291
    assert [c[1] for c in result.criteria] == [615, 660, 221]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"prevalence": 1.2, "r2": 0.1}, r"prevalence=1\.2", id="prev"),
        pytest.param({"prevalence": 0.1}, r"r2=None and c_statistic", id="no-r2"),
        pytest.param(
            {"prevalence": 0.1, "c_statistic": 0.4}, r"c_statistic=0\.4", id="c"
        ),
        pytest.param({"prevalence": 0.1, "r2": 0.95}, r"shrinkage=0\.9", id="shrink"),
        pytest.param({"prevalence": 0.01, "r2": 0.2}, r"maximum Cox-Snell", id="max"),
        pytest.param(
            {"r2": 0.05, "rate": -1, "timepoint": 2, "mean_follow_up": 2},
            r"rate=-1",
            id="rate",
        ),
        pytest.param({"r2": 0.05}, r"prevalence=None", id="nothing"),
    ],
)
def test_invalid_inputs_name_the_field(kwargs, match):
    with pytest.raises(PlanningError, match=match):
        sample_size(parameters=10, **kwargs)


def test_invalid_parameters():
    with pytest.raises(PlanningError, match=r"parameters=0"):
        sample_size(parameters=0, prevalence=0.1, r2=0.1)
    with pytest.raises(ValueError, match=r"parameters=2\.5"):
        sample_size(parameters=2.5, prevalence=0.1, r2=0.1)


@settings(max_examples=40, deadline=None)
@given(
    p=st.integers(1, 100),
    prevalence=st.floats(0.05, 0.5),
    r2=st.floats(0.01, 0.2),
)
def test_n_monotone_in_parameters(p, prevalence, r2):
    a = sample_size(parameters=p, prevalence=prevalence, r2=r2)
    b = sample_size(parameters=p + 1, prevalence=prevalence, r2=r2)
    assert b.n >= a.n
    assert a.n == max(c[1] for c in a.criteria)


@settings(max_examples=40, deadline=None)
@given(prevalence=st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0)))
def test_invalid_prevalence_raises(prevalence):
    with pytest.raises(PlanningError, match="prevalence="):
        sample_size(parameters=5, prevalence=prevalence, r2=0.05)


def test_simulation_check_reports_a_share():
    """Tiny run: two repetitions on a small validation cohort, to keep it fast."""
    from plo_risk.planning import simulation_check

    check = simulation_check(400, repetitions=2, validation_n=1000, seed=1)
    assert check.repetitions == len(check.slopes) == 2
    assert 0.0 <= check.share_slope_ok <= 1.0
    assert "calibration slope" in str(check)


def test_simulation_check_rejects_bad_n():
    from plo_risk.planning import simulation_check

    with pytest.raises(PlanningError, match=r"repetitions=0"):
        simulation_check(100, repetitions=0)


def test_survival_cumulative_incidence_precision():
    """Criterion 3 of Riley et al. BMJ 2020 (doi:10.1136/bmj.m441), computed as
    pmsampsize_surv.R does: 1 - exp(-0.065 x 2) = 0.122 at N=5143, with the CI
    from the rate's standard error over 5143 x 2.07 person-years."""
    result = sample_size(
        parameters=30, r2=0.051, rate=0.065, timepoint=2, mean_follow_up=2.07
    )
    est, lo, hi = result.cumulative_incidence
    assert round(est, 3) == 0.122
    assert (round(lo, 3), round(hi, 3)) == (0.113, 0.130)
    assert "Cumulative incidence" in str(result)

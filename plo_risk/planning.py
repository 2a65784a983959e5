"""How many patients a development cohort needs: the criteria of Riley et al.

Binary outcomes follow Riley et al., Stat Med 2019;38:1276-1296 (doi:10.1002/sim.7992)
and time-to-event outcomes Riley et al., BMJ 2020;368:m441 (doi:10.1136/bmj.m441),
computed as the pmsampsize R package (version 1.1.3) computes them, so that its
published examples are reproduced to the patient.

An anticipated C statistic is turned into a Cox-Snell R2 as in Riley, Van Calster
and Collins, Stat Med 2021;40:4230-4251 (doi:10.1002/sim.9025): the linear predictor
is normal with unit variance in each outcome group, the means ``sqrt(2) * Phi^-1(C)``
apart, and a logistic model is fitted to it. pmsampsize draws one million patients
with R's seed 123456; here the same large-sample limit is computed by quadrature,
which is deterministic and agrees with the simulation to about 0.001.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from plo_risk.data.synthetic import ORACLE_COLUMN, OUTCOME_COLUMN, generate_cohort
from plo_risk.evaluate.metrics import calibration_slope_intercept
from plo_risk.model.features import build_pipeline

__all__ = [
    "PlanningError",
    "SampleSize",
    "cox_snell_from_c_statistic",
    "SimulationCheck",
    "sample_size",
    "simulation_check",
]

_Z = 1.96  # two-sided 95% normal quantile, as pmsampsize uses it
_MARGIN = 0.05  # criterion 3: margin of error of the overall risk
_NAGELKERKE_GAP = 0.05  # criterion 2: allowed optimism in Nagelkerke's R2
_NOMINAL_N = 10000  # pmsampsize's nominal study size for the survival max R2


class PlanningError(ValueError):
    """A sample-size input is missing, out of range or inconsistent."""


def _check_open_unit(name: str, value, what: str) -> float:
    if value is None or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise PlanningError(
            f"{name}={value!r}: must be a number strictly between 0 and 1 ({what})"
        )
    return float(value)


def _check_positive(name: str, value, what: str) -> float:
    if value is None or not isinstance(value, (int, float)) or not value > 0:
        raise PlanningError(f"{name}={value!r}: must be a number above 0 ({what})")
    if not math.isfinite(value):
        raise PlanningError(f"{name}={value!r}: must be finite ({what})")
    return float(value)


def cox_snell_from_c_statistic(c_statistic: float, prevalence: float) -> float:
    """Anticipated Cox-Snell R2 of a logistic model with a given C statistic.

    Parameters
    ----------
    c_statistic : float
        Anticipated C statistic (AUROC), strictly between 0.5 and 1.
    prevalence : float
        Outcome proportion, strictly between 0 and 1.

    Returns
    -------
    float
        The large-sample Cox-Snell R2 (Riley, Van Calster, Collins 2021).

    Raises
    ------
    PlanningError
        If an input is out of range.

    Examples
    --------
    >>> round(cox_snell_from_c_statistic(0.8, 0.05), 3)
    0.062
    """
    prevalence = _check_open_unit("prevalence", prevalence, "the outcome proportion")
    if not isinstance(c_statistic, (int, float)) or not 0.5 < c_statistic < 1:
        raise PlanningError(
            f"c_statistic={c_statistic!r}: must be strictly between 0.5 and 1 "
            "(the anticipated AUROC of the model)"
        )
    mu = math.sqrt(2.0) * stats.norm.ppf(c_statistic)
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / weights.sum()
    # Events have LP ~ N(mu, 1), non-events N(0, 1). pmsampsize labels the groups
    # the other way round; the R2 is symmetric in the labels, so it does not matter.
    x0, x1 = nodes, nodes + mu
    p1 = prevalence

    def nll(beta):
        a, b = beta
        l1 = -np.logaddexp(0.0, -(a + b * x1))
        l0 = -np.logaddexp(0.0, a + b * x0)
        return -(p1 * weights @ l1 + (1 - p1) * weights @ l0)

    fit = optimize.minimize(nll, x0=[0.0, 1.0], method="BFGS", options={"gtol": 1e-12})
    loglik_null = p1 * math.log(p1) + (1 - p1) * math.log(1 - p1)
    lr_per_patient = 2.0 * (-fit.fun - loglik_null)
    return float(1.0 - math.exp(-lr_per_patient))


@dataclass(frozen=True)
class SampleSize:
    """The minimum sample size and what each criterion asks for.

    Attributes
    ----------
    outcome : {"binary", "survival"}
    criteria : tuple of (str, int, float)
        Per criterion: its description, the N it needs and the shrinkage it targets
        (``nan`` for the criterion on the overall risk).
    n : int
        The minimum sample size, the largest of the criteria's.
    binding : str
        The criterion that sets ``n``.
    events : int
        Expected events at ``n``, rounded up as pmsampsize rounds them.
    events_per_parameter : float
        ``n`` times the event share (or rate times follow-up), per parameter, to
        two decimals.
    parameters : int
    r2_cox_snell, max_r2, r2_nagelkerke : float
    shrinkage : float
        The shrinkage the final N achieves (the larger of criteria 1 and 2).
    cumulative_incidence : tuple of float or None
        Survival: the cumulative incidence at the timepoint with its 95% CI at
        criterion 3's N (estimate, lower, upper), as pmsampsize reports it.
    """

    outcome: str
    criteria: tuple[tuple[str, int, float], ...]
    n: int
    binding: str
    events: int
    events_per_parameter: float
    parameters: int
    r2_cox_snell: float
    max_r2: float
    r2_nagelkerke: float
    shrinkage: float
    cumulative_incidence: tuple[float, float, float] | None = None

    def __str__(self) -> str:
        lines = [
            f"Minimum sample size ({self.outcome} outcome, {self.parameters} "
            f"parameters, R2_CS={self.r2_cox_snell:.4g}, max R2={self.max_r2:.3f}, "
            f"Nagelkerke R2={self.r2_nagelkerke:.3f})",
            f"{'Criterion':<52}{'N':>8}{'Shrinkage':>11}",
        ]
        for name, n, s in self.criteria:
            shrink = "" if math.isnan(s) else f"{s:.3f}"
            lines.append(f"{name:<52}{n:>8}{shrink:>11}")
        lines.append(
            f"{'Final (' + self.binding + ')':<52}{self.n:>8}{self.shrinkage:>11.3f}"
        )
        if self.cumulative_incidence is not None:
            est, lo, hi = self.cumulative_incidence
            lines.append(
                f"Cumulative incidence at the timepoint: {est:.3f} "
                f"(95% CI {lo:.3f} to {hi:.3f})"
            )
        lines.append(
            f"Events: {self.events}; events per parameter: "
            f"{self.events_per_parameter:.2f}"
        )
        return "\n".join(lines)


def _n_for_shrinkage(parameters: int, r2: float, shrinkage: float) -> int:
    # Riley 2019 equation 11 (BMJ 2020 box, criterion i).
    return math.ceil(parameters / ((shrinkage - 1) * math.log(1 - r2 / shrinkage)))


def sample_size(
    *,
    parameters: int,
    prevalence: float | None = None,
    c_statistic: float | None = None,
    r2: float | None = None,
    shrinkage: float = 0.9,
    rate: float | None = None,
    timepoint: float | None = None,
    mean_follow_up: float | None = None,
) -> SampleSize:
    """Minimum sample size to develop a prediction model (Riley et al.).

    Give ``prevalence`` for a binary outcome, or ``rate``, ``timepoint`` and
    ``mean_follow_up`` for a time-to-event outcome. The anticipated Cox-Snell R2 is
    ``r2``, or for a binary outcome derived from ``c_statistic``.

    Parameters
    ----------
    parameters : int
        Candidate predictor parameters (degrees of freedom), at least 1.
    prevalence : float, default=None
        Binary outcome: the anticipated outcome proportion, in (0, 1).
    c_statistic : float, default=None
        Binary outcome: the anticipated C statistic, in (0.5, 1), when ``r2`` is
        not known.
    r2 : float, default=None
        The anticipated Cox-Snell R2, in (0, 1).
    shrinkage : float, default=0.9
        Criterion 1's target global shrinkage factor, in (0, 1).
    rate : float, default=None
        Survival: the overall event rate per time unit, above 0.
    timepoint : float, default=None
        Survival: the time at which the cumulative incidence is to be estimated.
    mean_follow_up : float, default=None
        Survival: the anticipated mean follow-up, in the time unit of ``rate``.

    Returns
    -------
    SampleSize

    Raises
    ------
    PlanningError
        If an input is missing, out of range or the R2 cannot be reached.

    Examples
    --------
    >>> sample_size(parameters=24, prevalence=0.174, r2=0.288).n
    662
    """
    if isinstance(parameters, bool) or not isinstance(parameters, (int, np.integer)):
        raise PlanningError(
            f"parameters={parameters!r}: must be a whole number of at least 1 "
            "(candidate predictor parameters)"
        )
    if parameters < 1:
        raise PlanningError(
            f"parameters={parameters!r}: must be at least 1 "
            "(candidate predictor parameters)"
        )
    parameters = int(parameters)
    shrinkage = _check_open_unit("shrinkage", shrinkage, "the target shrinkage factor")
    survival = [rate, timepoint, mean_follow_up]
    if any(v is not None for v in survival):
        if prevalence is not None or c_statistic is not None:
            raise PlanningError(
                "prevalence/c_statistic and rate/timepoint/mean_follow_up: give the "
                "first for a binary outcome or the second for a time-to-event one, "
                "not both"
            )
        rate = _check_positive("rate", rate, "events per person per time unit")
        timepoint = _check_positive("timepoint", timepoint, "time of the risk")
        mean_follow_up = _check_positive(
            "mean_follow_up", mean_follow_up, "mean follow-up in the rate's time unit"
        )
        if r2 is None:
            raise PlanningError(
                "r2=None: a time-to-event outcome needs the anticipated Cox-Snell R2"
            )
    elif prevalence is None:
        raise PlanningError(
            "prevalence=None: give the outcome proportion (binary outcome) or rate, "
            "timepoint and mean_follow_up (time-to-event outcome)"
        )
    else:
        prevalence = _check_open_unit("prevalence", prevalence, "outcome proportion")
        if r2 is None and c_statistic is None:
            raise PlanningError(
                "r2=None and c_statistic=None: give the anticipated Cox-Snell R2 or "
                "the anticipated C statistic"
            )
        if r2 is not None and c_statistic is not None:
            raise PlanningError(
                f"r2={r2!r} and c_statistic={c_statistic!r}: give one of them, not both"
            )
        if r2 is None:
            # pmsampsize rounds its approximation to four decimals before use.
            r2 = round(cox_snell_from_c_statistic(c_statistic, prevalence), 4)
    r2 = _check_open_unit("r2", r2, "the anticipated Cox-Snell R2")
    if shrinkage <= r2:
        raise PlanningError(
            f"shrinkage={shrinkage!r}: must be above r2={r2!r} "
            "(criterion 1 has no solution otherwise)"
        )

    n1 = _n_for_shrinkage(parameters, r2, shrinkage)
    if prevalence is not None:
        outcome = "binary"
        share = prevalence
        # Max R2 at criterion 1's N with E1 = n1 * prevalence (Riley 2019 eq. 23).
        e1 = n1 * prevalence
        lnl_null = e1 * math.log(e1 / n1) + (n1 - e1) * math.log(1 - e1 / n1)
        max_r2 = 1 - math.exp(2 * lnl_null / n1)
    else:
        outcome = "survival"
        share = rate * mean_follow_up
        events = math.ceil(rate * mean_follow_up * _NOMINAL_N)
        lnl_null = events * math.log(events / _NOMINAL_N) - events
        max_r2 = 1 - math.exp(2 * lnl_null / _NOMINAL_N)
    if max_r2 < r2:
        raise PlanningError(
            f"r2={r2!r}: must not exceed the maximum Cox-Snell R2 of {max_r2:.4f} "
            "for this outcome (Riley et al. 2019, equation 23)"
        )
    s2 = r2 / (r2 + _NAGELKERKE_GAP * max_r2)
    n2 = _n_for_shrinkage(parameters, r2, s2)

    criteria = [
        ("1: global shrinkage factor", n1, shrinkage),
        (f"2: optimism in Nagelkerke R2 <= {_NAGELKERKE_GAP}", n2, s2),
    ]
    if outcome == "binary":
        n3 = math.ceil((_Z / _MARGIN) ** 2 * prevalence * (1 - prevalence))
        criteria.append((f"3: overall risk within +/-{_MARGIN}", n3, math.nan))
    else:
        # pmsampsize reports the precision of the cumulative incidence at max(n1, n2)
        # and takes that N for criterion 3.
        n3 = max(n1, n2)
        criteria.append(("3: cumulative incidence at the timepoint", n3, math.nan))
        person_time = round(mean_follow_up * n3, 1)
        half = _Z * math.sqrt(rate / person_time)
        cumulative = (
            1 - math.exp(-rate * timepoint),
            1 - math.exp(-(rate - half) * timepoint),
            1 - math.exp(-(rate + half) * timepoint),
        )
    n = max(c[1] for c in criteria)
    binding = next(c[0] for c in criteria if c[1] == n).split(":")[0]
    expected = n * share
    return SampleSize(
        outcome=outcome,
        criteria=tuple(criteria),
        n=n,
        binding=f"criterion {binding}",
        events=math.ceil(round(expected, 9)),
        events_per_parameter=round(expected / parameters, 2),
        parameters=parameters,
        r2_cox_snell=float(r2),
        max_r2=float(max_r2),
        r2_nagelkerke=float(r2 / max_r2),
        shrinkage=max(shrinkage, s2),
        cumulative_incidence=cumulative if outcome == "survival" else None,
    )


@dataclass(frozen=True)
class SimulationCheck:
    """How often a model developed on ``n`` patients is well calibrated.

    Attributes
    ----------
    n : int
        Development cohort size.
    repetitions : int
    slopes : tuple of float
        Calibration slope of each repetition on the independent validation cohort.
    share_slope_ok : float
        Share of repetitions with calibration slope >= ``threshold``.
    threshold : float
    parameters : int
        Columns of the model fitted (the feature pipeline's output): compare it
        with the ``parameters`` the plan assumed.
    """

    n: int
    repetitions: int
    slopes: tuple[float, ...]
    share_slope_ok: float
    threshold: float
    parameters: int = 0

    def __str__(self) -> str:
        return (
            f"{self.share_slope_ok:.0%} of {self.repetitions} development cohorts "
            f"of {self.n} had calibration slope >= {self.threshold} "
            f"(median {np.nanmedian(self.slopes):.2f}; unpenalised logistic "
            f"regression on the feature pipeline, {self.parameters} parameters)"
        )


def simulation_check(
    n: int,
    *,
    repetitions: int = 100,
    setting: str = "referral",
    prevalence: float | None = None,
    validation_n: int = 50_000,
    threshold: float = 0.9,
    seed: int = 0,
) -> SimulationCheck:
    """Check a planned N on the synthetic generator.

    Draws ``repetitions`` development cohorts of ``n`` from
    :func:`~plo_risk.data.synthetic.generate_cohort`, fits an unpenalised logistic
    regression on the package's feature pipeline (imputed) to each, and measures
    its calibration slope on one large independent cohort.

    Parameters
    ----------
    n : int
        Development cohort size, e.g. ``sample_size(...).n``.
    repetitions : int, default=100
    setting : {"population", "referral"}, default="referral"
    prevalence : float, default=None
        Outcome prevalence of the generator (its default when None).
    validation_n : int, default=50_000
    threshold : float, default=0.9
    seed : int, default=0

    Returns
    -------
    SimulationCheck

    Raises
    ------
    PlanningError
        If ``n``, ``repetitions`` or ``validation_n`` is not a positive integer.
    """
    for name, value in [("n", n), ("repetitions", repetitions)]:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise PlanningError(f"{name}={value!r}: must be a whole number >= 1")
        if value < 1:
            raise PlanningError(f"{name}={value!r}: must be a whole number >= 1")
    if not isinstance(validation_n, (int, np.integer)) or validation_n < 100:
        raise PlanningError(
            f"validation_n={validation_n!r}: must be a whole number >= 100"
        )
    common = {"setting": setting, "prevalence": prevalence, "outcomes": "binary"}
    valid = generate_cohort(validation_n, seed=seed, **common)
    y_valid = valid[OUTCOME_COLUMN].to_numpy(dtype=np.float64)
    slopes = []
    parameters = 0
    for rep in range(repetitions):
        dev = generate_cohort(n, seed=seed + 1 + rep, **common)
        y = dev[OUTCOME_COLUMN].to_numpy()
        if y.min() == y.max():  # no events: no model; counts as a failure
            slopes.append(math.nan)
            continue
        model = make_pipeline(
            build_pipeline(impute=True),
            StandardScaler(),
            LogisticRegression(C=np.inf, max_iter=2000),
        )
        model.fit(dev.drop(columns=[OUTCOME_COLUMN, ORACLE_COLUMN]), y)
        parameters = int(model[-1].coef_.shape[1])
        p = model.predict_proba(valid.drop(columns=[OUTCOME_COLUMN, ORACLE_COLUMN]))[
            :, 1
        ]
        slopes.append(calibration_slope_intercept(y_valid, p)[0])
    ok = np.array([s >= threshold for s in slopes])
    return SimulationCheck(
        n=int(n),
        repetitions=int(repetitions),
        slopes=tuple(slopes),
        share_slope_ok=float(ok.mean()),
        threshold=threshold,
        parameters=parameters,
    )

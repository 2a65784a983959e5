"""Risk over the months ahead: a discrete-time hazard model, calibrated per horizon.

The prognostic question is "how likely is a first fracture within ``h`` months
after the assessment?", for any ``h`` to the end of the window (18 months
postpartum). :class:`HazardModel` answers it for every horizon at once:

1. **Person-month rows.** Each woman contributes one row per month she is followed
   after the assessment (month ``k`` covers ``k`` to ``k + 1`` months after it; the
   last, partial month of the window keeps its length), until her first fracture
   (the row of that month has ``y = 1``) or the end of her follow-up. A woman who
   leaves follow-up early (censored) contributes the months she was seen and no
   more: censoring is handled by the likelihood, not by dropping her
   (Singer & Willett, J Educ Stat 1993;18:155-195; Tutz & Schmid, *Modeling
   Discrete Time-to-Event Data*, Springer 2016, ch. 3).
2. **What changes month by month.** Beside the catalog's feature pipeline (the
   record at the assessment), each row carries :data:`TIME_COLUMNS`: the months
   since the assessment and postpartum, whether she breastfeeds in that month (her
   plan says until when), the months breastfed since the assessment, the months
   since weaning, her 25(OH)D while breastfeeding and her calcium intake after
   weaning. The record is the past; these columns are the course ahead, which is
   what an intervention from now on changes (:meth:`HazardModel.risk` with
   ``changes``, and :mod:`plo_risk.data.catalog`'s ``intervention`` entries).
3. **The hazard learner** is xgboost with the catalog's monotone constraints
   (the champion) or a penalised logistic regression (the comparator). The risk by
   ``h`` is ``1 - prod_k (1 - hazard_k)`` over the months before ``h``.
4. **Calibration per horizon.** The cumulative risks are recalibrated per horizon by
   a logistic fit of the outcome by ``h`` on their log-odds (Platt), fitted on
   out-of-fold risks with inverse-probability-of-censoring weights, and stored
   with the model (``calibration_``: intercept and slope per horizon).

Every horizon comes from one hazard prediction per month, so asking for three
horizons costs what asking for the longest one costs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits
from xgboost import Booster, DMatrix, XGBClassifier

from plo_risk.data.catalog import Catalog, load_catalog
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort, oracle_risk
from plo_risk.model.families import XGBoostFamily
from plo_risk.model.features import (
    ArrayPipeline,
    build_pipeline,
    monotone_constraints,
)
from plo_risk.model.glm import logistic_irls, one_blas_thread

__all__ = [
    "COURSE_CHANGES",
    "DEFAULT_HORIZONS",
    "END",
    "FOLLOW_UP_COLUMN",
    "HAZARD_FAMILIES",
    "INTERVAL_LEVEL",
    "TIME_COLUMNS",
    "WINDOW_END",
    "INTERVENTIONS",
    "HazardModel",
    "SimulatedInterval",
    "course_of",
    "follow_up",
    "horizon_label",
    "intervention_support",
    "missing_group",
    "parse_horizon",
    "person_months",
]

#: The end of the window, months postpartum: horizons never reach past it.
WINDOW_END = 18.0
#: The horizon "to the end of the window" (18 months postpartum).
END = "end"
#: The horizons reported by default: 3, 6 and 12 months after the assessment and
#: to the end of the window.
DEFAULT_HORIZONS: tuple[float | str, ...] = (3.0, 6.0, 12.0, END)
#: The hazard learners.
HAZARD_FAMILIES = ("xgboost", "logistic_regression")
#: Columns of a person-month row beside the record's features: the course ahead.
TIME_COLUMNS = (
    "hz_months_after",
    "hz_months_postpartum",
    "hz_interval_length",
    "hz_breastfeeding",
    "hz_months_breastfed_since",
    "hz_months_since_weaning",
    "hz_vitamin_d",
    "hz_calcium",
    "hz_smoking",
)
# The longest follow-up after an assessment: from the start of the third trimester.
_MAX_MONTHS = 21
# The time columns the trees read (the course ahead is the course terms').
_TREE_TIME = TIME_COLUMNS[:3]
# The champion's tree settings (model.families), with twice the trees: a hazard
# learns from person-months, ten times the rows of the binary model.
_XGB_DEFAULTS = {
    **{
        k: v
        for k, v in XGBoostFamily.default_params.items()
        if k not in ("monotone", "n_jobs")
    },
    "n_estimators": 300,
}
# The course ahead: monotone where biology says so (breastfeeding on removes bone,
# a deficient woman loses more while she does, calcium helps recovery after it).
_TIME_SIGNS = {
    "hz_breastfeeding": 1,
    "hz_months_breastfed_since": 1,
    "hz_months_since_weaning": -1,
    "hz_vitamin_d": -1,
    "hz_calcium": -1,
    "hz_smoking": 1,
}


def horizon_label(h: float | str) -> str:
    """``"3m"``, ``"12m"``, ``"end"``: a horizon as it names a column."""
    if h == END:
        return END
    v = float(h)
    return f"{int(v)}m" if v.is_integer() else f"{v:g}m"


def parse_horizon(h: Any) -> float | str:
    """A horizon from user input: months after the assessment (in (0, 21]) or
    ``"end"`` (to 18 months postpartum); ``"6m"`` and ``"6"`` mean 6.

    Raises
    ------
    ValueError
        Naming the value and what is allowed.
    """
    if isinstance(h, str):
        text = h.strip().lower()
        if text in (END, "18mpp", "window"):
            return END
        text = text.removesuffix("m").removesuffix(" months")
        try:
            h = float(text)
        except ValueError:
            raise ValueError(
                f"horizon={h!r}: must be a number of months after the assessment "
                "(0 < h <= 21) or 'end' (to 18 months postpartum)"
            ) from None
    if isinstance(h, bool) or not isinstance(h, int | float | np.integer | np.floating):
        raise ValueError(
            f"horizon={h!r}: must be a number of months after the assessment "
            "(0 < h <= 21) or 'end' (to 18 months postpartum)"
        )
    v = float(h)
    if not 0.0 < v <= _MAX_MONTHS or not np.isfinite(v):
        raise ValueError(
            f"horizon={h!r}: must be between 0 (excluded) and {_MAX_MONTHS} months "
            "after the assessment, or 'end'"
        )
    return v


# --------------------------------------------------------------- the course


@dataclass(frozen=True)
class Course:
    """What the record says about the months ahead, per woman.

    ``a``: months postpartum at the assessment; ``wean``: months postpartum when
    breastfeeding ends (``a`` or earlier when she does not breastfeed now; NaN when
    unknown); ``vitamin_d``, ``calcium`` and ``smoking``: the values from now on.
    """

    a: np.ndarray
    wean: np.ndarray
    vitamin_d: np.ndarray
    calcium: np.ndarray
    smoking: np.ndarray
    # From the record, unchanged by any intervention: exclusive breastfeeding at
    # the assessment, smoking at the assessment.
    exclusive: np.ndarray
    smoked: np.ndarray
    # 1 when 25(OH)D from now on is below 20 ng/mL (the expected share when not
    # known); None until :func:`_filled`.
    low_vitamin_d: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> Course:
        low = None if self.low_vitamin_d is None else self.low_vitamin_d[idx]
        return Course(
            *(getattr(self, f)[idx] for f in _COURSE_FIELDS), low_vitamin_d=low
        )


_COURSE_FIELDS = (
    "a",
    "wean",
    "vitamin_d",
    "calcium",
    "smoking",
    "exclusive",
    "smoked",
)
#: The interventions of the course ahead (:func:`course_of`'s ``changes``).
COURSE_CHANGES = (
    "breastfeeding_now",
    "lactation_planned_months",
    "vitamin_d_25oh",
    "calcium_intake_mg_day",
    "smoking",
)


def _record(X: pd.DataFrame) -> pd.DataFrame:
    """The record as the trees read it: :data:`COURSE_RECORD_FIELDS` blanked."""
    present = [c for c in COURSE_RECORD_FIELDS if c in X.columns]
    if not present:
        return X
    out = X.copy()
    for c in present:
        out[c] = np.nan
    return out


def _num(X: pd.DataFrame, name: str) -> np.ndarray:
    if name not in X.columns:
        return np.full(len(X), np.nan)
    return pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=np.float64)


def _change(changes: Mapping[str, Any], name: str, n: int) -> np.ndarray | None:
    """One value per row of a change (NaN: no change for that row), or None."""
    if name not in changes or changes[name] is None:
        return None
    v = np.asarray(
        pd.array(
            np.ravel(np.asarray(changes[name], dtype=object)), dtype="Float64"
        ).to_numpy(dtype=np.float64, na_value=np.nan)
    )
    if v.size == 1:
        return np.full(n, v[0])
    if v.size != n:
        raise ValueError(
            f"changes[{name!r}] must be a scalar or one value per row ({n}); got "
            f"{v.size} values"
        )
    return v


def course_of(X: pd.DataFrame, changes: Mapping[str, Any] | None = None) -> Course:
    """The course ahead as the record implies, with an intervention from now on.

    ``changes`` may hold ``breastfeeding_now=False`` (she weans now),
    ``lactation_planned_months`` (the plan from now on; never before today),
    ``vitamin_d_25oh`` and ``calcium_intake_mg_day`` (the values from now on) and
    ``smoking=False`` (she stops now), each a scalar or one value per row (NaN or
    None: no change for that row). The record itself, the past, is not changed.
    """
    changes = dict(changes or {})
    unknown = sorted(set(changes) - set(COURSE_CHANGES))
    if unknown:
        raise ValueError(
            f"cannot change {unknown[0]!r} from now on (allowed: "
            + ", ".join(COURSE_CHANGES)
            + ")"
        )
    a = _num(X, "months_postpartum")
    n = a.size
    so_far = _num(X, "lactation_months")
    planned = _num(X, "lactation_planned_months")
    bf = _num(X, "breastfeeding_now")
    pregnant = a <= 0
    now = np.maximum(a, 0.0)
    plan = _change(changes, "lactation_planned_months", n)
    if plan is not None:
        planned = np.where(np.isnan(plan), planned, plan)
    # Weaning month (postpartum): the plan while she breastfeeds (never before
    # today), what she gave when she has stopped; unknown plans stay unknown.
    wean = np.where(
        pregnant,
        planned,
        np.where(bf == 1, np.maximum(planned, now), np.minimum(so_far, now)),
    )
    wean = np.where((bf == 0) & ~pregnant & np.isnan(so_far), now, wean)
    stop = _change(changes, "breastfeeding_now", n)
    if stop is not None:
        weans = stop == 0
        wean = np.where(weans, np.where(pregnant, 0.0, np.minimum(wean, now)), wean)
    out = {}
    for field, name in (
        ("vitamin_d", "vitamin_d_25oh"),
        ("calcium", "calcium_intake_mg_day"),
        ("smoking", "smoking"),
    ):
        value = _num(X, name)
        new = _change(changes, name, n)
        if new is not None:
            if field == "smoking":
                new = np.where(new == 1, np.nan, new)  # stopping only
            value = np.where(np.isnan(new), value, new)
        out[field] = value
    return Course(
        a,
        wean,
        out["vitamin_d"],
        out["calcium"],
        out["smoking"],
        _num(X, "lactation_exclusive"),
        _num(X, "smoking"),
    )


#: The course ahead as the hazard model's linear terms (log-odds per month),
#: beside its trees for the record and the time: breastfeeding in the month (and
#: while exclusive, in the first 6 months postpartum, with 25(OH)D below 20 ng/mL,
#: the Institute of Medicine's deficiency: Ross et al., J Clin Endocrinol Metab
#: 2011;96:53-58, doi:10.1210/jc.2010-2704), the months breastfed since the
#: assessment, the months since weaning (and with calcium intake), smoking in the
#: month and having stopped.
COURSE_TERMS = (
    "ct_breastfeeding",
    "ct_breastfeeding_exclusive",
    "ct_breastfeeding_first_6_months",
    "ct_breastfeeding_exclusive_first_6_months",
    "ct_breastfeeding_vitamin_d_below_20",
    "ct_months_breastfed_since",
    "ct_months_since_weaning",
    "ct_months_since_weaning_x_calcium_g",
    "ct_smoking",
    "ct_stopped_smoking",
)
#: The fields each course term comes from (for explanations).
COURSE_TERM_FIELDS = {
    "ct_breastfeeding": ("breastfeeding_now", "lactation_planned_months"),
    "ct_breastfeeding_exclusive": ("lactation_exclusive",),
    "ct_breastfeeding_first_6_months": (
        "breastfeeding_now",
        "lactation_planned_months",
    ),
    "ct_breastfeeding_exclusive_first_6_months": ("lactation_exclusive",),
    "ct_breastfeeding_vitamin_d_below_20": ("vitamin_d_25oh",),
    "ct_months_breastfed_since": ("breastfeeding_now", "lactation_planned_months"),
    "ct_months_since_weaning": ("lactation_planned_months", "lactation_months"),
    "ct_months_since_weaning_x_calcium_g": ("calcium_intake_mg_day",),
    "ct_smoking": ("smoking",),
    "ct_stopped_smoking": ("smoking",),
}
#: Record fields the trees do not read: what they say about the months ahead is
#: in the course terms, so the two cannot trade one effect between them.
COURSE_RECORD_FIELDS = ("breastfeeding_now", "lactation_planned_months", "smoking")


def _course_fill(X: pd.DataFrame) -> dict[str, float]:
    """Typical values of the training records for what a record may not say about
    the course ahead: the plan of women breastfeeding now, the share with 25(OH)D
    below 20 ng/mL, the calcium intake, the share breastfeeding exclusively and
    the share smoking. A linear term of an unknown value is its expected value."""

    def mean(values: np.ndarray, default: float) -> float:
        v = values[~np.isnan(values)]
        return float(v.mean()) if v.size else default

    feeding = _num(X, "breastfeeding_now") == 1
    plan = _num(X, "lactation_planned_months")[feeding]
    plan = plan[~np.isnan(plan)]
    vitd = _num(X, "vitamin_d_25oh")
    return {
        "plan": float(np.median(plan)) if plan.size else 6.0,
        "low_vitamin_d": mean(np.where(np.isnan(vitd), np.nan, vitd < 20), 0.0),
        "calcium": mean(_num(X, "calcium_intake_mg_day"), 1000.0),
        "exclusive": mean(_num(X, "lactation_exclusive"), 0.0),
        "smoking": mean(_num(X, "smoking"), 0.0),
    }


def _filled(course: Course, fill: Mapping[str, float]) -> Course:
    now = np.maximum(course.a, 0.0)
    wean = np.where(np.isnan(course.wean), np.maximum(now, fill["plan"]), course.wean)
    calcium = np.where(np.isnan(course.calcium), fill["calcium"], course.calcium)
    smoking = np.where(np.isnan(course.smoking), fill["smoking"], course.smoking)
    return dataclasses.replace(
        course,
        wean=wean,
        calcium=calcium,
        smoking=smoking,
        exclusive=np.where(
            np.isnan(course.exclusive), fill["exclusive"], course.exclusive
        ),
        smoked=np.where(np.isnan(course.smoked), fill["smoking"], course.smoked),
        low_vitamin_d=np.where(
            np.isnan(course.vitamin_d),
            fill["low_vitamin_d"],
            (course.vitamin_d < 20).astype(float),
        ),
    )


def _course_terms(tv: np.ndarray, course: Course) -> np.ndarray:
    """The course terms of every month, shape (n, months, len(COURSE_TERMS))."""
    bf = np.nan_to_num(tv[..., 3])
    since = np.nan_to_num(tv[..., 4])
    weaned = np.nan_to_num(tv[..., 5])
    vitd = tv[..., 6]
    calcium = np.nan_to_num(tv[..., 7])
    smoking = np.nan_to_num(tv[..., 8])
    post = (tv[..., 1] >= 0).astype(float)
    early = (tv[..., 1] < 6).astype(float)
    excl = np.nan_to_num(course.exclusive)[:, None] * np.ones_like(bf)
    if course.low_vitamin_d is not None:
        low_d = course.low_vitamin_d[:, None] * np.ones_like(bf)
    else:
        low_d = np.where(np.isnan(vitd), 0.0, (vitd < 20).astype(float))
    return np.stack(
        [
            bf,
            bf * excl,
            bf * early,
            bf * excl * early,
            bf * low_d,
            since,
            weaned * post,
            weaned * post * calcium / 1000.0,
            smoking,
            np.nan_to_num(course.smoked)[:, None] * (1.0 - smoking),
        ],
        axis=-1,
    )


def _time_block(course: Course, months: int) -> tuple[np.ndarray, np.ndarray]:
    """The time columns of every woman's months 0..months-1, shape
    (n, months, len(TIME_COLUMNS)), and which of those months lie inside the
    window, shape (n, months)."""
    a = course.a[:, None]
    k = np.arange(months, dtype=np.float64)[None, :]
    start = a + k
    length = np.clip(WINDOW_END - start, 0.0, 1.0)
    inside = length > 0
    mid = start + 0.5 * length
    wean = course.wean[:, None]
    post = mid >= 0
    bf = np.where(np.isnan(wean), np.nan, (post & (mid < wean)).astype(float))
    # Months breastfed between the assessment and the start of this month.
    since = np.clip(np.minimum(start, wean) - np.maximum(a, 0.0), 0.0, None)
    since = np.where(np.isnan(wean), np.nan, since)
    weaned_for = np.where(
        np.isnan(wean), np.nan, np.clip(start - np.maximum(wean, 0.0), 0.0, None)
    )
    weaned_for = np.where(post, weaned_for, 0.0)
    shape = start.shape
    cols = np.stack(
        [
            np.broadcast_to(k, shape),
            start,
            length,
            bf,
            since,
            weaned_for,
            np.broadcast_to(course.vitamin_d[:, None], shape),
            np.broadcast_to(course.calcium[:, None], shape),
            np.broadcast_to(course.smoking[:, None], shape),
        ],
        axis=-1,
    )
    return cols, inside


def person_months(
    X: pd.DataFrame, time: Any, event: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows a hazard model is fitted on: (woman index, month, y).

    Parameters
    ----------
    X : pandas.DataFrame
        The records (``months_postpartum`` is read).
    time : array-like
        Months after the assessment to her first fracture or the end of her
        follow-up.
    event : array-like
        1 if ``time`` is a fracture, 0 if she was censored then (at the end of the
        window or earlier).

    Returns
    -------
    (rows, months, y) : three arrays of equal length
        Month ``k`` of woman ``rows[i]``; ``y`` is 1 in the month of her fracture.

    Examples
    --------
    >>> X = pd.DataFrame({"months_postpartum": [16.0, 10.0]})
    >>> rows, k, y = person_months(X, [2.0, 3.4], [0, 1])
    >>> rows.tolist(), k.tolist(), y.tolist()
    ([0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 2, 3], [0, 0, 0, 0, 0, 1])
    """
    a = _num(X, "months_postpartum")
    t = np.asarray(time, dtype=np.float64)
    d = np.asarray(event).astype(bool)
    if t.shape != a.shape or d.shape != a.shape:
        raise ValueError(
            f"time and event must have one value per row ({a.size}); got "
            f"{t.shape} and {d.shape}"
        )
    if np.isnan(t).any() or (t < 0).any():
        raise ValueError("time: months after the assessment must be >= 0 and known")
    span = WINDOW_END - a
    n_months = np.ceil(np.clip(span, 0.0, _MAX_MONTHS) - 1e-9).astype(np.int64)
    last = np.minimum(np.floor(t).astype(np.int64), np.maximum(n_months - 1, 0))
    # Followed to the end of the window: every month; censored earlier: the whole
    # months she was seen; a fracture: the months up to and with it.
    to_end = t >= span - 1e-9
    count = np.where(d, last + 1, np.where(to_end, n_months, np.floor(t)))
    count = np.clip(count, 0, n_months).astype(np.int64)
    rows = np.repeat(np.arange(a.size), count)
    starts = np.cumsum(count) - count
    k = np.arange(rows.size) - np.repeat(starts, count)
    y = np.zeros(rows.size, dtype=np.int8)
    ends = starts + count - 1
    hit = d & (count > 0)
    y[ends[hit]] = 1
    return rows, k, y


# ------------------------------------------------------------- the learners


def _xgb(params: Mapping[str, Any], signs: list[int], random_state: int):
    return XGBClassifier(
        objective="binary:logistic",
        tree_method="hist",
        random_state=random_state,
        monotone_constraints=tuple(signs),
        eval_metric="logloss",
        n_jobs=2,
        **{**_XGB_DEFAULTS, **dict(params)},
    )


class _TreesAndCourse:
    """The champion's hazard: xgboost trees for the record and the time, plus a
    logistic model of the course ahead (:data:`COURSE_TERMS`), fitted by
    backfitting (Hastie & Tibshirani, *Generalized Additive Models*, Chapman &
    Hall 1990, ch. 4): the trees on the course model's log-odds as offset, the
    course model on the trees' as offset, ``backfit`` times. A course term whose
    coefficient its data cannot tell from 0 (Wald test, |z| < 1.96) is set to 0:
    an intervention acting only through it then changes nothing."""

    def __init__(self, params: Mapping[str, Any], signs: list[int], seed: int):
        self.params = dict(params)
        self.backfit = int(self.params.pop("backfit", 3))
        self.signs = signs
        self.seed = seed

    def fit(self, M: np.ndarray, C: np.ndarray, y: np.ndarray) -> _TreesAndCourse:
        rate = float(np.clip(y.mean(), 1e-9, 1 - 1e-9))
        beta = np.zeros(C.shape[1] + 1)
        beta[0] = float(logit(rate))
        D = np.column_stack([np.ones(len(C)), C])
        for _ in range(max(self.backfit, 1)):
            clf = _xgb({**self.params, "base_score": 0.5}, self.signs, self.seed)
            with threadpool_limits(limits=1, user_api="openmp"):
                clf.fit(M, y, base_margin=D @ beta)
            self.booster = clf.get_booster()
            trees = self._trees(M)
            with one_blas_thread():
                new, _, ok = logistic_irls(
                    D, y.astype(float), np.ones(len(y)), beta=beta, offset=trees
                )
            if ok and np.all(np.isfinite(new)):
                beta = new
        kept = np.ones(C.shape[1], bool)
        se = _wald_se(D, beta, trees)
        z = np.abs(beta[1:]) / np.where(se[1:] > 0, se[1:], np.inf)
        kept = z >= 1.96
        if not kept.all():
            Dk = D[:, np.r_[True, kept]]
            with one_blas_thread():
                bk, _, ok = logistic_irls(
                    Dk,
                    y.astype(float),
                    np.ones(len(y)),
                    beta=beta[np.r_[True, kept]],
                    offset=trees,
                )
            if ok and np.all(np.isfinite(bk)):
                beta = np.zeros_like(beta)
                beta[np.r_[True, kept]] = bk
        self.intercept_ = float(beta[0])
        self.coef_ = beta[1:].copy()
        self.se_ = se[1:]
        self.kept_ = kept
        self.course_mean_ = C.mean(axis=0)
        return self

    def _trees(self, M: np.ndarray) -> np.ndarray:
        out = self.booster.inplace_predict(
            np.ascontiguousarray(M, dtype=np.float32),
            predict_type="margin",
            validate_features=False,
        )
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def margin(self, M: np.ndarray, C: np.ndarray) -> np.ndarray:
        return self._trees(M) + self.intercept_ + C @ self.coef_


def _wald_se(D: np.ndarray, beta: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Standard errors of a logistic fit from its Fisher information."""
    p = expit(offset + D @ beta)
    info = (D * (p * (1 - p))[:, None]).T @ D
    return np.sqrt(np.abs(np.diag(np.linalg.pinv(info))))


class _LogisticHazard:
    """Median imputation with indicators, standardisation, ridge logistic
    regression (C=1) with natural splines of the time columns: the comparator."""

    def __init__(self, params: Mapping[str, Any]):
        self.C = float(params.get("C", 1.0))

    def fit(self, M: np.ndarray, y: np.ndarray) -> _LogisticHazard:
        self.median_ = np.nanmedian(np.where(np.isfinite(M), M, np.nan), axis=0)
        self.median_ = np.where(np.isnan(self.median_), 0.0, self.median_)
        Z = self._design(M, fit=True)
        self.lr_ = LogisticRegression(C=self.C, max_iter=2000).fit(Z, y)
        return self

    def _design(self, M: np.ndarray, *, fit: bool = False) -> np.ndarray:
        miss = np.isnan(M)
        filled = np.where(miss, self.median_, M)
        if fit:
            self.indicators_ = np.flatnonzero(miss.mean(axis=0) > 0.01)
            self.mean_ = filled.mean(axis=0)
            sd = filled.std(axis=0)
            self.sd_ = np.where(sd > 0, sd, 1.0)
        Z = (filled - self.mean_) / self.sd_
        return np.column_stack([Z, miss[:, self.indicators_].astype(float)])

    def margin(self, M: np.ndarray) -> np.ndarray:
        if not hasattr(self, "coef_"):
            self.coef_ = self.lr_.coef_.ravel()
            self.intercept_ = float(self.lr_.intercept_[0])
        return self._design(M) @ self.coef_ + self.intercept_


# ----------------------------------------------------------------- the model


# A frame of at most this many rows takes the feature pipeline's array path.
_ARRAY_ROWS = 64


class _Arrays:
    """The array path of a fitted feature pipeline, or None where it has none."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline
        try:
            self.runner: ArrayPipeline | None = ArrayPipeline(pipeline)
        except TypeError:
            self.runner = None


class HazardModel:
    """A discrete-time hazard model of the first fracture after the assessment.

    Parameters
    ----------
    family : {"xgboost", "logistic_regression"}, default="xgboost"
        The hazard learner of the person-month rows.
    params : dict, default=None
        Its hyperparameters (xgboost's, or ``C`` for the logistic comparator).
    horizons : sequence, default=DEFAULT_HORIZONS
        The horizons calibrated and reported (months after the assessment, or
        ``"end"``); any other horizon up to the window's end is still answered,
        calibrated by its nearest calibrated neighbour.
    catalog : Catalog, default=None
    cv : int, default=3
        Folds of the out-of-fold risks the calibration is fitted on.
    thresholds : dict, default=None
        Risk category thresholds stored with the model (of the default horizon).
    random_state : int, default=0

    Attributes
    ----------
    features_ : Pipeline
        The catalog's feature pipeline, fitted.
    learner_ : estimator
        The hazard learner fitted on every person-month row.
    calibration_ : dict
        Horizon label -> (intercept, slope) on the log-odds of the risk.
    prevalence_ : dict
        Horizon label -> the share of women with a fracture by then (weighted for
        censoring): the average risk of the training setting.
    n_train_, n_events_ : int
    """

    def __init__(
        self,
        *,
        family: str = "xgboost",
        params: Mapping[str, Any] | None = None,
        horizons: Sequence[float | str] = DEFAULT_HORIZONS,
        catalog: Catalog | None = None,
        cv: int = 3,
        thresholds: Mapping[str, float] | None = None,
        random_state: int = 0,
    ):
        self.family = family
        self.params = dict(params or {})
        self.horizons = tuple(parse_horizon(h) for h in horizons)
        self.catalog = catalog
        self.cv = cv
        self.thresholds = dict(thresholds or {}) or None
        self.random_state = random_state

    # ---------------------------------------------------------------- fitting
    def _new_learner(self):
        if self.family == "xgboost":
            signs_of = monotone_constraints(self.features_, self._catalog())
            features = [str(c) for c in self.features_.get_feature_names_out()]
            signs = [int(signs_of.get(c, 0)) for c in features]
            signs += [0] * len(_TREE_TIME)
            return _TreesAndCourse(self.params, signs, self.random_state)
        if self.family == "logistic_regression":
            return _LogisticHazard(self.params)
        raise ValueError(
            f"family={self.family!r}: must be one of {', '.join(HAZARD_FAMILIES)}"
        )

    def _catalog(self) -> Catalog:
        return self.catalog or load_catalog()

    def fit(
        self,
        X: pd.DataFrame,
        time: Any,
        event: Any,
        *,
        changes: Mapping[str, Any] | pd.DataFrame | None = None,
    ) -> HazardModel:
        """Fit on validated records with their follow-up.

        Parameters
        ----------
        X : pandas.DataFrame
            Validated records (:func:`plo_risk.validate_frame`'s ``valid``).
        time, event
            As :func:`person_months` takes them.
        changes : DataFrame or dict, default=None
            What was changed from the assessment on, per woman (NaN: nothing), as
            in a trial (:func:`plo_risk.synthetic.simulated_trial`): the only data
            from which the effect of an intervention can be learned. The
            interventions seen with enough women and fractures are recorded in
            ``interventions_``; :meth:`risk` with any other change says the data
            cannot tell.

        Returns
        -------
        self
        """
        if self.family not in HAZARD_FAMILIES:
            raise ValueError(
                f"family={self.family!r}: must be one of {', '.join(HAZARD_FAMILIES)}"
            )
        t = np.asarray(time, dtype=np.float64)
        d = np.asarray(event).astype(np.int8)
        rows, k, y = person_months(X, t, d)
        self.features_ = build_pipeline(self._catalog()).fit(_record(X))
        base = self._base(X)
        names = [
            *map(str, self.features_.get_feature_names_out()),
            *_TREE_TIME,
            *COURSE_TERMS,
        ]
        self.feature_names_ = names
        if int(y.sum()) < 2:
            raise ValueError(
                f"HazardModel needs at least 2 fractures to fit; got {int(y.sum())}"
            )
        if isinstance(changes, pd.DataFrame):
            changes = {c: changes[c].to_numpy() for c in changes.columns}
        self.course_fill_ = _course_fill(X)
        course = self._course(X, changes)
        self.interventions_ = _interventions_seen(changes or {}, d)
        tv, _ = _time_block(course, _MAX_MONTHS)
        oof = np.full((len(X), len(self.horizons)), np.nan)
        folds = StratifiedKFold(
            n_splits=self.cv, shuffle=True, random_state=self.random_state
        )
        C = _course_terms(tv, course)
        for train, test in folds.split(np.zeros(len(X)), d):
            keep = np.isin(rows, train)
            learner = self._fit_learner(base, tv, C, rows[keep], k[keep], y[keep])
            oof[test] = self._cumulative(
                learner, base[test], course.take(test), self.horizons
            )
        self.learner_ = self._fit_learner(base, tv, C, rows, k, y)
        self.calibration_, self.prevalence_ = {}, {}
        a = course.a
        fixed = [h for h in self.horizons if h != END] or [END]
        for j, h in enumerate(self.horizons):
            status, w = _status_by(h, a, t, d)
            label = horizon_label(h)
            self.prevalence_[label] = float(np.sum(w * status) / np.sum(w))
            if h not in fixed:
                continue
            m = logit(np.clip(oof[:, j], 1e-12, 1 - 1e-12))
            ok = w > 0
            with one_blas_thread():
                beta, _, converged = logistic_irls(
                    np.column_stack([np.ones(ok.sum()), m[ok]]),
                    status[ok].astype(float),
                    w[ok],
                    beta=np.array([0.0, 1.0]),
                )
            if not converged or not np.all(np.isfinite(beta)) or beta[1] <= 0:
                beta = np.array([0.0, 1.0])
            self.calibration_[label] = (float(beta[0]), float(beta[1]))
        self.n_train_ = len(X)
        self.n_events_ = int(d.sum())
        return self

    def _fit_learner(self, base, tv, C, rows, k, y):
        M = np.concatenate([base[rows], tv[rows, k][:, : len(_TREE_TIME)]], axis=1)
        learner = self._new_learner()
        if self.family == "xgboost":
            return learner.fit(M.astype(np.float32), C[rows, k], y)
        return learner.fit(np.concatenate([M, C[rows, k]], axis=1), y)

    def _course(self, X: pd.DataFrame, changes=None) -> Course:
        """The course ahead (:func:`course_of`), what the record does not say filled
        with the training data's typical value (:func:`_course_fill`)."""
        return _filled(course_of(X, changes), self.course_fill_)

    def _base(self, X: pd.DataFrame) -> np.ndarray:
        if len(X) <= _ARRAY_ROWS:
            # A few patients: the pipeline's own array code without sklearn's
            # input checks and pandas between steps (the same values, bit for bit).
            arrays = getattr(self, "_arrays", None)
            if arrays is None or arrays.pipeline is not self.features_:
                arrays = _Arrays(self.features_)
                self._arrays = arrays
            if arrays.runner is not None:
                if len(X) == 1:
                    row = X.to_dict("records")[0]
                    for c in COURSE_RECORD_FIELDS:
                        row.pop(c, None)
                    return np.asarray(arrays.runner(row)[0], dtype=np.float64)
                return np.asarray(arrays.runner(_record(X))[0], dtype=np.float64)
        out = self.features_.transform(_record(X))
        return np.asarray(out, dtype=np.float64)

    # ------------------------------------------------------------- predicting
    def _design(self, base: np.ndarray, tv: np.ndarray, course: Course):
        """The trees' matrix and the course terms of every month, flattened."""
        n, months, _ = tv.shape
        M = np.concatenate(
            [
                np.repeat(base, months, axis=0),
                tv.reshape(n * months, -1)[:, : len(_TREE_TIME)],
            ],
            axis=1,
        )
        C = _course_terms(tv, course).reshape(n * months, -1)
        return M, C

    def _margins(self, learner, base: np.ndarray, tv: np.ndarray, course: Course):
        n, months, _ = tv.shape
        M, C = self._design(base, tv, course)
        if self.family == "xgboost":
            out = learner.margin(M, C)
        else:
            out = learner.margin(np.concatenate([M, C], axis=1))
        return np.asarray(out, dtype=np.float64).reshape(n, months)

    def _months_for(self, horizons, a: np.ndarray) -> int:
        longest = 0.0
        for h in horizons:
            longest = max(
                longest, float(np.max(WINDOW_END - a)) if h == END else float(h)
            )
        return int(min(_MAX_MONTHS, np.ceil(max(longest, 1.0) - 1e-9)))

    def _cumulative(self, learner, base, course: Course, horizons, *, grid=False):
        """Uncalibrated risk by each horizon, shape (n, len(horizons)); with
        ``grid``, also by each whole month up to the longest, (n, months)."""
        if len(course.a) == 0:
            empty = np.empty((0, len(horizons)))
            return (empty, np.empty((0, 1))) if grid else empty
        months = self._months_for(horizons, course.a)
        tv, inside = _time_block(course, months)
        hazard = expit(self._margins(learner, base, tv, course))
        out = _accumulate(hazard, tv[..., 2], inside, course.a, horizons)
        if not grid:
            return out
        log_surv = np.where(inside, np.log1p(-np.clip(hazard, 0.0, 1 - 1e-12)), 0.0)
        return out, -np.expm1(np.cumsum(log_surv, axis=1))

    def hazards(
        self, X: pd.DataFrame, changes: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """The monthly hazard of the months after the assessment, shape
        (n, 21); NaN past the window's end."""
        course = self._course(X, changes)
        tv, inside = _time_block(course, _MAX_MONTHS)
        h = expit(self._margins(self.learner_, self._base(X), tv, course))
        return np.where(inside, h, np.nan)

    def risk(
        self,
        X: pd.DataFrame,
        horizons: Sequence[float | str] | None = None,
        *,
        changes: Mapping[str, Any] | None = None,
        calibrated: bool = True,
    ) -> pd.DataFrame:
        """The calibrated risk of a first fracture by each horizon.

        Parameters
        ----------
        X : pandas.DataFrame
            Validated records.
        horizons : sequence, default=None
            Months after the assessment or ``"end"``; default: the model's.
        changes : dict, default=None
            An intervention from the assessment on (see :func:`course_of`); the
            record (the past) stays as it is.
        calibrated : bool, default=True

        Returns
        -------
        pandas.DataFrame
            One column per horizon (``risk_3m``, ..., ``risk_end``), indexed like X.
        """
        hs = tuple(parse_horizon(h) for h in (horizons or self.horizons))
        course = self._course(X, changes)
        raw = self._cumulative(
            self.learner_, self._base(X), course, hs, grid=calibrated
        )
        if calibrated:
            raw, grid = raw
            out = self.calibrate(raw, hs, course.a)
            # Never less than at any whole month before it: a longer horizon never
            # has a lower risk, whichever horizons are asked together.
            spans = np.column_stack([_span(h, course.a) for h in hs])
            months = np.arange(1, grid.shape[1] + 1, dtype=np.float64)
            cal = self.calibrate(grid, [float(m) for m in months], course.a)
            for j in range(len(hs)):
                before = months[None, :] <= spans[:, [j]] + 1e-9
                floor = np.max(np.where(before, cal, 0.0), axis=1)
                out[:, j] = np.maximum(out[:, j], floor)
            raw = out
        return pd.DataFrame(
            raw, index=X.index, columns=[f"risk_{horizon_label(h)}" for h in hs]
        )

    def calibrate(self, raw: np.ndarray, horizons, a: np.ndarray) -> np.ndarray:
        """Apply the calibration to uncalibrated risks (n, H) of women assessed at
        ``a`` months postpartum.

        A horizon's calibration is read at its length for her (a horizon past the
        window's end is the window's end), interpolated linearly between the
        calibrated horizons, so two horizons of the same length for her get the
        same risk. (:meth:`risk` also keeps a longer horizon from a lower risk.)
        """
        spans = np.column_stack([_span(h, a) for h in horizons])
        b0, b1 = self._calibration_at(spans)
        return expit(b0 + b1 * logit(np.clip(raw, 1e-12, 1 - 1e-12)))

    def _calibration_at(self, spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        items = sorted(
            (float(k[:-1]), v) for k, v in self.calibration_.items() if k != END
        )
        if not items:
            b0, b1 = self.calibration_[END]
            return np.full_like(spans, b0), np.full_like(spans, b1)
        months = [m for m, _ in items]
        b0 = np.interp(spans, months, [v[0] for _, v in items])
        b1 = np.interp(spans, months, [v[1] for _, v in items])
        return b0, b1

    def explain(
        self, X: pd.DataFrame, horizon, changes: Mapping[str, Any] | None = None
    ) -> HorizonExplanation:
        """Contributions of each column to the calibrated log-odds of the risk at
        ``horizon``: see :data:`EXPLANATION_MEANING`."""
        h = parse_horizon(horizon)
        if self.family != "xgboost":
            raise ValueError(
                "explanations of a horizon risk need the xgboost hazard model; the "
                f"{self.family} comparator has none"
            )
        course = self._course(X, changes)
        n = len(X)
        base = self._base(X)
        months = self._months_for([h], course.a)
        tv, inside = _time_block(course, months)
        M, C = self._design(base, tv, course)
        learner = self.learner_
        trees = learner.booster.predict(
            DMatrix(np.ascontiguousarray(M, dtype=np.float32), missing=np.nan),
            pred_contribs=True,
            validate_features=False,
        )
        trees = np.asarray(trees, dtype=np.float64)
        # Linear terms: exact SHAP values are coef * (value - training mean).
        linear = (C - learner.course_mean_) * learner.coef_
        bias_rows = (
            trees[:, -1] + learner.intercept_ + learner.course_mean_ @ learner.coef_
        )
        raw = np.concatenate([trees[:, :-1], linear, bias_rows[:, None]], axis=1)
        raw = raw.reshape(n, months, -1)
        span = _span(h, course.a)
        length = tv[..., 2]
        k = np.arange(months, dtype=np.float64)[None, :]
        share = np.clip(span[:, None] - k, 0.0, 1.0)
        w = np.where(inside, np.minimum(share, length), 0.0)
        w = w / np.where(
            w.sum(axis=1, keepdims=True) > 0, w.sum(axis=1, keepdims=True), 1
        )
        mean = np.einsum("nk,nkc->nc", w, raw)
        values = mean[:, :-1]
        risk = self.risk(X, [h], changes=changes).to_numpy()[:, 0]
        target = logit(np.clip(risk, 1e-12, 1 - 1e-12))
        at_bias = expit(raw[..., -1])
        flat = _accumulate(at_bias, length, inside, course.a, [h])
        base_lo = logit(
            np.clip(self.calibrate(flat, [h], course.a)[:, 0], 1e-12, 1 - 1e-12)
        )
        total = values.sum(axis=1)
        gap = target - base_lo
        same = (np.abs(total) > 1e-9) & (np.sign(total) == np.sign(gap))
        scale = np.where(same, gap / np.where(same, total, 1.0), 1.0)
        values = values * scale[:, None]
        base_out = np.where(same, base_lo, target - values.sum(axis=1))
        return HorizonExplanation(
            values, base_out, target, list(self.feature_names_), base
        )

    def with_prevalence(self, prevalence: float, horizon: float | str = END):
        """A copy moved to another setting: every horizon's intercept shifted by
        ``logit(prevalence) - logit(training prevalence at horizon)``, the
        prior-shift correction of the log-odds (the ranking, the explanations and
        the intervals' log-odds widths stay)."""
        moved = copy.copy(self)
        label = horizon_label(parse_horizon(horizon))
        old = self.prevalence_.get(label, np.nan)
        shift = float(logit(prevalence) - logit(old))
        moved.calibration_ = {
            k: (b0 + shift, b1) for k, (b0, b1) in self.calibration_.items()
        }
        moved.prevalence_ = {
            k: float(expit(logit(v) + shift)) for k, v in self.prevalence_.items()
        }
        return moved


#: An intervention's effect is learned only from at least this many women who had
#: it, and this many fractures among them.
MIN_TREATED = 200
MIN_TREATED_EVENTS = 10


def _interventions_seen(changes: Mapping[str, Any], d: np.ndarray) -> dict[str, dict]:
    seen = {}
    for name in changes:
        v = _change(changes, name, d.size)
        if v is None:
            continue
        treated = ~np.isnan(v)
        seen[name] = {"women": int(treated.sum()), "events": int(d[treated].sum())}
    return seen


def _accumulate(hazard, length, inside, a, horizons) -> np.ndarray:
    """Risk by each horizon from monthly hazards (a partial month counts in
    proportion to its length on the cumulative-hazard scale)."""
    n, months = hazard.shape
    log_surv = np.log1p(-np.clip(hazard, 0.0, 1 - 1e-12))
    k = np.arange(months, dtype=np.float64)[None, :]
    out = np.empty((n, len(horizons)))
    for j, h in enumerate(horizons):
        span = _span(h, a)
        # The share of month k inside (0, span]: whole months, then the rest.
        share = np.clip(span[:, None] - k, 0.0, 1.0)
        share = np.where(
            inside, np.minimum(share, length) / np.where(length > 0, length, 1), 0.0
        )
        out[:, j] = -np.expm1(np.sum(share * log_surv, axis=1))
    return out


def _span(h, a: np.ndarray) -> np.ndarray:
    """The length of horizon ``h`` after an assessment at ``a`` months postpartum."""
    end = WINDOW_END - a
    return end if h == END else np.minimum(float(h), end)


def _status_by(h, a, t, d) -> tuple[np.ndarray, np.ndarray]:
    """Fractured by ``h`` (0/1) and an inverse-probability-of-censoring weight per
    woman: 0 for a woman censored before ``h`` without a fracture (her status is
    unknown), ``1 / G(time)`` otherwise, with ``G`` the Kaplan-Meier estimate of
    staying in follow-up (censoring at the window's end is not censoring)."""
    span = _span(h, a)
    hit = (d == 1) & (t <= span + 1e-9)
    early = (d == 0) & (t < (WINDOW_END - a) - 1e-9)
    known = hit | (t >= span - 1e-9)
    if not early.any():
        return hit.astype(np.int8), known.astype(float)
    G = _censoring_survival(t, early)
    at = np.where(hit, t, span)
    w = np.where(known, 1.0 / np.clip(G(at), 0.05, 1.0), 0.0)
    return hit.astype(np.int8), w


def _censoring_survival(t: np.ndarray, censored: np.ndarray):
    """Kaplan-Meier of staying in follow-up (left-continuous step function)."""
    order = np.argsort(t, kind="stable")
    ts, cs = t[order], censored[order]
    uniq, first = np.unique(ts, return_index=True)
    n_at = len(ts) - first
    n_c = np.add.reduceat(cs.astype(np.int64), first)
    surv = np.cumprod(1.0 - n_c / n_at)

    def G(x: np.ndarray) -> np.ndarray:
        i = np.searchsorted(uniq, x, side="left") - 1  # strictly before x
        return np.where(i >= 0, surv[np.clip(i, 0, None)], 1.0)

    return G


# --------------------------------------------------------------- intervals

#: The level of every interval of a horizon risk.
INTERVAL_LEVEL = 0.90
#: What a horizon interval means, as the assessment states it.
INTERVAL_MEANING = (
    "a 90% interval for her true risk, calibrated by simulation: among simulated "
    "women from the package's generator with the same inputs missing and a "
    "similar predicted risk, 90% had a true risk (the generator's oracle) inside "
    "the interval of their prediction (split-conformal, Mondrian by missing "
    "inputs and predicted risk: Vovk et al., Algorithmic Learning in a Random "
    "World, Springer 2005; Angelopoulos & Bates, arXiv:2107.07511, 2021). "
    "It holds for data like the generator's; on real data it is an "
    "approximation"
)
# Groups of the interval: every input recorded / a DXA but something else missing /
# no DXA at all.
_GROUPS = ("complete", "dxa", "no_dxa")
_N_BINS = 15
_CLIP = 1e-8


def missing_group(X: pd.DataFrame, catalog: Catalog | None = None) -> np.ndarray:
    """0 every input recorded, 1 a DXA but something else missing, 2 no DXA."""
    catalog = catalog or load_catalog()
    fields = [f.name for f in catalog if f.name in X.columns and f.derived_from is None]
    sites = [f.name for f in catalog.bmd_sites if f.name in X.columns]
    scores = [
        s.name
        for b in catalog.bmd_sites
        for s in catalog.scores_of(b.name)
        if s.name in X.columns
    ]
    miss = X[fields].isna()
    # Empty by design, not missing: no interval before a first birth.
    if "interpregnancy_interval_months" in miss.columns and "parity" in X.columns:
        first = pd.to_numeric(X["parity"], errors="coerce").to_numpy() <= 1
        miss.loc[first, "interpregnancy_interval_months"] = False
    any_missing = miss.to_numpy().any(axis=1)
    dxa = (
        X[sites + scores].notna().to_numpy().any(axis=1)
        if sites or scores
        else np.zeros(len(X), bool)
    )
    return np.where(~dxa, 2, np.where(any_missing, 1, 0)).astype(np.int8)


class SimulatedInterval:
    """Per-horizon 90% intervals for the true risk, calibrated on generator cohorts.

    For each horizon, group (:func:`missing_group`) and decile of predicted risk,
    the 5th and 95th percentiles of ``logit(true risk) - logit(predicted risk)``
    on a calibration cohort the model never saw, with the generator's oracle as
    the truth; a new prediction's interval is its log-odds plus those two numbers.

    Attributes
    ----------
    table_ : dict
        Horizon label -> {"edges": [[...] per group], "low": [[...]], "high":
        [[...]], "n": [[...]]} on the log-odds scale.
    coverage_ : dict
        Horizon label -> the share of the calibration cohort's true risks inside
        their interval (in-sample: about 0.90 by construction).
    """

    level = INTERVAL_LEVEL
    meaning = INTERVAL_MEANING

    def fit(
        self,
        model: HazardModel,
        X: pd.DataFrame,
        oracle: Mapping[str, np.ndarray],
    ) -> SimulatedInterval:
        """Fit on records ``X`` (any missingness) and the oracle's risks
        (horizon label -> array) of the same women."""
        catalog = model._catalog()
        groups = missing_group(X, catalog)
        labels = list(oracle)
        hs = [parse_horizon(x) if x != END else END for x in labels]
        pred = model.risk(X, hs).to_numpy()
        tail = (1 - self.level) / 2
        self.table_, self.coverage_ = {}, {}
        for j, label in enumerate(labels):
            lp = _lo(pred[:, j])
            r = _lo(np.asarray(oracle[label], dtype=float)) - lp
            entry = {"edges": [], "low": [], "high": [], "n": []}
            for g in range(len(_GROUPS)):
                sel = groups == g
                if sel.sum() < 50:  # too few: borrow every woman's spread
                    sel = np.ones(len(lp), bool)
                qs = np.quantile(lp[sel], np.linspace(0, 1, _N_BINS + 1)[1:-1])
                edges = np.unique(qs)
                b = np.searchsorted(edges, lp[sel], side="right")
                lows, highs, ns = [], [], []
                for i in range(len(edges) + 1):
                    rb = r[sel][b == i]
                    if rb.size < 20:
                        rb = r[sel]
                    lows.append(float(np.quantile(rb, tail)))
                    highs.append(float(np.quantile(rb, 1 - tail)))
                    ns.append(int((b == i).sum()))
                entry["edges"].append(edges.tolist())
                entry["low"].append(lows)
                entry["high"].append(highs)
                entry["n"].append(ns)
            self.table_[label] = entry
            lo, hi = self._bounds(label, lp, groups)
            inside = (r >= lo - 1e-12) & (r <= hi + 1e-12)
            self.coverage_[label] = float(inside.mean())
        return self

    def _bounds(self, label, lp, groups) -> tuple[np.ndarray, np.ndarray]:
        entry = self.table_[label]
        lo = np.empty_like(lp)
        hi = np.empty_like(lp)
        for g in range(len(_GROUPS)):
            sel = groups == g
            if not sel.any():
                continue
            edges = np.asarray(entry["edges"][g])
            b = np.searchsorted(edges, lp[sel], side="right")
            lo[sel] = np.asarray(entry["low"][g])[b]
            hi[sel] = np.asarray(entry["high"][g])[b]
        return lo, hi

    def interval(
        self, risk: np.ndarray, label: str, groups: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (low, high) true-risk interval of predicted risks at one horizon."""
        label = label if label in self.table_ else self._nearest(label)
        lp = _lo(np.asarray(risk, dtype=float))
        lo, hi = self._bounds(label, lp, np.asarray(groups))
        # The prediction is always inside its own interval.
        return expit(lp + np.minimum(lo, 0.0)), expit(lp + np.maximum(hi, 0.0))

    def _nearest(self, label: str) -> str:
        if label == END or not label.endswith("m"):
            return list(self.table_)[-1]
        v = float(label[:-1])
        fixed = [k for k in self.table_ if k != END]
        return min(fixed, key=lambda k: abs(float(k[:-1]) - v))


def _lo(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, _CLIP, 1 - _CLIP))


# ----------------------------------------------------------- bundle state

#: The bundle files of a horizon model (see :mod:`plo_risk.model.bundle`).
HORIZON_FEATURES = "horizon-features.json"
HORIZON_MODEL = "horizon-model.json"


def horizon_state(model: HazardModel, interval: SimulatedInterval | None) -> dict:
    """Everything of a fitted horizon model but its files, as plain JSON data."""
    state = {
        "family": model.family,
        "params": {k: v for k, v in model.params.items()},
        "horizons": [h if h == END else float(h) for h in model.horizons],
        "calibration": {
            k: [float(a), float(b)] for k, (a, b) in model.calibration_.items()
        },
        "prevalence": {k: float(v) for k, v in model.prevalence_.items()},
        "n_train": int(model.n_train_),
        "n_events": int(model.n_events_),
        "feature_names": list(model.feature_names_),
        "interventions": {k: dict(v) for k, v in model.interventions_.items()},
        "thresholds": dict(model.thresholds or {}),
        "course_fill": {k: float(v) for k, v in model.course_fill_.items()},
        "interval": None,
    }
    if model.family == "xgboost":
        lr = model.learner_
        state["course"] = {
            "terms": list(COURSE_TERMS),
            "intercept": float(lr.intercept_),
            "coef": lr.coef_.tolist(),
            "se": [float(x) for x in lr.se_],
            "kept": [bool(x) for x in lr.kept_],
            "mean": lr.course_mean_.tolist(),
        }
    if model.family == "logistic_regression":
        lr = model.learner_
        state["logistic"] = {
            "median": lr.median_.tolist(),
            "mean": lr.mean_.tolist(),
            "sd": lr.sd_.tolist(),
            "indicators": lr.indicators_.tolist(),
            "coef": lr.lr_.coef_.ravel().tolist(),
            "intercept": float(lr.lr_.intercept_[0]),
        }
    if interval is not None:
        state["interval"] = {
            "level": float(interval.level),
            "table": interval.table_,
            "coverage": dict(interval.coverage_),
        }
    return state


def write_learner(model: HazardModel, path) -> None:
    """The xgboost hazard learner in xgboost's JSON format (nothing for the
    logistic comparator, whose coefficients are in the state)."""
    if model.family == "xgboost":
        model.learner_.booster.save_model(str(path))


def horizon_from_state(
    state: Mapping[str, Any], features, booster_raw: bytes | None, catalog
) -> tuple[HazardModel, SimulatedInterval | None]:
    """Rebuild a horizon model from :func:`horizon_state`, its fitted feature
    pipeline and its learner file's bytes (no code runs)."""
    model = HazardModel(
        family=state["family"],
        params=state.get("params") or {},
        horizons=state["horizons"],
        catalog=catalog,
        thresholds=state.get("thresholds") or None,
    )
    model.features_ = features
    model.calibration_ = {
        k: (float(a), float(b)) for k, (a, b) in state["calibration"].items()
    }
    model.prevalence_ = {k: float(v) for k, v in state["prevalence"].items()}
    model.n_train_ = int(state["n_train"])
    model.n_events_ = int(state["n_events"])
    model.feature_names_ = list(state["feature_names"])
    model.interventions_ = {
        k: dict(v) for k, v in (state.get("interventions") or {}).items()
    }
    model.course_fill_ = {k: float(v) for k, v in state["course_fill"].items()}
    if model.family == "xgboost":
        booster = Booster()
        booster.load_model(bytearray(booster_raw or b""))
        course = state["course"]
        if list(course["terms"]) != list(COURSE_TERMS):
            raise ValueError(
                "horizon.course.terms: written by another plo_risk (its course "
                "terms differ from this one's)"
            )
        learner = _TreesAndCourse({}, [], 0)
        learner.booster = booster
        learner.intercept_ = float(course["intercept"])
        learner.coef_ = np.asarray(course["coef"], dtype=float)
        learner.se_ = np.asarray(course["se"], dtype=float)
        learner.kept_ = np.asarray(course["kept"], dtype=bool)
        learner.course_mean_ = np.asarray(course["mean"], dtype=float)
        model.learner_ = learner
    else:
        lr = _LogisticHazard({})
        s = state["logistic"]
        lr.median_ = np.asarray(s["median"], dtype=float)
        lr.mean_ = np.asarray(s["mean"], dtype=float)
        lr.sd_ = np.asarray(s["sd"], dtype=float)
        lr.indicators_ = np.asarray(s["indicators"], dtype=np.int64)
        lr.coef_ = np.asarray(s["coef"], dtype=float)
        lr.intercept_ = float(s["intercept"])
        model.learner_ = lr
    interval = None
    if state.get("interval"):
        interval = SimulatedInterval()
        interval.table_ = state["interval"]["table"]
        interval.coverage_ = dict(state["interval"]["coverage"])
    return model, interval


#: Optional column of a cohort: months postpartum when her follow-up ended (a
#: woman who left early is censored then); absent, everyone is followed to 18.
FOLLOW_UP_COLUMN = "follow_up_end_month"


def follow_up(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Months after the assessment to the first fracture or the end of follow-up,
    and whether it was a fracture, from a cohort's ``months_postpartum``,
    ``fracture``, ``fracture_month`` (months postpartum of the first fracture after
    the assessment) and optional :data:`FOLLOW_UP_COLUMN`.

    Raises
    ------
    ValueError
        Naming a missing column or an impossible value.

    Examples
    --------
    >>> df = pd.DataFrame({"months_postpartum": [2.0, 5.0], "fracture": [1, 0],
    ...                    "fracture_month": [4.5, 18.0],
    ...                    "follow_up_end_month": [18.0, 9.0]})
    >>> t, d = follow_up(df)
    >>> t.tolist(), d.tolist()
    ([2.5, 4.0], [1, 0])
    """
    for col in ("months_postpartum", "fracture"):
        if col not in frame.columns:
            raise ValueError(f"follow_up: the cohort has no {col!r} column")
    a = _num(frame, "months_postpartum")
    d = _num(frame, "fracture")
    if np.isnan(d).any() or not np.isin(d, (0, 1)).all():
        raise ValueError("fracture: must be 0 or 1 for every woman")
    month = _num(frame, "fracture_month")
    if (d == 1).any() and np.isnan(month[d == 1]).any():
        raise ValueError(
            "fracture_month: must be given for every woman with a fracture"
        )
    end = np.full(a.size, WINDOW_END)
    if FOLLOW_UP_COLUMN in frame.columns:
        end = np.minimum(
            np.where(np.isnan(e := _num(frame, FOLLOW_UP_COLUMN)), WINDOW_END, e),
            WINDOW_END,
        )
    stop = np.where(d == 1, month, end)
    t = stop - a
    if (t < -1e-9).any():
        bad = int(np.flatnonzero(t < -1e-9)[0])
        raise ValueError(
            f"row {bad}: the fracture or the end of follow-up ({stop[bad]:g} months "
            f"postpartum) is before the assessment ({a[bad]:g})"
        )
    return np.clip(t, 0.0, None), d.astype(np.int8)


#: Columns of a validated cohort that travel with it but are not model inputs.
NOT_INPUTS = ("patient_id", "fracture", "true_risk")


def model_inputs(valid: pd.DataFrame) -> pd.DataFrame:
    """The catalog fields of a validated frame (its id and outcome dropped)."""
    return valid.drop(columns=[c for c in NOT_INPUTS if c in valid.columns])


def simulate_interval(
    model: HazardModel,
    *,
    setting: str = "referral",
    prevalence: float | None = None,
    n: int = 20_000,
    seed: int = 20261202,
) -> SimulatedInterval:
    """Calibrate a horizon model's intervals on fresh generator cohorts.

    Two cohorts of ``n`` women the model never saw, one with the setting's
    realistic missingness and one with every input recorded, with the oracle's
    risk at each of the model's horizons as the truth.

    Returns
    -------
    SimulatedInterval
    """

    records, truths = [], {horizon_label(h): [] for h in model.horizons}
    for offset, missingness in enumerate(("realistic", "none")):
        kw = {"setting": setting, "prevalence": prevalence, "seed": seed + offset}
        full = generate_cohort(n, missingness="none", **kw)
        seen = (
            full
            if missingness == "none"
            else generate_cohort(n, missingness=missingness, **kw)
        )
        valid = validate_frame(seen, unknown="ignore").valid
        records.append(model_inputs(valid))
        rows = full.loc[valid.index]
        for h in model.horizons:
            truth = oracle_risk(
                rows,
                None if h == END else float(h),
                setting=setting,
                prevalence=prevalence,
            )
            truths[horizon_label(h)].append(truth.to_numpy())
    X = pd.concat(records, ignore_index=True)
    oracle = {k: np.concatenate(v) for k, v in truths.items()}
    return SimulatedInterval().fit(model, X, oracle)


# ------------------------------------------------------------ explanations

#: The field each column of the course ahead comes from (for explanations).
TIME_FIELDS = {
    "hz_months_after": ("months_postpartum",),
    "hz_months_postpartum": ("months_postpartum",),
    "hz_interval_length": ("months_postpartum",),
    "hz_breastfeeding": ("breastfeeding_now", "lactation_planned_months"),
    "hz_months_breastfed_since": ("breastfeeding_now", "lactation_planned_months"),
    "hz_months_since_weaning": ("lactation_planned_months", "lactation_months"),
    "hz_vitamin_d": ("vitamin_d_25oh",),
    "hz_calcium": ("calcium_intake_mg_day",),
    "hz_smoking": ("smoking",),
}


@dataclass(frozen=True)
class HorizonExplanation:
    """Column contributions of a horizon's risk (see :meth:`HazardModel.explain`).

    ``values`` (n, columns) and ``base`` (n,) add up to ``log_odds``, the calibrated
    log-odds of the risk at the horizon, row by row; ``columns`` are the feature
    pipeline's output columns, then :data:`TIME_COLUMNS`.
    """

    values: np.ndarray
    base: np.ndarray
    log_odds: np.ndarray
    columns: list[str]
    features: np.ndarray


#: What the contributions of a horizon risk add up to.
EXPLANATION_MEANING = (
    "exact TreeSHAP values of the hazard model's log-odds, averaged over the "
    "months of the horizon (weighted by the time she is followed in each), each "
    "multiplied by one factor per patient so that with the base they add up to "
    "the horizon's calibrated log-odds; the base is the calibrated log-odds of "
    "the horizon at the average hazard"
)


# ------------------------------------------------------------ interventions

#: What a what-if on a modifiable field means from the assessment on, for the
#: horizon model: field -> (what it changes in the course ahead, what the record
#: keeps). A field not here cannot be answered as an intervention: the model only
#: has it as part of the record (the past).
INTERVENTIONS: dict[str, dict[str, str]] = {
    "breastfeeding_now": {
        "course": "breastfeeding_now",
        "means": "she weans now: no breastfeeding in the months ahead (her plan "
        "becomes what she has given so far); the bone she has lost stays lost",
    },
    "lactation_planned_months": {
        "course": "lactation_planned_months",
        "means": "she breastfeeds until this many months postpartum (never before "
        "today); the bone she has lost stays lost",
    },
    "vitamin_d_25oh": {
        "course": "vitamin_d_25oh",
        "means": "her 25(OH)D is this from now on (repletion); her BMD and markers "
        "today stay as measured",
    },
    "calcium_intake_mg_day": {
        "course": "calcium_intake_mg_day",
        "means": "her calcium intake is this from now on; her BMD today stays as "
        "measured",
    },
    "smoking": {
        "course": "smoking",
        "means": "she stops smoking now; her BMD today stays as measured",
    },
}
#: Interventions whose effect the record's own course shows (women wean when they
#: planned to, inside the follow-up): known without trial rows, as an association
#: over time.
_SEEN_IN_COURSE = {"breastfeeding_now", "lactation_planned_months"}


def intervention_support(model: HazardModel, field: str) -> tuple[bool, str]:
    """Whether the model's data can tell what an intervention on ``field`` does,
    and the sentence that says on what its answer rests."""
    if field not in INTERVENTIONS:
        return False, (
            f"the model has {field} only as part of her record, not as something "
            "that changes from now on: the data cannot tell what changing it would do"
        )
    course = INTERVENTIONS[field]["course"]
    seen = (model.interventions_ or {}).get(course, {})
    if (
        seen.get("women", 0) >= MIN_TREATED
        and seen.get("events", 0) >= MIN_TREATED_EVENTS
    ):
        return True, (
            f"learned from {seen['women']:,} women of a simulated randomised trial "
            f"({seen['events']:,} fractures) who had this change at the assessment "
            "(plo_risk.synthetic.simulated_trial): the generator's effect, not a "
            "measured one"
        )
    if course in _SEEN_IN_COURSE:
        return True, (
            "learned from the months after women weaned as they had planned "
            "(within her follow-up): an association over time, adjusted for the "
            "time since delivery and her record, not a trial"
        )
    return False, (
        "no woman in the model's data had this change after her assessment (in "
        "records the values ahead are the values before): the data cannot tell "
        "what it would do"
    )

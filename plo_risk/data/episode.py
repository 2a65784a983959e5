"""One pregnancy episode as an event history: the engine of the synthetic generator.

An episode runs from the start of the third trimester (month -3) to 18 months
postpartum. Its course is what happens to her bones and her milk: the pregnancy
loss, heparin, the months of breastfeeding (at the full rate while she breastfeeds
exclusively and is amenorrheic, in the first 6 months; slower after), the recovery
after weaning. The course gives the BMD of each site at every moment, relative to
the BMD recorded at the assessment, and the BMD and the other factors give the
fracture hazard of each site (vertebral, hip, other) at every moment.

Everything here is a deterministic function of the *record* (what is known at the
assessment) and of the course after the assessment, so that the oracle can
compute the risk after the assessment exactly: the course after the assessment has
only one unknown, the month ``K`` in which the full-rate lactation ends, with a
known (geometric) distribution; the oracle sums over its values.

Time is in months postpartum. Each path is evaluated on a grid of 24 points: the
22 month boundaries -3..18, the end of postpartum heparin and the assessment time
``a`` (an intervention acts from ``a`` on, so every rate is constant between two
grid points). Hazards are per month, at unit scale: the generator multiplies them by
its intercept, the thrombophilia multiplier and, after a first fracture, the
subsequent-fracture ratios.

Every number comes from ``data/synthetic/params.yaml`` (sections ``pregnancy``,
``heparin``, ``lactation``, ``recovery``, ``fracture``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SITES",
    "WINDOW_END",
    "WINDOW_START",
    "cumulative",
    "full_rate_options",
    "grid",
    "hazards",
    "locate",
    "loss_at",
    "loss_path",
    "value_at",
    "values_at",
]

WINDOW_START = -3.0
WINDOW_END = 18.0
#: Fracture sites, in the order of the hazard arrays.
SITES = ("vertebral", "hip", "other")
_BOUNDARIES = np.arange(WINDOW_START, WINDOW_END + 1.0)  # 22 points
_KINDS = ("spine", "hip")  # loss kinds: lumbar spine; femoral neck and total hip
_DTYPE = np.float64


def grid(a: np.ndarray, heparin_end: float) -> np.ndarray:
    """The 24 time points of each path: month boundaries, end of heparin, ``a``."""
    base = np.sort(np.append(_BOUNDARIES, heparin_end))  # 23 points
    a = np.asarray(a, dtype=_DTYPE)
    pos = np.searchsorted(base, a, side="right")  # points <= a come first
    idx = np.arange(base.size + 1)[None, :]
    before = base[np.minimum(idx, base.size - 1)]
    after = base[np.maximum(idx - 1, 0)]
    return np.where(
        idx < pos[:, None], before, np.where(idx == pos[:, None], a[:, None], after)
    )


def loss_path(course: dict[str, np.ndarray], p: dict) -> dict[str, np.ndarray]:
    """BMD lost at each grid point, as a fraction of the pre-pregnancy BMD.

    Parameters
    ----------
    course : dict of arrays, one value per path
        ``a`` (assessment), ``t`` (the grid, ``(P, 24)``), ``twins``, ``heparin``,
        ``ufh_past``/``ufh_future`` (unfractionated heparin before/after ``a``),
        ``heparin_stop`` (months postpartum), ``W`` (weaning), ``K`` (end of the
        full-rate lactation), ``vitd_low_past``/``vitd_low_future`` (25(OH)D below
        the threshold), ``calcium_past``/``calcium_future`` (mg/day).
    p : dict
        The generator parameters.

    Returns
    -------
    dict
        ``spine``, ``hip``: ``(P, 24)`` loss fractions; ``active_*``: ``(P, 23)``
        whether the site is losing bone in each interval (not recovering).
    """
    pr, hp, la, rc = p["pregnancy"], p["heparin"], p["lactation"], p["recovery"]
    t = course["t"]
    a = course["a"][:, None]
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    dt = t[:, 1:] - t[:, :-1]
    future = mid >= a
    dtype = t.dtype
    twins = course["twins"]
    preg_total = (
        pr["loss_mean"] * np.where(twins, pr["multiple_gestation_multiplier"], 1.0)
    ).astype(dtype)
    share = pr["third_trimester_share"]
    months = -WINDOW_START
    pregnant = mid < 0.0
    on_heparin = course["heparin"][:, None] & (mid < course["heparin_stop"][:, None])
    lactating = (mid >= 0.0) & (mid < course["W"][:, None])
    # Every loss ends for good (pregnancy, heparin, breastfeeding), so the losing
    # intervals are a prefix; after it she regains down to the floor.
    active = pregnant | on_heparin | lactating
    n_int = dt.shape[1]
    last = np.where(active.any(axis=1), n_int - np.argmax(active[:, ::-1], axis=1), 0)
    during = np.arange(n_int)[None, :] < last[:, None]
    rows = np.arange(t.shape[0])
    # Per-row factors before and after the assessment (an intervention acts at a).
    vm = la["vitamin_d_loss_multiplier"]
    vitd_p = np.where(course["vitd_low_past"], vm, 1.0).astype(dtype)
    vitd_f = np.where(course["vitd_low_future"], vm, 1.0).astype(dtype)
    full = mid < course["K"][:, None]
    lact_mult = np.where(full, dtype.type(1.0), dtype.type(la["slow_rate_factor"]))
    lact_mult *= np.where(future, vitd_f[:, None], vitd_p[:, None])
    lact_mult *= lactating

    # Recovery after weaning is slightly faster with more calcium (Kalkwarf 1997);
    # the loss during lactation is not.
    def regain_factor(calcium: np.ndarray) -> np.ndarray:
        extra = np.clip(
            (calcium - rc["calcium_reference_mg"]) / 1000.0,
            0.0,
            rc["calcium_max_extra_g"],
        )
        return (1.0 + rc["calcium_regain_gain_per_g"] * extra).astype(dtype)

    regain_dt = np.where(
        future,
        regain_factor(course["calcium_future"])[:, None],
        regain_factor(course["calcium_past"])[:, None],
    )
    regain_dt *= dt
    regain_dt[during] = 0.0
    gained_unit = _cumsum_rows(regain_dt)
    residual = np.minimum(
        rc["residual_deficit_per_month"]
        * np.maximum(course["W"] - rc["long_lactation_months"], 0.0),
        rc["residual_deficit_max"],
    )
    ufh = np.where(future, course["ufh_future"][:, None], course["ufh_past"][:, None])
    ufh &= on_heparin
    lmwh = on_heparin & ~ufh
    preg_rate = np.where(pregnant, preg_total[:, None] * dtype.type(share / months), 0)
    before = hp["start_months_before_delivery"] + WINDOW_START
    out: dict[str, np.ndarray] = {}
    for kind in _KINDS:
        rate = preg_rate + dtype.type(hp[f"ufh_{kind}_loss_per_month"]) * ufh
        rate += dtype.type(hp[f"lmwh_{kind}_loss_per_month"]) * lmwh
        rate += dtype.type(la[f"{kind}_loss_per_month"]) * lact_mult
        start = preg_total * (1.0 - share) + np.where(
            course["heparin"],
            np.where(
                course["ufh_past"],
                hp[f"ufh_{kind}_loss_per_month"],
                hp[f"lmwh_{kind}_loss_per_month"],
            )
            * before,
            0.0,
        )
        lost = _cumsum_rows(rate * dt)
        peak = start + np.where(last > 0, lost[rows, np.maximum(last - 1, 0)], 0.0)
        floor = np.minimum(peak, residual)
        L = np.empty_like(t)
        L[:, 0] = start
        recovering = np.maximum(
            peak[:, None] - rc[f"{kind}_regain_per_month"] * gained_unit,
            floor[:, None],
        )
        L[:, 1:] = np.where(during, start[:, None] + lost, recovering)
        loss = rate
        out[kind] = L
        out[f"active_{kind}"] = active
        out[f"rate_{kind}"] = loss
    return out


def _cumsum_rows(x: np.ndarray) -> np.ndarray:
    """``np.cumsum(x, axis=1)`` of a float array: the same sums, a column at a time.

    Along a short last axis np.cumsum works row by row; one vector add per column is
    twice as fast at (8192, 23).
    """
    out = x.copy()
    for k in range(1, out.shape[1]):
        np.add(out[:, k - 1], out[:, k], out=out[:, k])
    return out


def value_at(
    values: np.ndarray, t: np.ndarray, x: np.ndarray, j: np.ndarray | None = None
) -> np.ndarray:
    """Piecewise-linear ``values`` (given at the grid points ``t``) at times ``x``.

    ``j``, the interval of each ``x`` (:func:`locate`), saves a pass over the grid.
    """
    return values_at([values], t, x, j)[0]


def values_at(
    values: list[np.ndarray],
    t: np.ndarray,
    x: np.ndarray,
    j: np.ndarray | None = None,
) -> list[np.ndarray]:
    """:func:`value_at` of several arrays on the same grid at the same times.

    The interval and the weight of each ``x`` are found once for all of them.

    Parameters
    ----------
    values : list of arrays
        Each ``(P, G)``: values at the grid points ``t``.
    t : array of shape (P, G)
        The grid of each path (:func:`grid`).
    x : array of shape (P,)
        One time per path; clipped to its grid.
    j : array of shape (P,), default=None
        The interval of each ``x`` (:func:`locate`); ``None`` finds it.

    Returns
    -------
    list of arrays
        Each ``(P,)``: the linear interpolation of ``values[i]`` at ``x``.

    Examples
    --------
    >>> t = np.array([[0.0, 1.0, 2.0]])
    >>> [v.tolist() for v in values_at([t, 10 * t], t, np.array([1.5]))]
    [[1.5], [15.0]]
    """
    x = np.clip(np.asarray(x, dtype=_DTYPE), t[:, 0], t[:, -1])
    if j is None:
        j = (t[:, 1:-1] <= x[:, None]).sum(axis=1)
    rows = np.arange(t.shape[0])
    t0, t1 = t[rows, j], t[rows, j + 1]
    span = t1 - t0
    w = np.where(span > 0, (x - t0) / np.where(span > 0, span, 1.0), 0.0)
    out = []
    for v in values:
        v0, v1 = v[rows, j], v[rows, j + 1]
        out.append(v0 + w * (v1 - v0))
    return out


def locate(a: np.ndarray, x: np.ndarray, heparin_end: float) -> np.ndarray:
    """The interval of the :func:`grid` of ``a`` that holds ``x`` (per row)."""
    base = np.sort(np.append(_BOUNDARIES, heparin_end))
    x = np.clip(x, WINDOW_START, WINDOW_END)
    j = np.searchsorted(base, x, side="right") + (a <= x) - 1
    return np.clip(j, 0, base.size - 1)


def cumulative(rate: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cumulative hazard at the grid points of a piecewise-constant ``rate``."""
    out = np.zeros_like(t)
    np.cumsum(rate * (t[:, 1:] - t[:, :-1]), axis=1, out=out[:, 1:])
    return out


def _load(mid: np.ndarray, f: dict) -> np.ndarray:
    """Log peripartum load at times ``mid``: piecewise linear between knots."""
    return np.interp(mid, f["load_knots_months"], f["load_log"])


def hazards(
    course: dict[str, np.ndarray],
    loss: dict[str, np.ndarray],
    anchor: dict[str, np.ndarray],
    p: dict,
) -> dict[str, np.ndarray]:
    """Fracture hazard of each site in each interval, per month, at unit scale.

    Parameters
    ----------
    course : dict of arrays
        As :func:`loss_path`, plus ``log_rr_past``/``log_rr_future``: ``(P, 3)``
        log hazard ratios of the clinical factors for the three sites.
    loss : dict of arrays
        :func:`loss_path` of the same paths.
    anchor : dict of arrays
        ``bmd_spine``, ``bmd_hip`` (recorded BMD at ``a``, g/cm2; the femoral neck
        for the hip) and ``ref_spine``, ``ref_hip`` (``(mean, sd)`` tuples).
    p : dict
        The generator parameters.

    Returns
    -------
    dict
        ``vertebral``, ``hip``, ``other``: ``(P, 23)`` hazards; ``base_spine``,
        ``base_hip``: the pre-pregnancy BMD the record implies.
    """
    f = p["fracture"]
    t = course["t"]
    a = course["a"]
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    future = mid >= a[:, None]
    out: dict[str, np.ndarray] = {}
    z_mid = {}
    ja = locate(a, a, float(p["heparin"]["postpartum_months"]))
    L_at_a = values_at([loss["spine"], loss["hip"]], t, a, ja)
    for kind, L_a in zip(("spine", "hip"), L_at_a, strict=True):
        L = loss[kind]
        base = anchor[f"bmd_{kind}"] / (1.0 - L_a)
        mean, sd = anchor[f"ref_{kind}"]
        L_mid = 0.5 * (L[:, 1:] + L[:, :-1])
        z_mid[kind] = (base[:, None] * (1.0 - L_mid) - mean) / sd
        out[f"base_{kind}"] = base
        if kind == "spine":
            deficit = base[:, None] * L_mid / sd
    # The peripartum load and the turnover: her current spine loss rate relative to
    # the full lactational rate of a replete woman (remodelling transient).
    load = _load(mid, f) + f["turnover_log_hazard"] * (
        loss["rate_spine"] / p["lactation"]["spine_loss_per_month"]
    )
    young = f["young_extra_log_hazard_per_sd"]

    def log_rr(site: int) -> np.ndarray:
        # One site at a time: a (P, 23, 3) selection would be written and then read
        # back through strided views.
        return np.where(
            future,
            course["log_rr_future"][:, site, None],
            course["log_rr_past"][:, site, None],
        )

    zs, zh = z_mid["spine"], z_mid["hip"]
    vertebral = (
        load
        - (np.log(f["spine_rr_per_sd"]) + young) * zs
        + f["lactational_deficit_log_hazard_per_sd"] * deficit
        + log_rr(0)
    )
    hip = (
        load
        + np.log(f["hip_weight"])
        - (np.log(f["hip_rr_per_sd"]) + young) * zh
        + log_rr(1)
    )
    other = (
        load
        + np.log(f["other_weight"])
        - (np.log(f["other_rr_per_sd"]) + young) * zh
        + log_rr(2)
    )
    out["vertebral"] = np.exp(vertebral)
    out["hip"] = np.exp(hip)
    out["other"] = np.exp(other)
    return out


def full_rate_options(
    *,
    a: np.ndarray,
    lactating_ahead: np.ndarray,
    known_K: np.ndarray,
    W: np.ndarray,
    p: dict,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values the end of full-rate lactation ``K`` can take after ``a``.

    A woman who breastfeeds begins exclusively and amenorrheic; at the end of each
    month her menses return with probability ``q_menses`` and, if not, she stops
    breastfeeding exclusively (and her menses return) with probability
    ``q_exclusive_end`` (params.yaml ``lactation``). So the month ``K`` in which the
    full rate ends is geometric, and it is truncated at weaning and at the full-rate
    cap. Where it is already known (``lactating_ahead`` false) the only option is
    ``known_K``.

    Returns
    -------
    rows, K, weight : arrays
        One entry per (path, option): the index of the row, the value of ``K`` and
        its probability given the record; weights of a row sum to 1.
    """
    la = p["lactation"]
    cap = float(la["full_rate_cap_months"])
    s = la["q_menses"] + (1.0 - la["q_menses"]) * la["q_exclusive_end"]
    a = np.asarray(a, dtype=_DTYPE)
    # Full rate known through month m0 (the month of the assessment; month 0 for a
    # pregnant woman); K is at least m0 + 1 and at most min(W, cap).
    # At a whole month with amenorrhea_months == a her menses may have returned at
    # exactly ``a``: K >= ceil(a) (the tie is counted as amenorrheic).
    m0 = np.maximum(np.ceil(a) - 1.0, 0.0)
    kmax = np.minimum(W, cap)
    n_opt = np.where(lactating_ahead, np.maximum(kmax - m0, 1.0), 1.0).astype(np.int64)
    rows = np.repeat(np.arange(a.size), n_opt)
    first = np.cumsum(n_opt) - n_opt
    step = np.arange(rows.size) - np.repeat(first, n_opt)
    k = np.repeat(m0, n_opt) + 1.0 + step
    last = step == np.repeat(n_opt - 1, n_opt)
    weight = np.where(last, (1.0 - s) ** step, s * (1.0 - s) ** step)
    ahead = np.repeat(lactating_ahead, n_opt)
    K = np.where(
        ahead, np.minimum(k, np.repeat(kmax, n_opt)), np.repeat(known_K, n_opt)
    )
    weight = np.where(ahead, weight, 1.0)
    return rows, K, weight


def loss_at(
    course: dict[str, np.ndarray], p: dict
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """BMD lost by the assessment ``a`` (and whether she is losing then), in closed form.

    The same course as :func:`loss_path` without a grid: the losses run until the
    last of pregnancy, heparin and breastfeeding ends (``T_end``), then she regains
    down to the floor. Used to give her BMD at the assessment; the oracle works
    from the recorded BMD with :func:`loss_path`.
    """
    pr, hp, la, rc = p["pregnancy"], p["heparin"], p["lactation"], p["recovery"]
    a = course["a"]
    months = -WINDOW_START
    preg_total = pr["loss_mean"] * np.where(
        course["twins"], pr["multiple_gestation_multiplier"], 1.0
    )
    share = pr["third_trimester_share"]
    W, K = course["W"], course["K"]
    stop = np.where(course["heparin"], course["heparin_stop"], WINDOW_START)
    t_end = np.maximum(np.maximum(np.where(W > 0, W, 0.0), stop), 0.0)
    vitd = np.where(course["vitd_low_past"], la["vitamin_d_loss_multiplier"], 1.0)
    extra_g = np.clip(
        (course["calcium_past"] - rc["calcium_reference_mg"]) / 1000.0,
        0.0,
        rc["calcium_max_extra_g"],
    )
    regain_mult = 1.0 + rc["calcium_regain_gain_per_g"] * extra_g
    residual = np.minimum(
        rc["residual_deficit_per_month"]
        * np.maximum(W - rc["long_lactation_months"], 0.0),
        rc["residual_deficit_max"],
    )
    before = hp["start_months_before_delivery"] + WINDOW_START

    def lost_by(x: np.ndarray, kind: str) -> np.ndarray:
        hep = np.where(
            course["ufh_past"],
            hp[f"ufh_{kind}_loss_per_month"],
            hp[f"lmwh_{kind}_loss_per_month"],
        )
        preg = (
            preg_total * (1 - share)
            + preg_total * share * (np.clip(x, WINDOW_START, 0.0) + months) / months
        )
        heparin = np.where(
            course["heparin"],
            hep
            * (
                before + np.clip(np.minimum(x, stop), WINDOW_START, None) - WINDOW_START
            ),
            0.0,
        )
        y = np.maximum(x, 0.0)
        full = np.minimum(np.minimum(y, W), K)
        lact = (
            la[f"{kind}_loss_per_month"]
            * vitd
            * (full + la["slow_rate_factor"] * (np.minimum(y, W) - full))
        )
        return preg + heparin + lact

    out = {}
    for kind in _KINDS:
        peak = lost_by(t_end, kind)
        now = lost_by(np.minimum(a, t_end), kind)
        regain = (
            rc[f"{kind}_regain_per_month"] * regain_mult * np.maximum(a - t_end, 0.0)
        )
        out[kind] = np.where(
            a <= t_end, now, np.maximum(peak - regain, np.minimum(peak, residual))
        )
    return out, a < t_end

"""The first wave's generator (v1), frozen: one 0/1 outcome per episode, drawn once.

Kept only so that ``benchmarks/bench_generate.py`` can compare the throughput of the
event-history generator (:mod:`plo_risk.data.synthetic`) with it in the same run:
``generate_cohort_v1(n, ...)`` takes the arguments of the first wave's
``generate_cohort``. Its parameters are the first wave's, frozen in
``synthetic_v1_params.yaml`` beside this file (their sources are in the first
wave's format). Nothing else in the package uses it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from plo_risk.data.catalog import Catalog, Feature, load_catalog
from plo_risk.utils.config import ConfigError

__all__ = ["generate_cohort_v1"]

SETTINGS = ("population", "referral")
STYLES = ("clean", "registry")
MISSINGNESS = ("realistic", "none")
ID_COLUMN = "patient_id"
OUTCOME_COLUMN = "fracture"
ORACLE_COLUMN = "true_risk"
SAMPLE_PATH = Path("data") / "synthetic" / "sample_cohort.csv"
SAMPLE_ROWS = 2000
# Independent random streams per seed: core, markers, observation, outcome, registry.
# Missingness and style never change the cohort itself.
_N_STREAMS = 5

_SITES = {  # site suffix -> BMD field; loss/regain rates are "spine" or "hip"
    "lumbar_spine": "spine",
    "femoral_neck": "hip",
    "total_hip": "hip",
}
_CONDITIONS = (
    "heparin",
    "glucocorticoids",
    "mgso4_tocolysis",
    "hyperthyroidism",
    "anorexia_nervosa",
    "ibd_celiac",
)
_MARKERS = (
    "ctx",
    "p1np",
    "bap",
    "osteocalcin",
    "pth",
    "pthrp",
    "prolactin",
    "estradiol",
)
_RISK_FLAGS = (
    "family_history_osteoporosis",
    "genetic_variant",
    "prior_fragility_fracture",
) + _CONDITIONS
# The fields whose observation the "observation" section governs as a block.
_DXA_FIELDS = tuple(f"{p}_{s}" for s in _SITES for p in ("bmd", "t", "z"))


class ParamsError(ConfigError):
    """The frozen parameter file is malformed."""


_PARAMS = Path(__file__).with_name("synthetic_v1_params.yaml")


@lru_cache(maxsize=1)
def _frozen() -> tuple[dict[str, dict[str, Any]], str]:
    raw = _PARAMS.read_bytes()
    doc = yaml.safe_load(raw)
    values = {
        section: {name: entry["value"] for name, entry in entries.items()}
        for section, entries in doc.items()
    }
    return values, hashlib.sha256(raw).hexdigest()


def _parse_params(raw: bytes, where: str) -> tuple[dict[str, dict[str, Any]], str]:
    return _frozen()


def _params_for(params: Any) -> tuple[dict[str, dict[str, Any]], str]:
    return _frozen()


def default_params_path() -> Path:
    return _PARAMS


# ---------------------------------------------------------------- small helpers


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _odds_ratio(rr: float, p0: float) -> float:
    """The odds ratio that gives a published risk ratio ``rr`` at baseline risk ``p0``.

    Effects enter the generator on the log-odds scale, so a source's risk ratio is
    converted: ``OR = RR (1 - p0) / (1 - RR p0)``, the inverse of Zhang J, Yu KF.
    What's the relative risk? JAMA 1998;280:1690-1691. For a rare outcome (PLO
    fractures, 4.6e-4 of deliveries) the two differ by less than 0.1%.
    """
    if not rr * p0 < 1:
        raise ValueError(
            f"a risk ratio of {rr} is impossible at a baseline risk of {p0}"
        )
    return rr * (1.0 - p0) / (1.0 - rr * p0)


def _logit(p: float) -> float:
    return float(np.log(p) - np.log1p(-p))


def _gamma(rng: np.random.Generator, mean: float, sd: float, n: int) -> np.ndarray:
    """Gamma draws with the given mean and SD."""
    shape = (mean / sd) ** 2
    return rng.gamma(shape, sd**2 / mean, n)


def _lognormal(
    rng: np.random.Generator, median: float, sigma: float, n: int
) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def _by_ancestry(p: dict, mapping: dict[str, float]) -> np.ndarray:
    """Values of an ancestry mapping, indexed like the ancestry codes."""
    return np.asarray(
        [mapping[k] for k in p["demographics"]["ancestry_probs"]], dtype=float
    )


def _tilt(prob: float, odds: float) -> float:
    """Probability after multiplying the odds of ``prob`` by ``odds``."""
    return odds * prob / (1.0 - prob + odds * prob)


# ------------------------------------------------------------ 1. who she is


def _draw_reproductive(rng: np.random.Generator, n: int, p: dict) -> dict:
    d, r = p["demographics"], p["reproductive"]
    probs = np.asarray(d["parity_probs"], dtype=float)
    parity = rng.choice(len(probs), size=n, p=probs / probs.sum()) + 1.0
    tail = parity == len(probs)
    parity[tail] += rng.poisson(d["parity_tail_poisson_mean"], int(tail.sum()))
    parity = np.minimum(parity, d["parity_max"])
    age = rng.normal(
        d["age_mean_first_birth"] + d["age_step_per_birth"] * (parity - 1), d["age_sd"]
    )
    age = np.clip(age, d["age_min"], d["age_max"])
    names = list(d["ancestry_probs"])
    anc_p = np.asarray([d["ancestry_probs"][k] for k in names], dtype=float)
    ancestry = rng.choice(len(names), size=n, p=anc_p / anc_p.sum())
    multiple = rng.random(n) < r["multiple_gestation_prob"]
    ipi = np.clip(
        _lognormal(
            rng, r["interpregnancy_median_months"], r["interpregnancy_sigma_log"], n
        ),
        r["interpregnancy_min_months"],
        r["interpregnancy_max_months"],
    )
    ipi[parity == 1] = np.nan  # no earlier birth
    # Recorded to the output precision here, so everything derived from it agrees.
    t = np.round(
        rng.uniform(r["months_postpartum_min"], r["months_postpartum_max"], n),
        p["output"]["decimals"]["months_postpartum"],
    )
    return {
        "parity": parity,
        "age_years": age,
        "ancestry_code": ancestry,
        "multiple_gestation": multiple,
        "interpregnancy_interval_months": ipi,
        "months_postpartum": t,
    }


def _draw_conditions(rng: np.random.Generator, n: int, p: dict, setting: str) -> dict:
    """Medications, comorbidities, family history, variants (enriched in referral)."""
    c, fg, ref = p["comorbidity"], p["family_genetic"], p["referral"]
    enriched = set(ref["enriched_factors"]) if setting == "referral" else set()

    def prob(name: str, base: float) -> float:
        return _tilt(base, ref["risk_factor_odds"]) if name in enriched else base

    out = {name: rng.random(n) < prob(name, c[f"{name}_prob"]) for name in _CONDITIONS}
    variant = rng.random(n) < prob("genetic_variant", fg["variant_prob"])
    fh_p = np.where(
        variant,
        fg["family_history_prob_if_variant"],
        prob("family_history_osteoporosis", fg["family_history_prob"]),
    )
    out["genetic_variant"] = variant
    out["family_history_osteoporosis"] = rng.random(n) < fh_p
    return out


def _draw_lifestyle(
    rng: np.random.Generator, n: int, p: dict, ancestry: np.ndarray, cond: dict
) -> dict:
    nu, ls = p["nutrition"], p["lifestyle"]
    bmi = _lognormal(rng, nu["bmi_median"], nu["bmi_sigma_log"], n)
    bmi = np.where(cond["anorexia_nervosa"], bmi * nu["anorexia_bmi_factor"], bmi)
    bmi = np.clip(bmi, nu["bmi_min"], nu["bmi_max"])
    smoking = rng.random(n) < ls["smoking_prob"]
    drinks = rng.random(n) < ls["alcohol_any_prob"]
    alcohol = np.where(
        drinks, _gamma(rng, ls["alcohol_mean_units"], ls["alcohol_sd_units"], n), 0.0
    )
    alcohol = np.minimum(alcohol, ls["alcohol_max_units"])
    activity = np.minimum(
        _lognormal(rng, ls["activity_median_hours"], ls["activity_sigma_log"], n),
        ls["activity_max_hours"],
    )
    ca_diet = _lognormal(
        rng, nu["calcium_diet_median_mg"], nu["calcium_diet_sigma_log"], n
    )
    ca_supp = rng.random(n) < nu["calcium_supplement_prob"]
    ca_total = np.minimum(
        ca_diet + ca_supp * nu["calcium_supplement_mg"], nu["calcium_max_mg"]
    )
    vd_supp = rng.random(n) < nu["vitamin_d_supplement_prob"]
    anc_factor = _by_ancestry(p, nu["vitamin_d_ancestry_factor"])[ancestry]
    vitd = (
        _lognormal(rng, nu["vitamin_d_median_ng_ml"], nu["vitamin_d_sigma_log"], n)
        * anc_factor
        * np.where(vd_supp, nu["vitamin_d_supplement_factor"], 1.0)
        * np.where(cond["ibd_celiac"], nu["vitamin_d_ibd_factor"], 1.0)
    )
    vitd = np.minimum(vitd, nu["vitamin_d_max"])
    return {
        "bmi": bmi,
        "smoking": smoking,
        "alcohol_units_day": alcohol,
        "physical_activity_hours_week": activity,
        "calcium_diet_mg_day": ca_diet,
        "calcium_supplement": ca_supp,
        "calcium_intake_mg_day": ca_total,
        "vitamin_d_supplement": vd_supp,
        "vitamin_d_25oh": vitd,
    }


def _draw_lactation(
    rng: np.random.Generator, n: int, p: dict, t: np.ndarray, parity: np.ndarray
) -> dict:
    """This birth's breastfeeding plan and what has happened by the assessment."""
    la = p["lactation"]
    breastfeeds = rng.random(n) >= la["never_prob"]
    total = np.where(
        breastfeeds,
        np.minimum(
            _gamma(rng, la["duration_mean_months"], la["duration_sd_months"], n),
            la["duration_max_months"],
        ),
        0.0,
    )
    exclusive = np.minimum(
        total, _gamma(rng, la["exclusive_mean_months"], la["exclusive_sd_months"], n)
    )
    amen_nonlact = _gamma(
        rng,
        la["amenorrhea_nonlactating_mean_months"],
        la["amenorrhea_nonlactating_sd_months"],
        n,
    )
    amen_lact = np.minimum(
        exclusive
        + _gamma(
            rng, la["amenorrhea_extra_mean_months"], la["amenorrhea_extra_sd_months"], n
        ),
        total + la["amenorrhea_after_weaning_months"],
    )
    amenorrhea = np.where(
        breastfeeds, np.maximum(amen_lact, amen_nonlact), amen_nonlact
    )
    planned = total * np.exp(la["planned_noise_sigma_log"] * rng.standard_normal(n))
    # Earlier births: each breastfed with the same duration distribution.
    n_bf = rng.binomial((parity - 1).astype(np.int64), la["prior_breastfed_prob"])
    shape = (la["duration_mean_months"] / la["duration_sd_months"]) ** 2
    scale = la["duration_sd_months"] ** 2 / la["duration_mean_months"]
    prior = np.where(n_bf > 0, rng.gamma(np.maximum(shape * n_bf, 1e-9), scale), 0.0)
    since = np.maximum(t, 0.0)
    feeding_now = (t > 0) & (total > t)
    return {
        "lactation_total_months": total,
        "exclusive_total_months": exclusive,
        "amenorrhea_total_months": amenorrhea,
        "lactation_months": np.minimum(total, since),
        "breastfeeding_now": feeding_now,
        "lactation_planned_months": planned,
        "lactation_exclusive": feeding_now & (t < exclusive),
        "prior_lactation_months": prior,
        "amenorrhea_months": np.minimum(amenorrhea, since),
    }


# ------------------------------------------------------- 2. peak bone mass


def _peak_bone_mass(
    rng: np.random.Generator, n: int, p: dict, setting: str, x: dict
) -> dict:
    """Pre-pregnancy BMD Z (young-adult reference SDs) of each site."""
    b, nu, ls, ref = p["bone"], p["nutrition"], p["lifestyle"], p["referral"]
    # Referral tilts the latent normals: the skeleton-wide factor by the hip shift,
    # the spine's own factor by the rest of the spine shift.
    common_shift = spine_shift = 0.0
    if setting == "referral":
        common_shift = ref["hip_shift_sd"] / b["common_loading"]
        spine_shift = (ref["spine_shift_sd"] - ref["hip_shift_sd"]) / b[
            "spine_specific_sd"
        ]
    mu = _by_ancestry(p, b["ancestry_shift_sd"])[x["ancestry_code"]]
    bmi = np.clip(x["bmi"], b["bmi_effect_min"], b["bmi_effect_max"])
    mu = mu + b["bmi_per_unit_sd"] * (bmi - nu["bmi_median"])
    mu = mu + b["activity_per_log_hour_sd"] * (
        np.log1p(x["physical_activity_hours_week"])
        - np.log1p(ls["activity_median_hours"])
    )
    mu = mu + b["low_calcium_sd"] * (
        x["calcium_diet_mg_day"] < nu["low_calcium_threshold_mg"]
    )
    mu = mu + b["family_history_sd"] * x["family_history_osteoporosis"]
    mu = mu + b["variant_sd"] * x["genetic_variant"] + b["smoking_sd"] * x["smoking"]
    for name in _CONDITIONS:
        mu = mu + b[f"{name}_sd"] * x[name]
    common = mu + b["common_loading"] * (common_shift + rng.standard_normal(n))
    hip = b["hip_loading"] * rng.standard_normal(n)
    return {
        "lumbar_spine": common
        + b["spine_specific_sd"] * (spine_shift + rng.standard_normal(n)),
        "femoral_neck": common
        + hip
        + b["hip_site_specific_sd"] * rng.standard_normal(n),
        "total_hip": common + hip + b["hip_site_specific_sd"] * rng.standard_normal(n),
    }


# ---------------------------------------------------------- 3. BMD trajectory


def _loss_dynamics(rng: np.random.Generator, n: int, p: dict, x: dict) -> dict:
    """Person-level loss parameters shared by all sites."""
    pr, la, rc = p["pregnancy"], p["lactation"], p["recovery"]
    preg = np.clip(
        rng.normal(pr["loss_mean"], pr["loss_sd"], n), pr["loss_min"], pr["loss_max"]
    )
    preg = preg * np.where(
        x["multiple_gestation"], pr["multiple_gestation_multiplier"], 1.0
    )
    sigma = la["loss_rate_sigma_log"]
    rate_mult = np.exp(sigma * rng.standard_normal(n) - sigma**2 / 2)
    # Interaction: lactational loss is faster when 25(OH)D is low.
    rate_mult = rate_mult * np.where(
        x["vitamin_d_25oh"] < la["vitamin_d_threshold_ng_ml"],
        la["vitamin_d_loss_multiplier"],
        1.0,
    )
    total = x["lactation_total_months"]
    full = np.minimum(
        np.minimum(x["amenorrhea_total_months"], total), la["full_rate_cap_months"]
    )
    residual = np.where(
        total > rc["long_lactation_months"],
        rng.uniform(0.0, rc["residual_deficit_max"], n),
        0.0,
    )
    return {
        "pregnancy_loss": preg,
        "loss_rate_multiplier": rate_mult,
        "full_rate_months": full,
        "residual_deficit": residual,
    }


def _lactation_loss(
    months: np.ndarray, rate: np.ndarray, full: np.ndarray, slow: float
) -> np.ndarray:
    """Fraction of BMD lost after ``months`` of lactation (piecewise linear)."""
    return rate * (np.minimum(months, full) + slow * np.maximum(months - full, 0.0))


def _site_trajectory(p: dict, x: dict, dyn: dict, kind: str, t: np.ndarray) -> dict:
    """Loss fraction of one site at the assessment time and at the episode nadir."""
    la, r = p["lactation"], p["reproductive"]
    rate = la[f"{kind}_loss_per_month"] * dyn["loss_rate_multiplier"]
    regain = p["recovery"][f"{kind}_regain_per_month"]
    slow = la["slow_rate_factor"]
    total, full = x["lactation_total_months"], dyn["full_rate_months"]
    preg = dyn["pregnancy_loss"]
    trimester = -r["months_postpartum_min"]
    share = p["pregnancy"]["third_trimester_share"]
    at_weaning = preg + _lactation_loss(total, rate, full, slow)
    floor = np.minimum(dyn["residual_deficit"], at_weaning)
    since = np.maximum(t, 0.0)
    losing = preg + _lactation_loss(np.minimum(since, total), rate, full, slow)
    recovering = np.maximum(at_weaning - regain * (since - total), floor)
    in_pregnancy = preg * (1.0 - share * np.minimum(-t, trimester) / trimester)
    loss_now = np.where(
        t < 0, in_pregnancy, np.where(since <= total, losing, recovering)
    )
    window_end = r["months_postpartum_max"]
    nadir = np.maximum(
        preg * (1.0 - share),
        preg + _lactation_loss(np.minimum(total, window_end), rate, full, slow),
    )
    return {
        "loss_now": loss_now,
        "loss_nadir": nadir,
        "recovering": (t > total) & (t > 0) & (recovering > floor),
        "activity": np.where((t > 0) & (t < total), np.where(t < full, 1.0, slow), 0.0)
        * dyn["loss_rate_multiplier"],
    }


def _bone(
    rng: np.random.Generator, n: int, p: dict, setting: str, x: dict, catalog: Catalog
) -> dict:
    z0 = _peak_bone_mass(rng, n, p, setting, x)
    dyn = _loss_dynamics(rng, n, p, x)
    out: dict[str, np.ndarray] = dict(dyn)
    t = x["months_postpartum"]
    for site, kind in _SITES.items():
        mean, sd = catalog[f"bmd_{site}"].bmd_reference  # type: ignore[misc]
        base = mean + sd * z0[site]
        traj = _site_trajectory(p, x, dyn, kind, t)
        out[f"bmd_{site}_baseline"] = base
        out[f"bmd_{site}_delivery"] = base * (1.0 - dyn["pregnancy_loss"])
        out[f"bmd_{site}_latent"] = base * (1.0 - traj["loss_now"])
        out[f"bmd_{site}_nadir"] = base * (1.0 - traj["loss_nadir"])
        out[f"z_{site}_nadir"] = (out[f"bmd_{site}_nadir"] - mean) / sd
        out[f"lactational_deficit_{site}_sd"] = (
            base * np.maximum(traj["loss_nadir"] - dyn["pregnancy_loss"], 0.0) / sd
        )
        if kind == "spine":
            out["turnover_activity"] = traj["activity"]
            out["recovering"] = traj["recovering"]
    return out


def _prior_fracture(
    rng: np.random.Generator, n: int, p: dict, z_spine_baseline: np.ndarray
) -> np.ndarray:
    fg = p["family_genetic"]
    logit = (
        _logit(fg["prior_fracture_prob"])
        - np.log(_odds_ratio(fg["prior_fracture_rr_per_sd"], fg["prior_fracture_prob"]))
        * z_spine_baseline
    )
    return rng.random(n) < _expit(logit)


# ----------------------------------------------------------------- 4. risk

# The recorded fields the fracture log-odds reads (``_fracture_log_odds``).
_RISK_INPUTS = (
    "months_postpartum",
    "multiple_gestation",
    "parity",
    "lactation_months",
    "breastfeeding_now",
    "lactation_planned_months",
    "amenorrhea_months",
    "bmi",
    "vitamin_d_25oh",
    "smoking",
    "alcohol_units_day",
    "family_history_osteoporosis",
    "genetic_variant",
    "prior_fragility_fracture",
    "glucocorticoids",
    "bmd_lumbar_spine",
    "z_lumbar_spine",
    "bmd_femoral_neck",
    "z_femoral_neck",
)


def _recorded(feat: Feature, values: dict, p: dict, catalog: Catalog) -> np.ndarray:
    """The value of a (non-derived, non-category) field as the clean frame records it.

    Clipped to the catalog range (BMD: to the range whose T/Z stay inside theirs)
    and rounded to the output precision; not masked.
    """
    name = feat.name
    if name not in values:  # a field the catalog gained after v1: never true
        n = len(next(iter(values.values())))
        return np.zeros(n, dtype=bool) if feat.dtype == "bool" else np.full(n, np.nan)
    if feat.dtype == "bool":
        return np.asarray(values[name], dtype=bool)
    decimals = p["output"]["decimals"]
    v = np.asarray(values[name], dtype=float)
    lo, hi = feat.range  # type: ignore[misc]
    if feat.bmd_reference is not None:
        score_range = catalog.scores_of(name)[0].range
        lo, hi = _bmd_bounds(feat, score_range, decimals[name])
    v = np.clip(v, lo, hi)
    if name in decimals:
        v = np.clip(np.round(v, decimals[name]), lo, hi)
    return v


def _record(x: dict, p: dict, catalog: Catalog) -> dict[str, np.ndarray]:
    """The recorded (rounded, unmasked) values of the fields the risk reads."""
    values = dict(x)
    for site in _SITES:
        values[f"bmd_{site}"] = x[f"bmd_{site}_latent"]
    rec: dict[str, np.ndarray] = {}
    for name in _RISK_INPUTS:
        feat = catalog[name]
        if feat.derived_from is not None:
            mean, sd = catalog[feat.derived_from].bmd_reference  # type: ignore[misc]
            rec[name] = (rec[feat.derived_from] - mean) / sd  # as _clean_frame
        else:
            rec[name] = _recorded(feat, values, p, catalog)
    return rec


def _expected_course(p: dict, r: Any, catalog: Catalog) -> dict[str, np.ndarray]:
    """The rest of the episode a clinician expects from the record (deterministic).

    From the recorded fields only: the pregnancy loss still to come (third
    trimester: the mean loss times the share of the trimester left), and the
    lactation still to come until weaning as planned (pregnant or breastfeeding
    now), at most to the end of the window. Lactation loses the mean rate of the
    site, x the vitamin D multiplier if the recorded 25(OH)D is below the
    threshold; at the full rate while amenorrheic and within the first
    ``full_rate_cap_months``, at ``slow_rate_factor`` of it after (menses back:
    full rate up to the recorded ``amenorrhea_months``). Loss fractions are of the
    pre-pregnancy BMD, for which the recorded BMD stands in. The individual loss
    rate and the realised duration are not recorded and do not enter.
    """
    la, pr, rp = p["lactation"], p["pregnancy"], p["reproductive"]
    col = {name: np.asarray(r[name]) for name in _RISK_INPUTS}
    t = col["months_postpartum"].astype(float)
    since = np.maximum(t, 0.0)
    so_far = col["lactation_months"].astype(float)
    ongoing = (t < 0) | col["breastfeeding_now"].astype(bool)
    planned = col["lactation_planned_months"].astype(float)
    projected_total = np.where(ongoing, np.maximum(planned, so_far), so_far)
    by_window_end = np.minimum(projected_total, rp["months_postpartum_max"])
    amen = col["amenorrhea_months"].astype(float)
    cap, slow = la["full_rate_cap_months"], la["slow_rate_factor"]
    full = np.where((t > 0) & (amen < since), np.minimum(amen, cap), cap)
    low_d = col["vitamin_d_25oh"].astype(float) < la["vitamin_d_threshold_ng_ml"]
    vitd_mult = np.where(low_d, la["vitamin_d_loss_multiplier"], 1.0)
    trimester = -rp["months_postpartum_min"]
    preg_left = (
        pr["loss_mean"]
        * np.where(
            col["multiple_gestation"].astype(bool),
            pr["multiple_gestation_multiplier"],
            1.0,
        )
        * pr["third_trimester_share"]
        * np.minimum(np.maximum(-t, 0.0), trimester)
        / trimester
    )
    out = {"lactation_projected_months": projected_total}
    for site, kind in _SITES.items():
        if site == "total_hip":
            continue
        rate = la[f"{kind}_loss_per_month"] * vitd_mult
        lact_episode = _lactation_loss(by_window_end, rate, full, slow)
        lact_so_far = _lactation_loss(so_far, rate, full, slow)
        bmd = col[f"bmd_{site}"].astype(float)
        sd = catalog[f"bmd_{site}"].bmd_reference[1]  # type: ignore[index]
        further = preg_left + lact_episode - lact_so_far
        out[f"z_{site}_projected"] = col[f"z_{site}"].astype(float) - bmd * further / sd
        out[f"lactational_deficit_{site}_sd"] = bmd * lact_episode / sd
    return out


def _fracture_log_odds(p: dict, r: Any, catalog: Catalog) -> np.ndarray:
    """Log-odds of an episode fracture, without the intercept.

    A function of the recorded fields ``r`` (a mapping of arrays or a clean frame,
    every field of ``_RISK_INPUTS`` observed) and nothing else: the BMD a model
    sees, projected to the nadir of the episode with the expected further loss
    (``_expected_course``). Two fracture types add up on the risk scale: vertebral
    (driven by the projected spine nadir) and hip or other non-vertebral (driven by
    the projected femoral-neck nadir), each steeper below the threshold Z. At the
    spine the part of the deficit that lactation is expected to remove over the
    episode counts extra (trabecular microarchitecture). The clinical factors
    multiply both; 25(OH)D below 20 ng/mL multiplies the risk of women who
    breastfeed (so far plus as planned) long.
    """
    f = p["fracture"]
    course = _expected_course(p, r, catalog)
    # The sources give risk ratios; at the population risk they become odds ratios.
    p0 = p["prevalence"]["population"]

    def log_or(name: str) -> float:
        return float(np.log(_odds_ratio(f[name], p0)))

    def col(name: str) -> np.ndarray:
        return np.asarray(r[name], dtype=float)

    def site(z: np.ndarray, rr_per_sd: str) -> np.ndarray:
        return -log_or(rr_per_sd) * z + f["threshold_log_odds_per_sd"] * np.maximum(
            f["threshold_z"] - z, 0.0
        )

    spine = course["z_lumbar_spine_projected"] - (
        f["lactational_deficit_weight"] * course["lactational_deficit_lumbar_spine_sd"]
    )
    vertebral = site(spine, "spine_rr_per_sd")
    other = np.log(f["nonvertebral_weight"]) + site(
        course["z_femoral_neck_projected"], "hip_rr_per_sd"
    )
    eta = np.logaddexp(vertebral, other)
    eta += np.log(f["vitamin_d_lactation_or"]) * (
        (col("vitamin_d_25oh") < p["lactation"]["vitamin_d_threshold_ng_ml"])
        & (course["lactation_projected_months"] >= f["vitamin_d_lactation_min_months"])
    )
    eta += log_or("smoking_rr") * col("smoking")
    eta += log_or("glucocorticoids_rr") * col("glucocorticoids")
    eta += log_or("family_history_rr") * col("family_history_osteoporosis")
    eta += log_or("variant_rr") * col("genetic_variant")
    eta += log_or("parity_rr_per_birth") * (col("parity") - 1)
    eta += log_or("low_bmi_rr") * (col("bmi") < f["low_bmi_threshold"])
    eta += log_or("prior_fracture_rr") * col("prior_fragility_fracture")
    eta += log_or("alcohol_rr") * (
        col("alcohol_units_day") >= f["alcohol_threshold_units"]
    )
    return eta


def _draw_core(
    rng: np.random.Generator, n: int, p: dict, setting: str, catalog: Catalog
) -> dict:
    """Steps 1-3 and the log-odds: everything the risk depends on."""
    x = _draw_reproductive(rng, n, p)
    x.update(_draw_conditions(rng, n, p, setting))
    x.update(_draw_lifestyle(rng, n, p, x["ancestry_code"], x))
    x.update(_draw_lactation(rng, n, p, x["months_postpartum"], x["parity"]))
    x.update(_bone(rng, n, p, setting, x, catalog))
    x["prior_fragility_fracture"] = _prior_fracture(
        rng,
        n,
        p,
        (x["bmd_lumbar_spine_baseline"] - catalog["bmd_lumbar_spine"].bmd_reference[0])
        / catalog["bmd_lumbar_spine"].bmd_reference[1],
    )
    x["log_odds"] = _fracture_log_odds(p, _record(x, p, catalog), catalog)
    return x


def _solve_intercept(eta: np.ndarray, target: float) -> float:
    """Intercept a with mean(expit(a + eta)) == target (safeguarded Newton)."""
    lo, hi = -60.0, 60.0
    a = _logit(target) - float(np.median(eta))
    for _ in range(100):
        prob = _expit(a + eta)
        gap = float(prob.mean()) - target
        if abs(gap) <= 1e-12 * max(target, 1e-12) * 1e3:
            break
        if gap > 0:
            hi = a
        else:
            lo = a
        slope = float((prob * (1 - prob)).mean())
        step = a - gap / slope if slope > 0 else (lo + hi) / 2
        a = step if lo < step < hi else (lo + hi) / 2
    return a


@lru_cache(maxsize=32)
def _intercept(params_path: str, sha: str, setting: str, target: float) -> float:
    """Intercept that gives ``target`` prevalence in a fixed reference draw.

    Solved once per parameters, setting and target on a draw with its own seed, so
    the risk model (and the oracle) is the same whatever the caller's seed or n.
    """
    p = _parse_params(Path(params_path).read_bytes(), params_path)[0]
    cal = p["calibration"]
    rng = np.random.Generator(np.random.PCG64(cal["reference_seed"]))
    core = _draw_core(rng, int(cal["reference_n"]), p, setting, load_catalog())
    return _solve_intercept(core["log_odds"], target)


def _risk_from_record(
    frame: Any,
    params: str | Path | None = None,
    *,
    setting: str = "referral",
    prevalence: float | None = None,
) -> np.ndarray:
    """``true_risk`` recomputed from the recorded columns of a clean frame alone.

    Every field of ``_RISK_INPUTS`` must be observed (``missingness="none"``);
    where one is missing the result is NaN or wrong. ``setting``, ``prevalence``
    and ``params`` as given to :func:`generate_cohort`.
    """
    p, sha = _params_for(params)
    path = str(default_params_path())
    if prevalence is None:
        prevalence = (
            p["prevalence"]["population"]
            if setting == "population"
            else p["prevalence"]["referral_default"]
        )
    intercept = _intercept(path, sha, setting, float(prevalence))
    return _expit(intercept + _fracture_log_odds(p, frame, load_catalog()))


# ---------------------------------------------------------------- 5. markers


def _markers(rng: np.random.Generator, n: int, p: dict, x: dict) -> dict:
    """Bone-turnover markers and hormones at the assessment (Mishra et al. 2024, Table 1)."""
    m = p["markers"]
    t = x["months_postpartum"]
    preg = t < 0
    act = x["turnover_activity"]
    lact = x["breastfeeding_now"]
    excl = x["lactation_exclusive"]
    amen = (t > 0) & (t < x["amenorrhea_total_months"])
    recov = x["recovering"]
    hyper = np.where(x["hyperthyroidism"], m["hyperthyroidism_turnover_factor"], 1.0)
    gc_form = np.where(x["glucocorticoids"], m["glucocorticoids_formation_factor"], 1.0)
    rec_form = np.where(recov, m["formation_recovery_factor"], 1.0)

    def base(name: str) -> np.ndarray:
        return _lognormal(rng, m[f"{name}_median"], m[f"{name}_sigma_log"], n)

    def state(name: str) -> np.ndarray:
        return np.where(preg, m[f"{name}_pregnancy_factor"], 1.0) * (
            1.0 + m[f"{name}_lactation_gain"] * act
        )

    out = {
        "ctx": base("ctx") * state("ctx") * hyper,
        "p1np": base("p1np") * state("p1np") * hyper * gc_form * rec_form,
        "bap": base("bap") * state("bap") * hyper * gc_form * rec_form,
        "osteocalcin": base("osteocalcin") * state("osteocalcin") * hyper * gc_form,
        "pth": base("pth")
        * (x["vitamin_d_25oh"] / p["nutrition"]["vitamin_d_median_ng_ml"])
        ** m["pth_vitamin_d_exponent"]
        * np.where(preg, m["pth_pregnancy_factor"], 1.0)
        * np.where(lact, m["pth_lactation_factor"], 1.0),
        "pthrp": base("pthrp") * state("pthrp"),
        "prolactin": base("prolactin")
        * np.where(
            preg,
            m["prolactin_pregnancy_factor"],
            np.where(
                excl,
                m["prolactin_exclusive_factor"],
                np.where(lact, m["prolactin_partial_factor"], 1.0),
            ),
        ),
    }
    e2 = np.where(
        preg,
        _lognormal(
            rng, m["estradiol_pregnancy_median"], m["estradiol_pregnancy_sigma_log"], n
        ),
        np.where(amen, m["estradiol_amenorrhea_median"], m["estradiol_median"])
        * np.exp(m["estradiol_sigma_log"] * rng.standard_normal(n)),
    )
    out["estradiol"] = np.minimum(e2, m["estradiol_report_max"])
    return out


# ------------------------------------------------------------ 6. observation


def _observed(
    rng: np.random.Generator, n: int, p: dict, setting: str, x: dict, catalog: Catalog
) -> dict[str, np.ndarray]:
    """Boolean mask per catalog field: True where the value is recorded."""
    o = p["observation"]
    seen = {f.name: np.ones(n, dtype=bool) for f in catalog}
    for name, rate in o["field_missing"].items():
        if catalog[name].missing:
            seen[name] = rng.random(n) >= rate
    any_flag = np.zeros(n, dtype=bool)
    for name in _RISK_FLAGS:
        any_flag |= x[name]
    logit = (
        _logit(o["dxa_rate"][setting]) + np.log(o["dxa_risk_factor_odds"]) * any_flag
    )
    dxa = rng.random(n) < np.where(
        x["months_postpartum"] < 0, o["dxa_in_pregnancy"], _expit(logit)
    )
    hips = dxa & (rng.random(n) >= o["dxa_spine_only_prob"])
    for name in _DXA_FIELDS:
        seen[name] = dxa if name.endswith("lumbar_spine") else hips
    panel = rng.random(n) < o["marker_panel_rate"][setting]
    for name in _MARKERS:
        seen[name] = panel & (rng.random(n) < o["marker_in_panel"][name])
    seen["vitamin_d_25oh"] = rng.random(n) < o["vitamin_d_rate"][setting]
    seen["genetic_variant"] = rng.random(n) < o["genetic_test_rate"][setting]
    return seen


# -------------------------------------------------------------- the frame


def _bmd_bounds(
    feat: Feature, score_range: tuple[float, float], decimals: int
) -> tuple[float, float]:
    """BMD bounds inside the catalog range whose T/Z also stay inside theirs."""
    mean, sd = feat.bmd_reference  # type: ignore[misc]
    lo = max(feat.range[0], mean + score_range[0] * sd)  # type: ignore[index]
    hi = min(feat.range[1], mean + score_range[1] * sd)  # type: ignore[index]
    step = 10.0**-decimals
    return np.ceil(lo / step) * step + step, np.floor(hi / step) * step - step


def _clean_frame(
    x: dict,
    markers: dict,
    seen: dict,
    risk: np.ndarray,
    fracture: np.ndarray,
    p: dict,
    catalog: Catalog,
) -> pd.DataFrame:
    out = p["output"]
    n = len(risk)
    values = {**x, **markers}
    for site in _SITES:
        values[f"bmd_{site}"] = x[f"bmd_{site}_latent"]
    ids = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(out["id_digits"])
    cols: dict[str, Any] = {ID_COLUMN: (out["id_prefix"] + ids).to_numpy(dtype=object)}
    for feat in catalog:
        name = feat.name
        if feat.derived_from is not None:
            site = catalog[feat.derived_from]
            mean, sd = site.bmd_reference  # type: ignore[misc]
            cols[name] = (cols[site.name] - mean) / sd  # NaN where BMD is missing
            continue
        mask = seen[name]
        if feat.dtype == "bool":
            cols[name] = pd.arrays.BooleanArray(
                _recorded(feat, values, p, catalog), ~mask
            )
        elif feat.dtype == "category":
            labels = np.asarray(list(p["demographics"]["ancestry_probs"]), dtype=object)
            col = labels[values["ancestry_code"]]
            col[~mask] = np.nan
            cols[name] = col
        else:
            cols[name] = np.where(mask, _recorded(feat, values, p, catalog), np.nan)
    cols[OUTCOME_COLUMN] = fracture.astype(np.int64)
    cols[ORACLE_COLUMN] = risk
    return pd.DataFrame(cols)


def _simulate(
    n: int,
    *,
    setting: str = "referral",
    prevalence: float | None = None,
    missingness: str = "none",
    seed: int = 0,
    params: str | Path | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The clean cohort and the latent variables behind it.

    Returns the frame ``generate_cohort(..., style="clean")`` returns and a dict of
    latent arrays (``bmd_<site>_baseline`` pre-pregnancy, ``bmd_<site>_delivery``,
    ``bmd_<site>_nadir``, ``z_<site>_nadir``, ``lactation_total_months``,
    ``exclusive_total_months``, ``log_odds``, ``intercept``...), unrounded and
    unmasked. The latent nadir is the simulated one; the risk (``log_odds``) reads
    only the recorded fields (``_fracture_log_odds``).
    """
    p, sha = _params_for(params)
    path = str(default_params_path())
    catalog = load_catalog()
    if prevalence is None:
        prevalence = (
            p["prevalence"]["population"]
            if setting == "population"
            else p["prevalence"]["referral_default"]
        )
    intercept = _intercept(path, sha, setting, float(prevalence))
    core, marker_ss, observe_ss, outcome_ss, _ = np.random.SeedSequence(seed).spawn(
        _N_STREAMS
    )
    x = _draw_core(np.random.Generator(np.random.PCG64(core)), n, p, setting, catalog)
    risk = _expit(intercept + x["log_odds"])
    fracture = np.random.Generator(np.random.PCG64(outcome_ss)).random(n) < risk
    markers = _markers(np.random.Generator(np.random.PCG64(marker_ss)), n, p, x)
    if missingness == "none":
        seen = {f.name: np.ones(n, dtype=bool) for f in catalog}
    else:
        seen = _observed(
            np.random.Generator(np.random.PCG64(observe_ss)), n, p, setting, x, catalog
        )
    df = _clean_frame(x, markers, seen, risk, fracture, p, catalog)
    x["intercept"] = intercept
    return df, x


# ------------------------------------------------------------ registry style


def _bool_tokens(
    rng: np.random.Generator,
    values: pd.arrays.BooleanArray,
    hospital: np.ndarray,
    reg: dict,
) -> np.ndarray:
    n = len(values)
    truth = np.asarray(values.fillna(False), dtype=bool)
    missing = np.asarray(values.isna())
    out = np.empty(n, dtype=object)
    for h, tokens in reg["bool_tokens"].items():
        rows = hospital == h
        out[rows & truth] = tokens["true"]
        out[rows & ~truth] = tokens["false"]
    variants = reg["bool_variants"]
    swap = rng.random(n) < reg["bool_variant_rate"]
    for key, rows in (("true", swap & truth), ("false", swap & ~truth)):
        out[rows] = np.asarray(variants[key], dtype=object)[
            rng.integers(0, len(variants[key]), int(rows.sum()))
        ]
    out[missing] = np.nan
    token = missing & (rng.random(n) < reg["missing_token_rate"])
    out[token] = np.asarray(variants["missing"], dtype=object)[
        rng.integers(0, len(variants["missing"]), int(token.sum()))
    ]
    return out


def _category_tokens(
    rng: np.random.Generator, values: np.ndarray, reg: dict
) -> np.ndarray:
    n = len(values)
    out = np.empty(n, dtype=object)
    out[:] = np.nan
    for cat, spellings in reg["category_variants"].items():
        rows = np.flatnonzero(values == cat)
        # Mostly the hospital's usual spelling (the first), sometimes another one.
        pick = np.where(
            rng.random(len(rows)) < reg["category_variant_rate"],
            rng.integers(1, len(spellings), len(rows)),
            0,
        )
        out[rows] = np.asarray(spellings, dtype=object)[pick]
    missing = pd.isna(values)
    token = missing & (rng.random(n) < reg["missing_token_rate"])
    miss_tokens = reg["bool_variants"]["missing"]
    out[token] = np.asarray(miss_tokens, dtype=object)[
        rng.integers(0, len(miss_tokens), int(token.sum()))
    ]
    typo = ~missing & (rng.random(n) < reg["unmapped_typo_rate"])
    for i in np.flatnonzero(typo):
        word = out[i]
        k = int(rng.integers(0, len(word) - 1))
        out[i] = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
    return out


def _to_registry(
    df: pd.DataFrame, rng: np.random.Generator, p: dict, catalog: Catalog
) -> pd.DataFrame:
    """The clean frame as a messy registry extract (see params.yaml ``registry``)."""
    reg = p["registry"]
    n = len(df)
    names = list(reg["hospitals"])
    shares = np.asarray([reg["hospitals"][h] for h in names], dtype=float)
    hospital = np.asarray(names, dtype=object)[
        rng.choice(len(names), size=n, p=shares / shares.sum())
    ]
    block = (hospital == reg["block_hospital"]) & (rng.random(n) < reg["block_share"])
    rename, units, dec = reg["columns"], reg["column_units"], reg["decimals"]
    cols: dict[str, Any] = {
        reg["hospital_column"]: hospital,
        rename[ID_COLUMN]: df[ID_COLUMN].to_numpy(dtype=object),
    }
    for feat in catalog:
        name, col = feat.name, rename[feat.name]
        if feat.dtype == "bool":
            cols[col] = _bool_tokens(rng, df[name].array, hospital, reg)
        elif feat.dtype == "category":
            cols[col] = _category_tokens(rng, df[name].to_numpy(dtype=object), reg)
        else:
            v = df[name].to_numpy(dtype=float).copy()
            if name in units:
                v = v / feat.unit_factor(units[name])
            mixed = reg["mixed_units"].get(name)
            if mixed is not None:
                unit = np.full(n, mixed["default"], dtype=object)
                for h, u in mixed["by_hospital"].items():
                    rows = hospital == h
                    unit[rows] = u
                    v[rows] = v[rows] / feat.unit_factor(u)
            if name in dec:
                v = np.round(v, dec[name])
            if name in reg["block_fields"]:
                v[block] = np.nan
            if feat.dtype == "int" and not np.isnan(v).any():
                v = v.astype(np.int64)
            cols[col] = v
            if mixed is not None:
                unit[np.isnan(v)] = np.nan
                cols[mixed["unit_column"]] = unit
    cols[rename[OUTCOME_COLUMN]] = df[OUTCOME_COLUMN].to_numpy()
    cols[rename[ORACLE_COLUMN]] = df[ORACLE_COLUMN].to_numpy()
    out = pd.DataFrame(cols)
    return _add_duplicates(out, rng, p)


def _add_duplicates(
    out: pd.DataFrame, rng: np.random.Generator, p: dict
) -> pd.DataFrame:
    """Extract some patients twice: exact copies or near copies, a few rows later."""
    reg, rename = p["registry"], p["registry"]["columns"]
    n = len(out)
    dup = np.flatnonzero(rng.random(n) < reg["duplicate_rate"])
    copies = out.iloc[dup].copy()
    near = rng.random(len(dup)) < reg["near_duplicate_share"]
    digits = p["output"]["decimals"]["bmi"]
    bmi = copies[rename["bmi"]].to_numpy(dtype=float)
    nudge = rng.choice([-1.0, 1.0], len(dup)) * 10.0**-digits
    copies[rename["bmi"]] = np.where(near, np.round(bmi + nudge, digits), bmi)
    smoke = copies[rename["smoking"]].to_numpy(dtype=object)
    said_yes = np.isin(smoke, reg["bool_variants"]["true"])
    copies[rename["smoking"]] = np.where(near & said_yes, "Yes ", smoke)
    key = np.concatenate(
        [
            np.arange(n, dtype=float),
            dup + rng.uniform(0.5, reg["duplicate_max_lag"], len(dup)),
        ]
    )
    both = pd.concat([out, copies], ignore_index=True)
    return both.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


# ---------------------------------------------------------------- public API


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(
            f"The {name!r} parameter of generate_cohort must be one of {options}. "
            f"Got {value!r} instead."
        )


def _check_args(
    n: Any,
    setting: Any,
    prevalence: Any,
    style: Any,
    missingness: Any,
    seed: Any,
    params: Any,
) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(
            "The 'n' parameter of generate_cohort must be an int in the range "
            f"[1, inf). Got {n!r} instead."
        )
    _check_choice("setting", setting, SETTINGS)
    _check_choice("style", style, STYLES)
    _check_choice("missingness", missingness, MISSINGNESS)
    if prevalence is not None and (
        isinstance(prevalence, bool)
        or not isinstance(prevalence, (int, float, np.floating))
        or not 0.0 < float(prevalence) < 1.0
    ):
        raise ValueError(
            "The 'prevalence' parameter of generate_cohort must be None or a float "
            f"in the range (0, 1). Got {prevalence!r} instead."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            "The 'seed' parameter of generate_cohort must be an int in the range "
            f"[0, inf). Got {seed!r} instead."
        )
    if params is not None and not Path(params).is_file():
        raise ValueError(
            "The 'params' parameter of generate_cohort must be None or the path of "
            f"an existing params YAML file. Got {params!r} instead."
        )


def generate_cohort_v1(
    n: int,
    *,
    setting: str = "referral",
    prevalence: float | None = None,
    style: str = "clean",
    missingness: str = "realistic",
    seed: int = 0,
    params: str | Path | None = None,
) -> pd.DataFrame:
    """Draw a synthetic PLO cohort from the structural model.

    Parameters
    ----------
    n : int
        Number of patients (rows before registry duplicates).
    setting : {"population", "referral"}, default="referral"
        ``"population"``: all deliveries, real prevalence (4.6e-4). ``"referral"``:
        women referred for bone assessment (lower bone mass, more risk factors),
        enriched in fractures; their fracture log-odds is the population's shifted
        by a constant (see ``DATASHEET.md``).
    prevalence : float, default=None
        Target prevalence (mean ``true_risk``); ``None`` uses the setting's default
        from ``params.yaml`` (population 4.6e-4, referral 0.05).
    style : {"clean", "registry"}, default="clean"
        ``"clean"``: catalog columns in canonical units, ready for
        :func:`plo_risk.schema.validate_frame`. ``"registry"``: the same cohort as a
        messy extract (other names, alternate units, duplicates, typos, a missing
        block); the maps are in the ``registry`` section of ``params.yaml``.
    missingness : {"realistic", "none"}, default="realistic"
        ``"none"`` records every input (except the interpregnancy interval of a
        first birth, which does not exist).
    seed : int, default=0
        Same seed, same frame.
    params : str or Path, default=None
        Another params YAML; ``None`` uses the shipped one.

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, the catalog fields in catalog order, ``fracture`` (0/1) and
        ``true_risk`` (the generator's probability of fracture for the row).

    Raises
    ------
    ValueError
        If an argument is out of its allowed values (the message names it).

    """
    _check_args(n, setting, prevalence, style, missingness, seed, params)
    df, _ = _simulate(
        int(n),
        setting=setting,
        prevalence=prevalence,
        missingness=missingness,
        seed=int(seed),
        params=params,
    )
    if style == "registry":
        p, _ = _params_for(params)
        registry_ss = np.random.SeedSequence(int(seed)).spawn(_N_STREAMS)[-1]
        df = _to_registry(
            df, np.random.Generator(np.random.PCG64(registry_ss)), p, load_catalog()
        )
    return df

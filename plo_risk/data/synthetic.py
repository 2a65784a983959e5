"""The structural synthetic cohort generator, with event histories and an oracle.

One row is one pregnancy episode of one woman, lived month by month from the start
of the third trimester (month -3) to 18 months postpartum and assessed once, at
``months_postpartum``. The rows come from a causal chain, not from independent
columns (data/synthetic/DATASHEET.md):

1. who she is: parity, age, ancestry, conditions and medications (heparin, more
   often with a latent thrombophilia), BMI, lifestyle, calcium and vitamin D,
   family history and genetic variants;
2. her pre-pregnancy (peak) bone mass at the lumbar spine, femoral neck and total
   hip, set by the factors above;
3. her course (:mod:`plo_risk.data.episode`): third-trimester loss, heparin, the
   months of breastfeeding (full rate while exclusive and amenorrheic in the first
   6 months, slower after), recovery after weaning; her BMD at every moment;
4. what is recorded at the assessment: BMD and bone-turnover markers of that
   moment, and which fields are missing;
5. her fractures: a hazard per site and moment from that moment's BMD and the
   other factors (a thrombophilia raises it; after a first fracture later ones are
   likelier); the time, site and number of every fracture in the window;
6. the oracle: the true probability of a fracture after the assessment, at any
   horizon and under an intervention from the assessment on
   (:func:`counterfactual_risk`), a function of the record alone.

Every number comes from ``data/synthetic/params.yaml``, where each parameter carries
its source. The first wave's generator (one 0/1 outcome per episode, drawn once) is
kept frozen in ``benchmarks/v1/synthetic_v1.py`` for the speed benchmark.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, create_model, field_validator
from scipy.optimize import brentq

from plo_risk.data import episode as ep
from plo_risk.data.catalog import Catalog, Feature, load_catalog
from plo_risk.data.ingest.omop import to_omop
from plo_risk.data.literature import (
    Scorecard,
    check_statistics,
    default_literature_path,
    load_literature,
)
from plo_risk.utils.config import (
    ConfigError,
    ConfigModel,
    closest_name,
    parse_config,
    safe_yaml,
)
from plo_risk.utils.resources import REPO_ROOT, shipped_file

__all__ = [
    "EPISODE_INPUT_COLUMNS",
    "HORIZONS",
    "INTERVENTIONS",
    "OUTCOME_COLUMNS",
    "EpisodeHistories",
    "InterventionError",
    "SimulatedTrial",
    "TRIAL_ARMS",
    "ParamsError",
    "Scorecard",
    "counterfactual_risk",
    "default_params_path",
    "episode_histories",
    "expected_prevalence",
    "generate_cohort",
    "load_params",
    "oracle_risk",
    "params_schema",
    "reference_check",
    "shipped_reference_check",
    "simulated_trial",
    "to_omop",
    "write_reference_check",
    "write_sample",
]

SETTINGS = ("population", "referral")
STYLES = ("clean", "registry")
MISSINGNESS = ("realistic", "none")
OUTCOMES = ("all", "binary")
#: Horizons (months after the assessment) of the ``true_risk_<h>m`` columns.
HORIZONS = (3, 6, 12)
ID_COLUMN = "patient_id"
OUTCOME_COLUMN = "fracture"
ORACLE_COLUMN = "true_risk"
#: The outcome and oracle columns after the inputs (``outcomes="all"``).
OUTCOME_COLUMNS = (
    "fracture",
    "fracture_month",
    "fracture_site",
    "n_vertebral_fractures",
    "n_fractures",
    "true_risk",
    "true_risk_3m",
    "true_risk_6m",
    "true_risk_12m",
)
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
# Conditions drawn independently; each lowers peak bone mass (bone.<name>_sd).
_CONDITIONS = (
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
    "heparin",
    "family_history_osteoporosis",
    "genetic_variant",
    "prior_fragility_fracture",
) + _CONDITIONS
# The fields whose observation the "observation" section governs as a block.
_DXA_FIELDS = tuple(f"{p}_{s}" for s in _SITES for p in ("bmd", "t", "z"))


class ParamsError(ConfigError):
    """The generator's parameter file is malformed; lists every problem with the
    parameter's key path (``lactation.spine_loss_per_month``)."""


# ------------------------------------------------------------------- parameters


def default_params_path() -> Path:
    """Path of the generator parameters shipped with the package.

    Returns
    -------
    Path
        ``plo_risk/_data/params.yaml`` in a wheel, ``data/synthetic/params.yaml``
        in a checkout.
    """
    return shipped_file("params.yaml", Path("data") / "synthetic" / "params.yaml")


def load_params(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Load the generator parameters, values only.

    Parameters
    ----------
    path : str or Path, default=None
        A params YAML file; ``None`` loads the shipped one.

    Returns
    -------
    dict
        ``{section: {name: value}}``; the sources are checked and dropped.

    Raises
    ------
    ParamsError
        If a parameter is not a ``{value, source}`` mapping with a non-empty source.

    Examples
    --------
    >>> p = load_params()
    >>> p["prevalence"]["population"]
    0.00046
    """
    path = Path(path) if path is not None else default_params_path()
    raw = path.read_bytes()
    return copy.deepcopy(_parse_params(raw, str(path))[0])


class _Param(ConfigModel):
    """One parameter: its value and where the value comes from."""

    value: Any
    source: str

    @field_validator("source")
    @classmethod
    def _has_source(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("every parameter needs a non-empty source")
        return v


def _value_type(value: Any) -> Any:
    """The type a parameter's value must have, from the shipped file's value."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return Annotated[float, Field(allow_inf_nan=False)]
    if isinstance(value, str):
        return str
    if isinstance(value, list):
        if value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            return list[Annotated[float, Field(allow_inf_nan=False)]]
        return list[Any]
    if isinstance(value, dict):
        return dict[str, Any]
    return Any


@lru_cache(maxsize=1)
def params_schema() -> type[ConfigModel]:
    """The typed model of a parameter file: the sections, names and value types of
    the shipped ``params.yaml``, each parameter a ``{value, source}`` mapping.

    Every generator reads exactly these parameters, so a file with another name,
    a missing parameter or a value of another type is refused (every problem at
    once, unknown names with "did you mean").
    """
    shipped = yaml.safe_load(default_params_path().read_bytes())
    sections = {}
    for section, entries in shipped.items():
        fields = {}
        for name, entry in entries.items():
            param = create_model(
                f"Param_{section}_{name}",
                __base__=_Param,
                value=(_value_type(entry["value"]), ...),
            )
            fields[name] = (param, ...)
        sections[section] = (
            create_model(f"Params_{section}", __base__=ConfigModel, **fields),
            ...,
        )
    return create_model("GeneratorParams", __base__=ConfigModel, **sections)


@lru_cache(maxsize=8)
def _parse_params(raw: bytes, where: str) -> tuple[dict[str, dict[str, Any]], str]:
    try:
        doc = safe_yaml(raw, where)
    except ConfigError as exc:
        raise ParamsError(where, exc.problems) from None
    try:
        parsed = parse_config(params_schema(), doc, where)
    except ConfigError as exc:
        raise ParamsError(where, exc.problems) from None
    values = {
        section: {
            name: getattr(entries, name).value for name in type(entries).model_fields
        }
        for section, entries in (
            (s, getattr(parsed, s)) for s in type(parsed).model_fields
        )
    }
    return values, hashlib.sha256(raw).hexdigest()


def _params_for(params: str | Path | None) -> tuple[dict[str, dict[str, Any]], str]:
    path = Path(params) if params is not None else default_params_path()
    return _parse_params(path.read_bytes(), str(path))


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
        "age_delivery": age,
        "age_years": age + t / 12.0,  # age at the assessment
        "ancestry_code": ancestry,
        "multiple_gestation": multiple,
        "interpregnancy_interval_months": ipi,
        "months_postpartum": t,
    }


def _draw_conditions(rng: np.random.Generator, n: int, p: dict, setting: str) -> dict:
    """Medications, comorbidities, family history, variants (enriched in referral).

    Heparin is given to women with a thrombophilia far more often than to others,
    and the thrombophilia itself raises the fracture hazard (confounding on
    purpose: params.yaml ``heparin``, DATASHEET.md). The thrombophilia is latent.
    """
    c, fg, ref, hp = p["comorbidity"], p["family_genetic"], p["referral"], p["heparin"]
    enriched = set(ref["enriched_factors"]) if setting == "referral" else set()

    def prob(name: str, base: float) -> float:
        return _tilt(base, ref["risk_factor_odds"]) if name in enriched else base

    out = {name: rng.random(n) < prob(name, c[f"{name}_prob"]) for name in _CONDITIONS}
    thrombophilia = rng.random(n) < prob("thrombophilia", hp["thrombophilia_prob"])
    out["thrombophilia"] = thrombophilia
    out["heparin"] = rng.random(n) < _heparin_prob(p, thrombophilia)
    out["heparin_unfractionated"] = out["heparin"] & (
        rng.random(n) < hp["unfractionated_share"]
    )
    variant = rng.random(n) < prob("genetic_variant", fg["variant_prob"])
    fh_p = np.where(
        variant,
        fg["family_history_prob_if_variant"],
        prob("family_history_osteoporosis", fg["family_history_prob"]),
    )
    out["genetic_variant"] = variant
    out["family_history_osteoporosis"] = rng.random(n) < fh_p
    return out


def _heparin_prob(p: dict, thrombophilia: np.ndarray) -> np.ndarray:
    hp = p["heparin"]
    return np.where(
        thrombophilia, hp["heparin_prob_if_thrombophilia"], hp["heparin_prob_otherwise"]
    )


def _thrombophilia_prior(p: dict, setting: str) -> float:
    base = p["heparin"]["thrombophilia_prob"]
    ref = p["referral"]
    if setting == "referral" and "thrombophilia" in ref["enriched_factors"]:
        return _tilt(base, ref["risk_factor_odds"])
    return base


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
    """This birth's breastfeeding course and what has happened by the assessment.

    She weans when she planned to (a whole number of months; the plan is recorded).
    A woman who breastfeeds begins exclusively and amenorrheic; at the end of each
    month her menses return with probability ``q_menses``, and if not she stops
    breastfeeding exclusively with probability ``q_exclusive_end`` (her menses then
    return too). ``K``, the month in which the first of these happens (or weaning,
    or the full-rate cap), ends the full-rate lactational loss.
    """
    la = p["lactation"]
    breastfeeds = rng.random(n) >= la["never_prob"]
    total = np.clip(
        np.round(_gamma(rng, la["duration_mean_months"], la["duration_sd_months"], n)),
        1.0,
        la["duration_max_months"],
    )
    W = np.where(breastfeeds, total, 0.0)
    q_m, q_x = la["q_menses"], la["q_exclusive_end"]
    s = q_m + (1.0 - q_m) * q_x
    first = rng.geometric(s, n).astype(float)
    menses_first = rng.random(n) < q_m / s
    exclusive = np.minimum(
        np.where(menses_first, first + rng.geometric(q_x, n), first), W
    )
    weaned_amen = W + rng.geometric(la["q_menses_weaned"], n)
    amen = np.where(
        breastfeeds,
        np.where(first < W, first, weaned_amen),
        rng.geometric(la["q_menses_weaned"], n).astype(float),
    )
    K = np.where(
        breastfeeds, np.minimum(np.minimum(first, W), la["full_rate_cap_months"]), 0.0
    )
    # Earlier births: each breastfed with the same duration distribution.
    n_bf = rng.binomial((parity - 1).astype(np.int64), la["prior_breastfed_prob"])
    shape = (la["duration_mean_months"] / la["duration_sd_months"]) ** 2
    scale = la["duration_sd_months"] ** 2 / la["duration_mean_months"]
    prior = np.where(n_bf > 0, rng.gamma(np.maximum(shape * n_bf, 1e-9), scale), 0.0)
    since = np.maximum(t, 0.0)
    feeding_now = (t > 0) & (W > t)  # at delivery itself she has not begun
    return {
        "lactation_total_months": W,
        "exclusive_total_months": exclusive,
        "amenorrhea_total_months": amen,
        "full_rate_months": K,
        "lactation_months": np.minimum(W, since),
        "breastfeeding_now": feeding_now,
        "lactation_planned_months": W,
        "lactation_exclusive": feeding_now & (t < exclusive),
        "prior_lactation_months": prior,
        "amenorrhea_months": np.minimum(amen, since),
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


# ------------------------------------------- 3. the course and the record

# The recorded fields the oracle reads. The last two are not catalog fields yet
# (proposed); the frame carries them after the catalog fields.
_ORACLE_INPUTS = (
    "months_postpartum",
    "age_years",
    "parity",
    "multiple_gestation",
    "lactation_months",
    "breastfeeding_now",
    "lactation_planned_months",
    "lactation_exclusive",
    "amenorrhea_months",
    "bmi",
    "calcium_intake_mg_day",
    "vitamin_d_25oh",
    "smoking",
    "alcohol_units_day",
    "family_history_osteoporosis",
    "genetic_variant",
    "prior_fragility_fracture",
    "heparin",
    "glucocorticoids",
    "bmd_lumbar_spine",
    "bmd_femoral_neck",
)
_EPISODE_INPUTS = ("heparin_unfractionated", "fractured_this_episode")
#: Inputs the generator emits that are not in the catalog (yet): bool columns.
EPISODE_INPUT_COLUMNS = _EPISODE_INPUTS


def _recorded(feat: Feature, values: dict, p: dict, catalog: Catalog) -> np.ndarray:
    """The value of a (non-derived, non-category) field as the clean frame records it.

    Clipped to the catalog range (BMD: to the range whose T/Z stay inside theirs)
    and rounded to the output precision; not masked.
    """
    name = feat.name
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
    """The recorded (rounded, unmasked) values of the fields the oracle reads."""
    values = dict(x)
    for site in _SITES:
        values[f"bmd_{site}"] = x[f"bmd_{site}_latent"]
    rec: dict[str, np.ndarray] = {}
    for name in _ORACLE_INPUTS:
        rec[name] = _recorded(catalog[name], values, p, catalog)
    for name in _EPISODE_INPUTS:
        if name in x:
            rec[name] = np.asarray(x[name], dtype=bool)
    return rec


def _site_refs(catalog: Catalog) -> dict[str, tuple[float, float]]:
    return {
        "ref_spine": tuple(catalog["bmd_lumbar_spine"].bmd_reference),  # type: ignore[arg-type]
        "ref_hip": tuple(catalog["bmd_femoral_neck"].bmd_reference),  # type: ignore[arg-type]
    }


# What an intervention may change, and what it means from the assessment on.
INTERVENTIONS = {
    "breastfeeding_now": "False: she stops breastfeeding now (and the plan with it)",
    "lactation_planned_months": "total months of breastfeeding she now plans (>= so far)",
    "lactation_exclusive": "False: she stops breastfeeding exclusively now",
    "vitamin_d_25oh": "her 25(OH)D from now on, ng/mL (repletion)",
    "vitamin_d_supplement": "True/False: starts/stops a vitamin D supplement",
    "calcium_intake_mg_day": "her calcium intake from now on, mg/day",
    "calcium_supplement": "True/False: starts/stops a 500 mg calcium supplement",
    "smoking": "False: she stops smoking now",
    "alcohol_units_day": "her alcohol intake from now on, units/day",
    "bmi": "her BMI from now on",
    "physical_activity_hours_week": "activity before pregnancy: no forward effect",
    "heparin": "False: heparin stopped now",
    "heparin_unfractionated": "False: unfractionated heparin switched to LMWH now",
}


class InterventionError(ValueError):
    """An intervention the oracle cannot apply (names the field and the rows)."""


def _col(rec: Any, name: str, dtype: Any = float) -> np.ndarray:
    v = np.asarray(rec[name])
    if dtype is bool:
        return np.asarray(pd.array(v, dtype="boolean").fillna(False), dtype=bool)
    return v.astype(float)


def _switched(
    rec: dict[str, Any], changes: dict[str, Any], name: str, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """A yes/no intervention: (on after the change, on before it) per row."""
    on = np.asarray(_broadcast(changes[name], n, name), dtype=bool)
    was = _col(rec, name, bool) if name in rec else np.zeros(n, bool)
    return on, was


def _broadcast(value: Any, n: int, name: str) -> np.ndarray:
    v = np.asarray(value)
    if v.ndim == 0:
        return np.full(n, v.item())
    if v.shape != (n,):
        raise InterventionError(
            f"changes[{name!r}] must be a scalar or one value per row ({n}); got "
            f"shape {v.shape}"
        )
    return v


def _course_from_record(
    rec: Any, p: dict, changes: dict[str, Any] | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], tuple]:
    """The course after the assessment as the record implies, with the changes.

    Returns the per-row course inputs of :func:`episode.loss_path` (``K`` left out),
    the per-row hazard inputs and the options of ``K`` (rows, K, weight).
    """
    la, hp, f, nu = p["lactation"], p["heparin"], p["fracture"], p["nutrition"]
    changes = dict(changes or {})
    unknown = sorted(set(changes) - set(INTERVENTIONS))
    if unknown:
        close = closest_name(unknown[0], list(INTERVENTIONS))
        hint = f"; did you mean {close!r}?" if close else ""
        raise InterventionError(
            f"cannot intervene on {unknown[0]!r}{hint} (allowed: "
            + ", ".join(INTERVENTIONS)
            + ")"
        )
    a = _col(rec, "months_postpartum")
    n = a.size
    cap = float(la["full_rate_cap_months"])
    so_far = _col(rec, "lactation_months")
    bf_now = _col(rec, "breastfeeding_now", bool)
    planned = _col(rec, "lactation_planned_months")
    amen = _col(rec, "amenorrhea_months")
    excl = _col(rec, "lactation_exclusive", bool)
    pregnant = a <= 0  # at delivery all of her lactation is still ahead
    W = np.where(
        pregnant, planned, np.where(bf_now, np.maximum(planned, so_far), so_far)
    )
    amenorrheic = bf_now & (amen >= a - 1e-9)
    K_known = np.where(
        pregnant, 0.0, np.minimum(np.minimum(np.where(amenorrheic, a, amen), W), cap)
    )
    ahead = (pregnant & (W > 0)) | (amenorrheic & (a < cap))
    K_known = np.where(amenorrheic & (a >= cap), cap, K_known)
    # ---- the changes, from the assessment on
    if "lactation_planned_months" in changes:
        x = _broadcast(
            changes["lactation_planned_months"], n, "lactation_planned_months"
        )
        x = np.round(np.asarray(x, dtype=float))
        bad = ~pregnant & ~bf_now & (x > so_far + 1e-9)
        if bad.any():
            raise InterventionError(
                "lactation_planned_months: cannot restart breastfeeding for rows "
                f"{np.flatnonzero(bad)[:5].tolist()} (weaned or never breastfed)"
            )
        W = np.where(
            pregnant, np.maximum(x, 0.0), np.where(bf_now, np.maximum(x, a), W)
        )
    if "breastfeeding_now" in changes:
        stop = ~np.asarray(
            _broadcast(changes["breastfeeding_now"], n, "breastfeeding_now"), dtype=bool
        )
        restart = ~stop & ~bf_now & ~pregnant
        if restart.any():
            raise InterventionError(
                "breastfeeding_now=True: cannot restart breastfeeding for rows "
                f"{np.flatnonzero(restart)[:5].tolist()}"
            )
        W = np.where(
            stop, np.where(pregnant, 0.0, np.minimum(W, np.maximum(a, 0.0))), W
        )
    ahead = ahead & (W > np.maximum(a, 0.0))
    if "lactation_exclusive" in changes:
        end = ~np.asarray(
            _broadcast(changes["lactation_exclusive"], n, "lactation_exclusive"),
            dtype=bool,
        )
        start = ~end & ~excl
        if start.any():
            raise InterventionError(
                "lactation_exclusive=True: exclusive breastfeeding cannot restart "
                f"(rows {np.flatnonzero(start)[:5].tolist()})"
            )
        stop_now = end & (amenorrheic | pregnant)
        K_known = np.where(stop_now, np.maximum(a, 0.0), K_known)
        ahead = ahead & ~stop_now
    K_known = np.minimum(K_known, np.maximum(W, 0.0))
    vitd = _col(rec, "vitamin_d_25oh")
    vitd_f = vitd.copy()
    if "vitamin_d_supplement" in changes:
        on, was = _switched(rec, changes, "vitamin_d_supplement", n)
        factor = nu["vitamin_d_supplement_factor"]
        vitd_f = np.where(
            on & ~was, vitd * factor, np.where(~on & was, vitd / factor, vitd)
        )
    if "vitamin_d_25oh" in changes:
        vitd_f = np.asarray(
            _broadcast(changes["vitamin_d_25oh"], n, "vitamin_d_25oh"), dtype=float
        )
    calcium = _col(rec, "calcium_intake_mg_day")
    calcium_f = calcium.copy()
    if "calcium_supplement" in changes:
        on, was = _switched(rec, changes, "calcium_supplement", n)
        tab = nu["calcium_supplement_mg"]
        calcium_f = np.where(
            on & ~was,
            calcium + tab,
            np.where(~on & was, np.maximum(calcium - tab, 0.0), calcium),
        )
    if "calcium_intake_mg_day" in changes:
        calcium_f = np.asarray(
            _broadcast(changes["calcium_intake_mg_day"], n, "calcium_intake_mg_day"),
            dtype=float,
        )
    heparin = _col(rec, "heparin", bool)
    ufh = (
        _col(rec, "heparin_unfractionated", bool)
        if "heparin_unfractionated" in rec
        else np.zeros(n, bool)
    )
    ufh &= heparin
    ufh_f = ufh.copy()
    stop = np.full(n, float(hp["postpartum_months"]))
    if "heparin" in changes:
        v = np.asarray(_broadcast(changes["heparin"], n, "heparin"), dtype=bool)
        if (v & ~heparin).any():
            raise InterventionError("heparin=True: the oracle cannot start heparin")
        stop = np.where(~v & heparin, np.minimum(stop, a), stop)
    if "heparin_unfractionated" in changes:
        v = np.asarray(
            _broadcast(changes["heparin_unfractionated"], n, "heparin_unfractionated"),
            dtype=bool,
        )
        if (v & ~ufh).any():
            raise InterventionError(
                "heparin_unfractionated=True: the oracle cannot switch to unfractionated heparin"
            )
        ufh_f = ufh & v
    threshold = la["vitamin_d_threshold_ng_ml"]
    course = {
        "a": a,
        "twins": _col(rec, "multiple_gestation", bool),
        "heparin": heparin,
        "ufh_past": ufh,
        "ufh_future": ufh_f,
        "heparin_stop": stop,
        "W": np.maximum(W, 0.0),
        "vitd_low_past": vitd < threshold,
        "vitd_low_future": vitd_f < threshold,
        "calcium_past": calcium,
        "calcium_future": calcium_f,
    }
    # ---- the clinical factors of the hazard (log hazard ratios per site)
    smoking = _col(rec, "smoking", bool)
    smoking_f = smoking.copy()
    if "smoking" in changes:
        v = np.asarray(_broadcast(changes["smoking"], n, "smoking"), dtype=bool)
        if (v & ~smoking).any():
            raise InterventionError(
                "smoking=True: the oracle answers stopping, not starting"
            )
        smoking_f = smoking & v
    bmi = _col(rec, "bmi")
    bmi_f = (
        np.asarray(_broadcast(changes["bmi"], n, "bmi"), dtype=float)
        if "bmi" in changes
        else bmi
    )
    alc = _col(rec, "alcohol_units_day")
    alc_f = (
        np.asarray(
            _broadcast(changes["alcohol_units_day"], n, "alcohol_units_day"),
            dtype=float,
        )
        if "alcohol_units_day" in changes
        else alc
    )
    quit_ = smoking & ~smoking_f
    age_delivery = _col(rec, "age_years") - a / 12.0
    common = (
        np.log(f["glucocorticoids_rr"]) * _col(rec, "glucocorticoids", bool)
        + np.log(f["family_history_rr"])
        * _col(rec, "family_history_osteoporosis", bool)
        + np.log(f["variant_rr"]) * _col(rec, "genetic_variant", bool)
        + np.log(f["later_pregnancy_rr"]) * (_col(rec, "parity") >= 2)
        + np.log(f["prior_fracture_rr"]) * _col(rec, "prior_fragility_fracture", bool)
        + np.log(f["age_rr_per_year"]) * (age_delivery - f["age_reference_years"])
    )

    def site_terms(
        smk: np.ndarray, quit_now: np.ndarray, b: np.ndarray, al: np.ndarray
    ) -> np.ndarray:
        low_bmi = np.log(f["low_bmi_rr"]) * (b < f["low_bmi_threshold"])
        alcohol = np.log(f["alcohol_rr"]) * (al >= f["alcohol_threshold_units"])
        cols = []
        for site in ep.SITES:
            smoke = (
                np.log(f[f"smoking_{site}_rr"]) * (smk | quit_now)
                + np.log(f["smoking_stopped_rr"]) * quit_now
            )
            cols.append(common + smoke + low_bmi + alcohol)
        return np.column_stack(cols)

    course["log_rr_past"] = site_terms(smoking, np.zeros(n, bool), bmi, alc)
    course["log_rr_future"] = site_terms(smoking_f, quit_, bmi_f, alc_f)
    anchor = {
        "bmd_spine": _col(rec, "bmd_lumbar_spine"),
        "bmd_hip": _col(rec, "bmd_femoral_neck"),
    }
    options = ep.full_rate_options(
        a=a, lactating_ahead=ahead, known_K=K_known, W=course["W"], p=p
    )
    return course, anchor, options


# Paths per chunk: every step is row by row, so the size changes no number; at 8192
# a (chunk, 24) float64 array is 1.5 MB and a chunk's temporaries stay near cache.
_CHUNK = 8192


def _f32(v: np.ndarray) -> np.ndarray:
    return v.astype(np.float32) if v.dtype.kind == "f" else v


def _paths(
    course: dict[str, np.ndarray],
    anchor: dict[str, np.ndarray],
    refs: dict,
    options: tuple,
    p: dict,
    horizons: list[np.ndarray],
    events: dict | None = None,
    sites: bool = False,
) -> dict[str, Any]:
    """Cumulative hazards of every (row, K) option at unit scale.

    ``past``: the first-fracture cumulative hazard from -3 to ``a`` (per row);
    ``first``/``subsequent``: per option, the cumulative hazard from ``a`` to
    ``min(a + h, 18)`` for each horizon, of a first fracture and of a fracture after
    one. ``events`` (the generator only): per row the realized ``K``, the scale of
    her hazard and an Exp(1) draw; the first fracture of the episode is drawn on the
    option she lives, and the paths of the women who fracture are kept.
    """
    f = p["fracture"]
    rows, K, weight = options
    hp_end = float(p["heparin"]["postpartum_months"])
    r_v, r_o = f["subsequent_vertebral_rr"], f["subsequent_other_rr"]
    a_all = course["a"]
    n_h = len(horizons)
    first = np.empty((rows.size, n_h))
    subsequent = np.empty((rows.size, n_h))
    past = np.zeros(a_all.size)
    kept: list[dict[str, np.ndarray]] = []
    if sites:
        lo_w, hi_w = p["prevalence"]["population_window_months"]
        C1_points = np.empty((rows.size, 24))
        share_vh = np.empty((rows.size, 23))
    for lo in range(0, rows.size, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        r = rows[sl]
        # The path arrays are float32 (half the memory traffic); ``a`` and the
        # horizons stay float64.
        c = {k: _f32(v[r]) for k, v in course.items()}
        c["K"] = K[sl].astype(np.float32)
        c["a"] = course["a"][r]
        t = ep.grid(c["a"], hp_end).astype(np.float32)
        c["t"] = t
        loss = ep.loss_path(c, p)
        anc = {k: _f32(v[r]) for k, v in anchor.items()} | refs
        haz = ep.hazards(c, loss, anc, p)
        lam1 = haz["vertebral"] + haz["hip"] + haz["other"]
        lamr = r_v * haz["vertebral"] + r_o * (haz["hip"] + haz["other"])
        C1 = ep.cumulative(lam1, t)
        Cr = ep.cumulative(lamr, t)
        a = c["a"]
        ja = ep.locate(a, a, hp_end)
        at1, atr = ep.values_at([C1, Cr], t, a, ja)
        past[r] = at1
        if sites:
            C1_points[sl] = C1
            inside = (t[:, :-1] >= lo_w) & (t[:, 1:] <= hi_w)
            share_vh[sl] = np.where(inside, (haz["vertebral"] + haz["hip"]) / lam1, 0.0)
        for i, h in enumerate(horizons):
            x = np.minimum(a + h[r], ep.WINDOW_END)
            jx = ep.locate(a, x, hp_end)
            at_x1, at_xr = ep.values_at([C1, Cr], t, x, jx)
            first[sl, i] = np.maximum(at_x1 - at1, 0.0)
            subsequent[sl, i] = np.maximum(at_xr - atr, 0.0)
        if events is not None:
            lived = c["K"] == events["K"][r]
            total = C1[:, -1] * events["scale"][r]
            hit = lived & (events["e1"][r] < total)
            if hit.any():
                kept.append(
                    {
                        "row": r[hit],
                        "t": t[hit],
                        "C1": C1[hit],
                        "Cr": Cr[hit],
                        "vertebral": haz["vertebral"][hit],
                        "hip": haz["hip"][hit],
                        "other": haz["other"][hit],
                        "base_spine": haz["base_spine"][hit],
                        "L_spine": loss["spine"][hit],
                    }
                )
    out: dict[str, Any] = {"past": past, "first": first, "subsequent": subsequent}
    if sites:
        out["C1_points"] = C1_points
        out["share_vh"] = share_vh
    if events is not None:
        keys = (
            "row",
            "t",
            "C1",
            "Cr",
            "vertebral",
            "hip",
            "other",
            "base_spine",
            "L_spine",
        )
        if kept:
            out["kept"] = {k: np.concatenate([d[k] for d in kept]) for k in keys}
        else:
            shapes = {"row": (0,), "base_spine": (0,)}
            out["kept"] = {
                k: np.empty(
                    shapes.get(k, (0, 24 if k in ("t", "C1", "Cr", "L_spine") else 23))
                )
                for k in keys
            }
            out["kept"]["row"] = out["kept"]["row"].astype(np.int64)
    return out


def _combine(
    q: dict[str, Any],
    options: tuple,
    fractured: np.ndarray,
    heparin: np.ndarray,
    scale: float,
    p: dict,
    setting: str,
) -> np.ndarray:
    """The oracle's risk per row and horizon from the option hazards.

    The thrombophilia is latent: its posterior given the record (heparin and
    whether she has fractured in this episode so far) weights the two hazards. The
    options of ``K`` are weighted by their probability given the record.
    """
    rows, _, weight = options
    f = p["fracture"]
    m1 = f["thrombophilia_rr"]
    prior = _thrombophilia_prior(p, setting)
    hep1 = _heparin_prob(p, np.ones(1, bool))[0]
    hep0 = _heparin_prob(p, np.zeros(1, bool))[0]
    lam_past = scale * q["past"]
    like = {}
    for name, m, pt, ph in (("t1", m1, prior, hep1), ("t0", 1.0, 1.0 - prior, hep0)):
        s_past = np.exp(-m * lam_past)
        fx = np.where(fractured, -np.expm1(-m * lam_past), s_past)
        like[name] = pt * np.where(heparin, ph, 1.0 - ph) * fx
    w1 = like["t1"] / (like["t1"] + like["t0"])
    fut = np.where(fractured[rows, None], q["subsequent"], q["first"]) * scale
    w1r = w1[rows, None]
    risk_opt = w1r * -np.expm1(-m1 * fut) + (1.0 - w1r) * -np.expm1(-fut)
    n = fractured.size
    out = np.zeros((n, fut.shape[1]))
    for i in range(fut.shape[1]):
        out[:, i] = np.bincount(rows, weights=weight * risk_opt[:, i], minlength=n)
    return np.clip(out, 0.0, 1.0)


def _draw_core(
    rng: np.random.Generator, n: int, p: dict, setting: str, catalog: Catalog
) -> dict:
    """Steps 1-3: who she is, her course, her bones, and what is recorded of them."""
    x = _draw_reproductive(rng, n, p)
    x.update(_draw_conditions(rng, n, p, setting))
    x.update(_draw_lifestyle(rng, n, p, x["ancestry_code"], x))
    x.update(_draw_lactation(rng, n, p, x["months_postpartum"], x["parity"]))
    z0 = _peak_bone_mass(rng, n, p, setting, x)
    x["prior_fragility_fracture"] = _prior_fracture(rng, n, p, z0["lumbar_spine"])
    # The realized course up to the assessment: the BMD she has when she is seen.
    a = x["months_postpartum"]
    vitd_low = x["vitamin_d_25oh"] < p["lactation"]["vitamin_d_threshold_ng_ml"]
    course = {
        "a": a,
        "twins": x["multiple_gestation"],
        "heparin": x["heparin"],
        "ufh_past": x["heparin_unfractionated"],
        "ufh_future": x["heparin_unfractionated"],
        "heparin_stop": np.full(n, float(p["heparin"]["postpartum_months"])),
        "W": x["lactation_total_months"],
        "K": x["full_rate_months"],
        "vitd_low_past": vitd_low,
        "vitd_low_future": vitd_low,
        "calcium_past": x["calcium_intake_mg_day"],
        "calcium_future": x["calcium_intake_mg_day"],
    }
    loss_a, active_a = ep.loss_at(course, p)
    for site, kind in _SITES.items():
        mean, sd = catalog[f"bmd_{site}"].bmd_reference  # type: ignore[misc]
        base = mean + sd * z0[site]
        x[f"bmd_{site}_baseline"] = base
        x[f"bmd_{site}_latent"] = base * (1.0 - loss_a[kind])
    x["loss_spine_at_assessment"] = loss_a["spine"]
    x["loss_hip_at_assessment"] = loss_a["hip"]
    # Turnover at the assessment (drives the markers): her lactational loss rate
    # relative to the full rate of a replete woman, and whether she is recovering.
    la = p["lactation"]
    feeding = x["breastfeeding_now"]
    x["turnover_activity"] = np.where(
        feeding,
        np.where(a < x["full_rate_months"], 1.0, la["slow_rate_factor"])
        * np.where(vitd_low, la["vitamin_d_loss_multiplier"], 1.0),
        0.0,
    )
    x["recovering"] = (a >= 0) & ~active_a & (loss_a["spine"] > 1e-4)
    x["record"] = _record(x, p, catalog)
    x["record"]["heparin_unfractionated"] = np.asarray(
        x["heparin_unfractionated"], bool
    )
    return x


def _hazard_scale(x: dict, base: float, p: dict) -> np.ndarray:
    """Her hazard multiplier: the setting's scale times the thrombophilia ratio."""
    return base * np.where(x["thrombophilia"], p["fracture"]["thrombophilia_rr"], 1.0)


def _draw_events(
    kept: dict[str, np.ndarray],
    e1: np.ndarray,
    scale: np.ndarray,
    rng: np.random.Generator,
    p: dict,
    refs: dict,
) -> pd.DataFrame:
    """Every fracture of the episode of the women who fracture: one row per event.

    The first fracture is at the time her cumulative first-fracture hazard reaches
    her Exp(1) draw; after it her hazards are multiplied by the subsequent-fracture
    ratios and the later fractures are a Poisson process on the rest of the window.
    The site of each event is drawn in proportion to the site hazards at that time;
    a vertebral event fractures 1 + Poisson vertebrae.
    """
    f = p["fracture"]
    rows = kept["row"]
    t = kept["t"]
    C1, Cr = kept["C1"], kept["Cr"]
    haz = (kept["vertebral"], kept["hip"], kept["other"])
    idx = np.arange(rows.size)
    s = scale[rows]
    target = e1[rows] / s
    j = (C1[:, 1:-1] <= target[:, None]).sum(axis=1)
    dt = t[idx, j + 1] - t[idx, j]
    rate = (C1[idx, j + 1] - C1[idx, j]) / np.where(dt > 0, dt, 1.0)
    t1 = t[idx, j] + (target - C1[idx, j]) / np.where(rate > 0, rate, np.inf)
    t1 = np.clip(t1, t[idx, j], t[idx, j + 1])
    site1 = _pick_site(rng, *(h[idx, j] for h in haz))
    mean, sd = refs["ref_spine"]
    z_points = (kept["base_spine"][:, None] * (1.0 - kept["L_spine"]) - mean) / sd
    # cr1: later fractures are Poisson on (t1, 18] with the subsequent hazard.
    z1, cr1 = ep.values_at([z_points, Cr], t, t1)
    cr_end = Cr[:, -1]
    n_more = rng.poisson(s * np.maximum(cr_end - cr1, 0.0))
    more = np.repeat(idx, n_more)
    u = rng.uniform(cr1[more], cr_end[more])
    site_draw = rng.random(more.size)
    ratio = (
        f["subsequent_vertebral_rr"],
        f["subsequent_other_rr"],
        f["subsequent_other_rr"],
    )
    t2, site2, z2 = _later_events(t, Cr, z_points, haz, ratio, more, u, site_draw)
    row = np.concatenate([rows, rows[more]])
    month = np.concatenate([t1, t2])
    # By row, then month, ties in the order above (a first event before later
    # ones): np.lexsort((month, row)) in one stable sort, ~4x faster.
    key = np.empty(row.size, dtype=np.complex128)
    key.real, key.imag = row, month
    order = np.argsort(key, kind="stable")
    row, month = row[order], month[order]
    site = np.concatenate([site1, site2])[order]
    first = np.concatenate([np.ones(rows.size, bool), np.zeros(more.size, bool)])[order]
    z = np.concatenate([z1, z2])[order]
    vertebral = site == 0
    # The steps below work in place (millions of events; fresh memory is what
    # costs): the same operations as the whole-array expressions in the comments.
    # More vertebrae fracture at once when the spine is weaker:
    # mean_v = mean * exp(log_mean_per_sd * clip(reference_z - z, -3, 3))
    mean_v = f["vertebrae_reference_z"] - z
    np.clip(mean_v, -3, 3, out=mean_v)
    mean_v *= f["vertebrae_log_mean_per_sd"]
    np.exp(mean_v, out=mean_v)
    mean_v *= f["vertebrae_per_event_poisson_mean"]
    # n_vert = where(vertebral, 1 + minimum(poisson(mean_v), vertebrae_max - 1), 0)
    n_vert = np.minimum(rng.poisson(mean_v), f["vertebrae_max"] - 1)
    n_vert += 1
    n_vert *= vertebral
    # A spine has only so many vertebrae: once she has vertebrae_max vertebral
    # fractures a later vertebral event (a fractured vertebra collapsing further)
    # counts one. The events themselves all stay: the oracle's hazard holds them.
    starts = (
        np.flatnonzero(np.r_[True, row[1:] != row[:-1]]) if row.size else starts_empty()
    )
    # before: her vertebrae fractured in earlier events (cumsum within her events)
    before = np.cumsum(n_vert)
    before -= n_vert
    before -= np.repeat(before[starts], np.diff(np.r_[starts, row.size]))
    # n_vert = where(vertebral, maximum(minimum(n_vert, room), 1), 0) with
    # room = maximum(vertebrae_max - before, 0)
    room = np.subtract(f["vertebrae_max"], before, out=before)
    np.maximum(room, 0, out=room)
    np.minimum(n_vert, room, out=n_vert)
    np.maximum(n_vert, 1, out=n_vert)
    n_vert *= vertebral
    # The site names as pandas would infer them from an object array (``str`` on
    # pandas 3, object before), taken from three values instead of inferred from
    # millions; the arrays are fresh, so the frame need not copy them.
    names = pd.Series(np.asarray(ep.SITES, dtype=object)).array
    return pd.DataFrame(
        {
            "row": row,
            "month": month,
            "site": names.take(site),
            "first": first,
            "z_lumbar_spine": z,
            "n_vertebrae": n_vert,
            "n_fractures": np.where(vertebral, n_vert, 1),
        },
        copy=False,
    )


def starts_empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _pick_site(
    rng: np.random.Generator, vertebral: np.ndarray, hip: np.ndarray, other: np.ndarray
) -> np.ndarray:
    """Site index per event, drawn in proportion to the three site hazards."""
    return _site_of(rng.random(vertebral.shape[0]), vertebral, hip, other)


def _site_of(
    draw: np.ndarray, vertebral: np.ndarray, hip: np.ndarray, other: np.ndarray
) -> np.ndarray:
    """The site of a uniform draw on [0, 1) among the three site hazards."""
    # The running sums of np.cumsum over the sites, added in the same order.
    upto_hip = vertebral + hip
    u = draw * (upto_hip + other)
    return (vertebral <= u).astype(np.int64) + (upto_hip <= u)


def _later_events(
    t: np.ndarray,
    Cr: np.ndarray,
    z_points: np.ndarray,
    haz: tuple[np.ndarray, ...],
    ratio: tuple[float, ...],
    more: np.ndarray,
    u: np.ndarray,
    site_draw: np.ndarray,
    block: int = 1 << 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time, site and spine Z of the later fractures, from their draws.

    Event ``i`` is on path ``more[i]``; it happens when that path's ``Cr`` reaches
    ``u[i]``, and ``site_draw[i]`` picks its site among the site hazards times
    ``ratio``. Each event is worked out alone, in blocks: a million referral rows
    have ~4.6 million later events, and whole-array temporaries (or a copy of each
    event's path) would be tens of MB each, every one fresh zeroed memory.
    """
    n_pts = t.shape[1]
    columns = np.ascontiguousarray(Cr[:, 1:-1].T)
    t_flat, cr_flat, z_flat = t.ravel(), Cr.ravel(), z_points.ravel()
    haz_flat = [h.ravel() for h in haz]
    t2 = np.empty(more.size)
    z2 = np.empty(more.size)
    site2 = np.empty(more.size, dtype=np.int64)
    for lo in range(0, more.size, block):
        sl = slice(lo, lo + block)
        rows, v = more[sl], u[sl]
        # the interval of v: (Cr[rows, 1:-1] <= v[:, None]).sum(axis=1)
        j = np.zeros(rows.size, dtype=np.int64)
        for column in columns:
            j += column[rows] <= v
        at = rows * n_pts + j
        ta, tb = t_flat[at], t_flat[at + 1]
        ca, cb = cr_flat[at], cr_flat[at + 1]
        dt = tb - ta
        rate = (cb - ca) / np.where(dt > 0, dt, 1.0)
        tx = np.clip(ta + (v - ca) / np.where(rate > 0, rate, np.inf), ta, tb)
        t2[sl] = tx
        at_haz = rows * (n_pts - 1) + j
        site2[sl] = _site_of(
            site_draw[sl],
            *(
                np.asarray(h[at_haz], dtype=np.float64) * r
                for h, r in zip(haz_flat, ratio, strict=True)
            ),
        )
        w = np.where(dt > 0, (tx - ta) / np.where(dt > 0, dt, 1.0), 0.0)
        za, zb = z_flat[at], z_flat[at + 1]
        z2[sl] = za + w * (zb - za)
    return t2, site2, z2


def _outcomes(events: pd.DataFrame, a: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The outcome after the assessment and the history before it, per row."""
    rows = events["row"].to_numpy()
    month = events["month"].to_numpy()
    before = np.zeros(n, dtype=bool)
    before[rows[month <= a[rows]]] = True
    after = month > a[rows]
    out = {
        "fractured_this_episode": before,
        "fracture": np.zeros(n, dtype=np.int64),
        "fracture_month": np.full(n, ep.WINDOW_END),
        "fracture_site": np.full(n, None, dtype=object),
        "n_vertebral_fractures": np.zeros(n, dtype=np.int64),
        "n_fractures": np.zeros(n, dtype=np.int64),
    }
    ar = rows[after]
    if ar.size:
        uniq, first = np.unique(ar, return_index=True)  # events are sorted by time
        sub = events[after]
        out["fracture"][uniq] = 1
        out["fracture_month"][uniq] = sub["month"].to_numpy()[first]
        out["fracture_site"][uniq] = sub["site"].to_numpy()[first]
        out["n_vertebral_fractures"][uniq] = sub["n_vertebrae"].to_numpy()[first]
        np.add.at(out["n_fractures"], ar, sub["n_fractures"].to_numpy())
    return out


# ------------------------------------------------------------- calibration


def _episode_quantities(
    x: dict, p: dict, catalog: Catalog, *, oracle: bool
) -> tuple[dict, tuple, dict[str, Any]]:
    """Course options and their cumulative hazards at unit scale for a draw."""
    rec = x["record"]
    course, anchor, options = _course_from_record(rec, p, None)
    if not oracle:  # the course she lives only
        rows = np.arange(rec["months_postpartum"].size)
        options = (rows, x["full_rate_months"].astype(float), np.ones(rows.size))
    return course, anchor, options


@lru_cache(maxsize=4)
def _reference(params_path: str, sha: str, setting: str) -> dict[str, np.ndarray]:
    """Unit-scale hazards of a fixed reference draw (its own seed), per setting."""
    p = _parse_params(Path(params_path).read_bytes(), params_path)[0]
    cal = p["calibration"]
    catalog = load_catalog()
    rng = np.random.Generator(np.random.PCG64(cal["reference_seed"]))
    n = int(cal["reference_n"])
    x = _draw_core(rng, n, p, setting, catalog)
    course, anchor, options = _episode_quantities(x, p, catalog, oracle=False)
    a = course["a"]
    lo, hi = p["prevalence"]["population_window_months"]
    horizons = [ep.WINDOW_END - a, np.maximum(lo - a, 0.0), np.maximum(hi - a, 0.0)]
    q = _paths(course, anchor, _site_refs(catalog), options, p, horizons, sites=True)
    return {
        "m": np.where(x["thrombophilia"], p["fracture"]["thrombophilia_rr"], 1.0),
        "past": q["past"],
        "first_end": q["first"][:, 0],
        "sub_end": q["subsequent"][:, 0],
        "site_share_vh": q["share_vh"],
        "C1": q["C1_points"],
    }


def _solve(fun, target: float) -> float:
    """log-scale ``s`` with ``fun(s) == target`` (``fun`` increasing in ``s``)."""
    lo, hi = -40.0, 20.0
    return float(brentq(lambda s: fun(s) - target, lo, hi, xtol=1e-10, rtol=1e-12))


@lru_cache(maxsize=32)
def _log_scale(params_path: str, sha: str, setting: str, target: float | None) -> float:
    """The log hazard scale of a setting.

    The population's is solved so that the share of episodes with a vertebral or hip
    fracture in ``prevalence.population_window_months`` is ``prevalence.population``
    (Kasahara 2024's definition); a ``target`` (the mean ``true_risk``: a fracture
    after the assessment to the end of the window) moves it by a constant.
    """
    p = _parse_params(Path(params_path).read_bytes(), params_path)[0]
    pop = _reference(params_path, sha, "population")

    def incidence(s: float) -> float:
        C = np.exp(s) * pop["m"][:, None] * pop["C1"]
        S = np.exp(-C)
        return float(((S[:, :-1] - S[:, 1:]) * pop["site_share_vh"]).sum(axis=1).mean())

    alpha = _solve(incidence, float(p["prevalence"]["population"]))
    if target is None:
        return alpha
    ref = pop if setting == "population" else _reference(params_path, sha, setting)

    return _solve(lambda s: _mean_risk(ref, np.exp(s)), float(target))


def _mean_risk(ref: dict, scale: float) -> float:
    """Mean risk of a fracture after the assessment on the reference draw ``ref``
    at hazard ``scale``: no fracture before it, or one and a later fracture."""
    c = scale * ref["m"]
    s_past = np.exp(-c * ref["past"])
    risk = (
        1.0
        - s_past * np.exp(-c * ref["first_end"])
        - (1.0 - s_past) * np.exp(-c * ref["sub_end"])
    )
    return float(risk.mean())


def expected_prevalence(
    setting: str = "population",
    *,
    prevalence: float | None = None,
    params: str | Path | None = None,
) -> float:
    """The mean ``true_risk`` of a setting: the prevalence of ``fracture``.

    In the population the hazard is set from the episode incidence
    (``prevalence.population``, Kasahara 2024's definition), so the binary outcome
    after a random assessment is rarer than that: this is the number to
    recalibrate a model to. With ``prevalence`` given it is that target.

    Examples
    --------
    >>> 0 < expected_prevalence("population") < 4.6e-4
    True
    """
    _check_choice("setting", setting, SETTINGS)
    p, sha = _params_for(params)
    path = str(Path(params) if params is not None else default_params_path())
    if prevalence is None and setting == "referral":
        prevalence = p["prevalence"]["referral_default"]
    if prevalence is not None:
        return float(prevalence)
    return _mean_risk(_reference(path, sha, setting), _scale_for(params, setting, None))


def _scale_for(
    params: str | Path | None, setting: str, prevalence: float | None
) -> float:
    p, sha = _params_for(params)
    path = str(Path(params) if params is not None else default_params_path())
    if prevalence is None and setting == "referral":
        prevalence = p["prevalence"]["referral_default"]
    target = None if prevalence is None else float(prevalence)
    return float(np.exp(_log_scale(path, sha, setting, target)))


# ---------------------------------------------------------------- 5. markers


def _markers(rng: np.random.Generator, n: int, p: dict, x: dict) -> dict:
    """Bone-turnover markers and hormones at the assessment ([@mishra2024, Table 1])."""
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
    seen["heparin_unfractionated"] = seen["heparin"]
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
    outcome: dict[str, np.ndarray],
    risks: np.ndarray,
    p: dict,
    catalog: Catalog,
    outcomes: str,
) -> pd.DataFrame:
    out = p["output"]
    n = len(risks)
    values = {
        **x,
        **markers,
        **{k: outcome[k] for k in _EPISODE_INPUTS if k in outcome},
    }
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
        mask = seen.get(name, np.ones(n, dtype=bool))
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
    for name in _EPISODE_INPUTS:  # proposed catalog fields, until the catalog has them
        if name not in catalog:
            mask = seen.get(name, np.ones(n, dtype=bool))
            cols[name] = pd.arrays.BooleanArray(np.asarray(values[name], bool), ~mask)
    cols[OUTCOME_COLUMN] = outcome["fracture"].astype(np.int64)
    if outcomes == "all":
        cols["fracture_month"] = outcome["fracture_month"]
        cols["fracture_site"] = outcome["fracture_site"]
        cols["n_vertebral_fractures"] = outcome["n_vertebral_fractures"]
        cols["n_fractures"] = outcome["n_fractures"]
    cols[ORACLE_COLUMN] = risks[:, 0]
    if outcomes == "all":
        for i, h in enumerate(HORIZONS, start=1):
            cols[f"{ORACLE_COLUMN}_{h}m"] = risks[:, i]
    return pd.DataFrame(cols)


def _simulate(
    n: int,
    *,
    setting: str = "referral",
    prevalence: float | None = None,
    missingness: str = "none",
    seed: int = 0,
    params: str | Path | None = None,
    outcomes: str = "all",
    oracle: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """The clean cohort and the latent variables behind it.

    Returns the frame ``generate_cohort(..., style="clean")`` returns and a dict of
    latent arrays: ``bmd_<site>_baseline`` (pre-pregnancy), ``bmd_<site>_latent``
    (at the assessment, unrounded), the course (``lactation_total_months``,
    ``full_rate_months``, ``amenorrhea_total_months``, ...), ``thrombophilia``,
    ``record`` (what the oracle reads), ``events`` (one row per fracture of the
    episode: ``row``, ``month``, ``site``, ``first``, ``n_vertebrae``,
    ``n_fractures``, ``z_lumbar_spine`` at the fracture) and ``scale`` (the
    setting's hazard scale). ``oracle=False`` skips the oracle (``true_risk`` NaN):
    the episodes and their fractures are the same.
    """
    p, _ = _params_for(params)
    catalog = load_catalog()
    scale = _scale_for(params, setting, prevalence)
    core, marker_ss, observe_ss, outcome_ss, _ = np.random.SeedSequence(seed).spawn(
        _N_STREAMS
    )
    x = _draw_core(np.random.Generator(np.random.PCG64(core)), n, p, setting, catalog)
    rng_out = np.random.Generator(np.random.PCG64(outcome_ss))
    e1 = rng_out.exponential(size=n)
    course, anchor, options = _episode_quantities(x, p, catalog, oracle=oracle)
    a = course["a"]
    horizons = [ep.WINDOW_END - a] + [np.full(n, float(h)) for h in HORIZONS]
    her_scale = _hazard_scale(x, scale, p)
    q = _paths(
        course,
        anchor,
        _site_refs(catalog),
        options,
        p,
        horizons,
        events={"K": x["full_rate_months"].astype(float), "scale": her_scale, "e1": e1},
    )
    events = _draw_events(q["kept"], e1, her_scale, rng_out, p, _site_refs(catalog))
    outcome = _outcomes(events, a, n)
    x["record"]["fractured_this_episode"] = outcome["fractured_this_episode"]
    if oracle:
        risks = _combine(
            q,
            options,
            outcome["fractured_this_episode"],
            course["heparin"],
            scale,
            p,
            setting,
        )
    else:
        risks = np.full((n, 1 + len(HORIZONS)), np.nan)
    markers = _markers(np.random.Generator(np.random.PCG64(marker_ss)), n, p, x)
    if missingness == "none":
        seen = {f.name: np.ones(n, dtype=bool) for f in catalog}
    else:
        seen = _observed(
            np.random.Generator(np.random.PCG64(observe_ss)), n, p, setting, x, catalog
        )
    df = _clean_frame(x, markers, seen, outcome, risks, p, catalog, outcomes)
    x["events"] = events
    x["scale"] = scale
    x["fractured_this_episode"] = outcome["fractured_this_episode"]
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


def generate_cohort(
    n: int,
    *,
    setting: str = "referral",
    prevalence: float | None = None,
    style: str = "clean",
    missingness: str = "realistic",
    seed: int = 0,
    params: str | Path | None = None,
    outcomes: str = "all",
) -> pd.DataFrame:
    """Draw a synthetic PLO cohort from the structural model.

    Each row is one pregnancy episode, lived month by month from the third
    trimester to 18 months postpartum (BMD, fracture hazard, fractures) and
    assessed once, at ``months_postpartum``: the inputs are what is known then.

    Parameters
    ----------
    n : int
        Number of episodes (rows before registry duplicates).
    setting : {"population", "referral"}, default="referral"
        ``"population"``: all deliveries; the hazard is set so that 460 per million
        have a vertebral or hip fracture from the third trimester to 12 months
        postpartum (Kasahara 2024). ``"referral"``: women referred for bone
        assessment (lower bone mass, more risk factors), enriched in fractures:
        their hazard is the population's times a constant (DATASHEET.md).
    prevalence : float, default=None
        Target mean ``true_risk`` (a fracture after the assessment, to the end of
        the window); ``None``: the population's own level, or 0.05 in referral.
    style : {"clean", "registry"}, default="clean"
        ``"clean"``: catalog columns in canonical units, ready for
        :func:`plo_risk.schema.validate_frame`. ``"registry"``: the same cohort as a
        messy extract (other names, alternate units, duplicates, typos, a missing
        block; the binary outcome and ``true_risk`` only).
    missingness : {"realistic", "none"}, default="realistic"
        ``"none"`` records every input (except the interpregnancy interval of a
        first birth, which does not exist).
    seed : int, default=0
        Same seed, same frame.
    params : str or Path, default=None
        Another params YAML; ``None`` uses the shipped one.
    outcomes : {"all", "binary"}, default="all"
        ``"binary"`` leaves out the timing, site and count columns and the
        horizon risks (the first wave's shape plus the episode inputs).

    Returns
    -------
    pandas.DataFrame
        ``patient_id``; the catalog fields in catalog order; the episode inputs
        not yet in the catalog (``heparin_unfractionated``,
        ``fractured_this_episode``: a fracture in this episode before the
        assessment); ``fracture`` (0/1: a fracture after the assessment, to 18
        months postpartum); ``fracture_month`` (months postpartum of that first
        fracture; 18 when censored at the end of the window), ``fracture_site``
        (``"vertebral"``, ``"hip"``, ``"other"``; None), ``n_vertebral_fractures``
        (vertebrae fractured in it), ``n_fractures`` (all fractures after the
        assessment); ``true_risk`` (the oracle's probability of ``fracture``) and
        ``true_risk_3m``, ``_6m``, ``_12m`` (a fracture within 3, 6, 12 months of
        the assessment, within the window).

    Raises
    ------
    ValueError
        If an argument is out of its allowed values (the message names it).

    Examples
    --------
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> df = generate_cohort(5, setting="population", seed=1)
    >>> df["patient_id"].tolist()[:2]
    ['P0000001', 'P0000002']
    >>> bool(df["true_risk"].between(0, 1).all())
    True
    >>> bool((df["true_risk_3m"] <= df["true_risk_12m"]).all())
    True
    """
    _check_args(n, setting, prevalence, style, missingness, seed, params)
    _check_choice("outcomes", outcomes, OUTCOMES)
    df, _ = _simulate(
        int(n),
        setting=setting,
        prevalence=prevalence,
        missingness=missingness,
        seed=int(seed),
        params=params,
        outcomes=outcomes if style == "clean" else "binary",
    )
    if style == "registry":
        p, _ = _params_for(params)
        registry_ss = np.random.SeedSequence(int(seed)).spawn(_N_STREAMS)[-1]
        df = _to_registry(
            df, np.random.Generator(np.random.PCG64(registry_ss)), p, load_catalog()
        )
    return df


def _oracle_record(frame: Any) -> dict[str, np.ndarray]:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"counterfactual_risk needs a pandas DataFrame; got {type(frame).__name__}"
        )
    need = list(_ORACLE_INPUTS) + list(_EPISODE_INPUTS)
    absent = [c for c in need if c not in frame.columns]
    if absent:
        raise ValueError(
            "counterfactual_risk needs the oracle's inputs; the frame lacks "
            + ", ".join(absent)
        )
    missing = [c for c in need if frame[c].isna().any()]
    if missing:
        raise ValueError(
            "counterfactual_risk needs every oracle input recorded (a frame from "
            "generate_cohort(..., missingness='none')); missing values in "
            + ", ".join(missing)
        )
    rec = {c: frame[c].to_numpy() for c in need}
    for c in ("vitamin_d_supplement", "calcium_supplement"):
        if c in frame.columns:
            rec[c] = frame[c].to_numpy()
    return rec


def counterfactual_risk(
    frame: pd.DataFrame,
    changes: dict[str, Any] | None = None,
    horizon_months: float | np.ndarray | None = None,
    *,
    setting: str = "referral",
    prevalence: float | None = None,
    params: str | Path | None = None,
) -> pd.Series:
    """The oracle's risk of a fracture after the assessment, under an intervention.

    The true probability of a fragility fracture within ``horizon_months`` of the
    assessment (and within the window, to 18 months postpartum) if, from the
    assessment on, ``changes`` were made. The history before the assessment stays
    as recorded: an intervention cannot undo bone already lost. With no changes
    this is the oracle's risk at any horizon (``true_risk`` for the horizon to the
    end of the window, exactly). The latent thrombophilia keeps its posterior given
    the factual record (her heparin, whether she has fractured): the intervention
    does not change who she is.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows as :func:`generate_cohort` returns them with every oracle input
        recorded (``missingness="none"``).
    changes : dict, default=None
        Field -> new value (a scalar, or one value per row), from the assessment on:
        ``breastfeeding_now=False`` (stop now), ``lactation_planned_months``,
        ``lactation_exclusive=False``, ``vitamin_d_25oh``, ``vitamin_d_supplement``,
        ``calcium_intake_mg_day``, ``calcium_supplement``, ``smoking=False``,
        ``alcohol_units_day``, ``bmi``, ``physical_activity_hours_week`` (before
        pregnancy: no effect), ``heparin=False`` (stopped now),
        ``heparin_unfractionated=False`` (switched to LMWH now).
    horizon_months : float or array, default=None
        Months after the assessment; ``None``: to the end of the window.
    setting, prevalence, params
        As given to :func:`generate_cohort` for the frame.

    Returns
    -------
    pandas.Series
        The risk per row, on the frame's index.

    Raises
    ------
    InterventionError
        For an unknown field or an impossible change (restart breastfeeding, start
        smoking).
    ValueError
        If an oracle input is absent or missing.

    Examples
    --------
    >>> df = generate_cohort(200, missingness="none", seed=3)
    >>> same = counterfactual_risk(df)
    >>> bool((same.to_numpy() == df["true_risk"].to_numpy()).all())
    True
    >>> weaned = counterfactual_risk(df, {"breastfeeding_now": False})
    >>> bool((weaned <= same + 1e-12).all())
    True
    """
    _check_choice("setting", setting, SETTINGS)
    rec = _oracle_record(frame)
    p, _ = _params_for(params)
    catalog = load_catalog()
    scale = _scale_for(params, setting, prevalence)
    course, anchor, options = _course_from_record(rec, p, changes)
    a = course["a"]
    n = a.size
    if horizon_months is None:
        h = ep.WINDOW_END - a
    else:
        h = np.broadcast_to(np.asarray(horizon_months, dtype=float), (n,)).copy()
        if (h < 0).any() or np.isnan(h).any():
            raise ValueError("horizon_months must be >= 0")
    q = _paths(course, anchor, _site_refs(catalog), options, p, [h])
    fractured = _col(rec, "fractured_this_episode", bool)
    risk = _combine(q, options, fractured, course["heparin"], scale, p, setting)[:, 0]
    return pd.Series(risk, index=frame.index, name="risk")


def oracle_risk(
    frame: pd.DataFrame,
    horizon_months: float | np.ndarray | None = None,
    *,
    setting: str = "referral",
    prevalence: float | None = None,
    params: str | Path | None = None,
) -> pd.Series:
    """The oracle's cumulative risk at any horizon: :func:`counterfactual_risk`
    with no change."""
    return counterfactual_risk(
        frame,
        None,
        horizon_months,
        setting=setting,
        prevalence=prevalence,
        params=params,
    )


#: The arms of :func:`simulated_trial`: what each changes from the assessment on.
TRIAL_ARMS = {
    "control": "nothing changed",
    "stop_breastfeeding": "she weans now (women breastfeeding after delivery)",
    "vitamin_d": "her 25(OH)D from now on, drawn uniformly from 10 to 60 ng/mL",
    "calcium": "her calcium intake from now on, drawn uniformly from 300 to 2500 mg/day",
    "stop_smoking": "she stops smoking now (smokers)",
}


@dataclass(frozen=True)
class SimulatedTrial:
    """A randomised trial in the generator: interventions from the assessment on.

    Attributes
    ----------
    frame : pandas.DataFrame
        The records as observed at the assessment (with the missingness asked
        for) and the outcome under the arm: ``fracture``, ``fracture_month``
        (months postpartum; 18 when none), ``true_risk`` and ``true_risk_<h>m``
        (the oracle's risk under the arm).
    changes : pandas.DataFrame
        One column per field an arm changes (``breastfeeding_now``,
        ``vitamin_d_25oh``, ``calcium_intake_mg_day``, ``smoking``); NaN where the
        woman's arm leaves it alone.
    arm : pandas.Series
        The arm of each woman (:data:`TRIAL_ARMS`); a woman randomised to an arm
        that does not apply to her (stop smoking for a non-smoker) is a control.
    """

    frame: pd.DataFrame
    changes: pd.DataFrame
    arm: pd.Series


def simulated_trial(
    n: int,
    *,
    setting: str = "referral",
    missingness: str = "realistic",
    prevalence: float | None = None,
    seed: int = 0,
    params: str | Path | None = None,
) -> SimulatedTrial:
    """Women of :func:`generate_cohort`, randomised at the assessment to the arms of
    :data:`TRIAL_ARMS` that apply to her (equal chances; control always applies),
    with the outcome drawn from the oracle under the arm.

    Observational records cannot tell what an intervention from now on does: in
    them the vitamin D of the months ahead is the vitamin D of the months before,
    and no smoker stops. A trial can. Each woman's first fracture after the
    assessment is drawn from her :func:`counterfactual_risk` curve under her arm
    (month by month, linear within a month), so a model fitted on these rows can
    learn the interventions' effects as the generator has them.

    Examples
    --------
    >>> trial = simulated_trial(500, seed=1)
    >>> sorted(trial.arm.unique()) == sorted(TRIAL_ARMS)
    True
    >>> bool(trial.changes.loc[trial.arm == "control"].isna().all().all())
    True
    """
    _check_args(n, setting, prevalence, "clean", missingness, seed, params)
    full = generate_cohort(
        n,
        setting=setting,
        missingness="none",
        prevalence=prevalence,
        seed=seed,
        params=params,
    )
    seen = (
        full
        if missingness == "none"
        else generate_cohort(
            n,
            setting=setting,
            missingness=missingness,
            prevalence=prevalence,
            seed=seed,
            params=params,
        )
    )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20260601]))
    names = list(TRIAL_ARMS)
    a = full["months_postpartum"].to_numpy(dtype=float)
    bf = full["breastfeeding_now"].to_numpy(dtype=bool) & (a > 0)
    smokes = full["smoking"].to_numpy(dtype=bool)
    # Each woman draws one of the arms that apply to her, with equal chances.
    eligible = np.column_stack(
        [np.ones(n, bool), bf, np.ones(n, bool), np.ones(n, bool), smokes]
    )
    weights = eligible / eligible.sum(axis=1, keepdims=True)
    pick = (rng.random(n)[:, None] > np.cumsum(weights, axis=1)).sum(axis=1)
    arm = np.asarray(names, dtype=object)[pick]
    changes = pd.DataFrame(
        np.nan,
        index=full.index,
        columns=[
            "breastfeeding_now",
            "vitamin_d_25oh",
            "calcium_intake_mg_day",
            "smoking",
        ],
    )
    changes.loc[arm == "stop_breastfeeding", "breastfeeding_now"] = 0.0
    changes.loc[arm == "stop_smoking", "smoking"] = 0.0
    vd = arm == "vitamin_d"
    changes.loc[vd, "vitamin_d_25oh"] = np.round(rng.uniform(10.0, 60.0, vd.sum()), 1)
    ca = arm == "calcium"
    changes.loc[ca, "calcium_intake_mg_day"] = np.round(
        rng.uniform(300.0, 2500.0, ca.sum())
    )
    u = rng.random(n)
    span = ep.WINDOW_END - a
    month = np.full(n, ep.WINDOW_END)
    risks = {h: np.zeros(n) for h in (*HORIZONS, None)}
    for name in names:
        rows = np.flatnonzero(arm == name)
        if rows.size == 0:
            continue
        sub = full.iloc[rows]
        change = {
            c: changes[c].to_numpy()[rows]
            for c in changes.columns
            if not np.isnan(changes[c].to_numpy()[rows]).all()
        }
        change = {
            c: (v.astype(bool) if c in ("breastfeeding_now", "smoking") else v)
            for c, v in change.items()
        }
        kw = {"setting": setting, "prevalence": prevalence, "params": params}
        prev = np.zeros(rows.size)
        t = np.full(rows.size, np.nan)
        for k in range(1, 22):
            h = np.minimum(float(k), span[rows])
            cur = counterfactual_risk(sub, change, h, **kw).to_numpy()
            cur = np.maximum(cur, prev)
            cross = np.isnan(t) & (u[rows] < cur)
            frac = (u[rows] - prev) / np.where(cur > prev, cur - prev, 1.0)
            t = np.where(cross, (k - 1) + np.clip(frac, 0.0, 1.0) * (h - (k - 1)), t)
            prev = cur
        hit = ~np.isnan(t)
        month[rows[hit]] = a[rows[hit]] + t[hit]
        for h in HORIZONS:
            risks[h][rows] = counterfactual_risk(sub, change, float(h), **kw).to_numpy()
        risks[None][rows] = prev
    frame = seen.drop(columns=[c for c in OUTCOME_COLUMNS if c in seen.columns]).copy()
    frame["fracture"] = (month < ep.WINDOW_END).astype(np.int64)
    frame["fracture_month"] = month
    frame["true_risk"] = risks[None]
    for h in HORIZONS:
        frame[f"true_risk_{h}m"] = risks[h]
    return SimulatedTrial(frame, changes, pd.Series(arm, index=full.index, name="arm"))


@dataclass(frozen=True)
class EpisodeHistories:
    """Whole episodes with every fracture, for checks against the literature.

    Attributes
    ----------
    episodes : pandas.DataFrame
        One row per episode: ``patient_id``, the recorded fields (every input
        observed), ``age_delivery``, ``lactation_total_months`` (she weans then),
        ``thrombophilia`` (latent) and the episode's first fracture
        (``first_fracture_month``, ``first_fracture_site``,
        ``z_lumbar_spine_at_first_fracture``, NaN when none), ``n_fractures``
        (all fractures in the window, each vertebra counted), ``n_vertebral``.
    events : pandas.DataFrame
        One row per fracture event: ``patient_id``, ``month``, ``site``, ``first``,
        ``n_vertebrae``, ``n_fractures``, ``z_lumbar_spine``.
    setting : str
    seed : int
    """

    episodes: pd.DataFrame
    events: pd.DataFrame
    setting: str
    seed: int


def episode_histories(
    n: int,
    *,
    setting: str = "population",
    seed: int = 0,
    params: str | Path | None = None,
) -> EpisodeHistories:
    """Generate ``n`` episodes with their whole event histories (no oracle).

    Examples
    --------
    >>> h = episode_histories(1000, seed=2)
    >>> len(h.episodes)
    1000
    """
    _check_args(n, setting, None, "clean", "none", seed, params)
    df, x = _simulate(
        int(n),
        setting=setting,
        missingness="none",
        seed=int(seed),
        params=params,
        outcomes="binary",
        oracle=False,
    )
    ids = df[ID_COLUMN].to_numpy()
    ev = x["events"].copy()
    ev.insert(0, ID_COLUMN, ids[ev.pop("row").to_numpy()])
    rows = np.searchsorted(ids, ev[ID_COLUMN].to_numpy())
    episodes = df.drop(columns=[OUTCOME_COLUMN, ORACLE_COLUMN])
    episodes["age_delivery"] = x["age_delivery"]
    episodes["lactation_total_months"] = x["lactation_total_months"]
    episodes["thrombophilia"] = x["thrombophilia"]
    first = ev[ev["first"].to_numpy()]
    fr = np.searchsorted(ids, first[ID_COLUMN].to_numpy())
    for col, src in (
        ("first_fracture_month", "month"),
        ("z_lumbar_spine_at_first_fracture", "z_lumbar_spine"),
    ):
        v = np.full(len(df), np.nan)
        v[fr] = first[src].to_numpy()
        episodes[col] = v
    site = np.full(len(df), None, dtype=object)
    site[fr] = first["site"].to_numpy()
    episodes["first_fracture_site"] = site
    total = np.zeros(len(df), dtype=np.int64)
    np.add.at(total, rows, ev["n_fractures"].to_numpy())
    vert = np.zeros(len(df), dtype=np.int64)
    np.add.at(vert, rows, ev["n_vertebrae"].to_numpy())
    episodes["n_fractures"] = total
    episodes["n_vertebral"] = vert
    return EpisodeHistories(episodes, ev.reset_index(drop=True), setting, int(seed))


def reference_check(
    cohort: EpisodeHistories | None = None,
    *,
    n: int = 3_000_000,
    seed: int = 20240627,
    params: str | Path | None = None,
    literature: str | Path | None = None,
) -> Scorecard:
    """Check the generator against the published PLO statistics.

    Generates ``n`` population episodes (unless ``cohort`` is given), applies each
    statistic's own case definition (``plo_risk/data/plo_literature.yaml``) and
    scores the simulated value against the published one: the tolerance is the
    published 95% interval (Wilson for proportions, mean +- 1.96 SE) widened by 1.5;
    the standardized deviation is (simulated - published) / the combined SE. The
    generator never reads the table.

    Returns
    -------
    Scorecard
        ``str()`` prints it; ``to_frame()``, ``to_html()``.
    """
    if cohort is None:
        cohort = episode_histories(n, setting="population", seed=seed, params=params)
    return check_statistics(cohort.episodes, cohort.events, load_literature(literature))


def write_sample(path: str | Path | None = None) -> Path:
    """Write the committed sample cohort (2,000 clean referral rows, seed 0).

    Parameters
    ----------
    path : str or Path, default=None
        Where to write the CSV; ``None`` writes ``data/synthetic/sample_cohort.csv``
        of the repository.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = write_sample(pathlib.Path(d) / "sample.csv")
    ...     len(pd.read_csv(out))
    2000
    """
    if path is None:
        path = REPO_ROOT / SAMPLE_PATH
    path = Path(path)
    df = generate_cohort(SAMPLE_ROWS, setting="referral", style="clean", seed=0)
    df.to_csv(path, index=False)
    return path


#: The committed scorecard of :func:`reference_check` at its defaults.
REFERENCE_CHECK_PATH = Path("data") / "synthetic" / "reference_check.json"


def _generator_fingerprint(params: str | Path | None = None) -> str:
    """sha256 of the parameter file and the literature table the check uses."""
    digest = hashlib.sha256(Path(params or default_params_path()).read_bytes())
    digest.update(Path(default_literature_path()).read_bytes())
    return digest.hexdigest()


def write_reference_check(
    path: str | Path | None = None, *, n: int = 3_000_000, seed: int = 20240627
) -> Scorecard:
    """Run :func:`reference_check` and write its scorecard as JSON (the model card
    shows the committed one; ``tests/test_reference_check.py`` checks it is the
    generator's). ``None`` writes ``data/synthetic/reference_check.json``."""
    card = reference_check(n=n, seed=seed)
    card = Scorecard(
        card.rows,
        card.n_episodes,
        card.n_cases,
        {
            **card.meta,
            "n": n,
            "seed": seed,
            "fingerprint": _generator_fingerprint(),
            "command": "plo-risk reference-check --write",
        },
    )
    out = Path(path) if path is not None else REPO_ROOT / REFERENCE_CHECK_PATH
    out.write_text(card.to_json() + "\n", encoding="utf-8")
    return card


def shipped_reference_check() -> tuple[Scorecard, bool]:
    """The committed scorecard, and whether it is of the current generator (the
    parameters and the literature table it was computed from are unchanged)."""
    path = shipped_file("reference_check.json", REFERENCE_CHECK_PATH)
    card = Scorecard.from_json(Path(path).read_text(encoding="utf-8"))
    return card, card.meta.get("fingerprint") == _generator_fingerprint()


if __name__ == "__main__":
    write_sample()

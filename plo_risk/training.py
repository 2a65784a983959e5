"""Experiments: train, evaluate and compare models, tracked in MLflow.

An experiment is one YAML file in ``training/`` (data, models, hyperparameters, CV,
seed, thresholds, champion rule) that maps one to one onto :class:`Experiment`, a
typed configuration: every problem of a file (an unknown or misspelled key, a value
out of range, a hyperparameter the model family does not have, a duplicated model)
is reported at once, with its key path, before any data is read, any model is
fitted or any MLflow run is opened. :func:`train` fits the experiment's models and
logs a run each; :func:`compare` logs a parent run with one nested run per model,
picks the champion by the metric the config declares, registers it as
``plo-risk`` with the alias ``champion``, and replaces an existing champion only
when the new one is better by the declared rule on the same held-out data.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlflow.db``
in the working folder (no server needed); artifacts go beside it in ``mlartifacts/``.
No row-level patient data is logged: metrics, plots of aggregates, the model bundle
and a fingerprint of the training data only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic
from pydantic import Field, PrivateAttr, field_validator, model_validator
from sklearn.model_selection import train_test_split

from plo_risk.data.catalog import load_catalog
from plo_risk.data.reference import reference_values
from plo_risk.data.schema import (
    ID_COLUMN,
    OUTCOME_COLUMN,
    OUTCOME_DEFINITION,
    validate_frame,
)
from plo_risk.data.synthetic import generate_cohort, simulated_trial
from plo_risk.evaluate import metrics as metric_functions
from plo_risk.evaluate.metrics import (
    MIN_CELL,
    age_band,
    evaluate,
    evaluate_subgroups,
    parity_band,
    suppress_small_cells,
)
from plo_risk.evaluate.plots import calibration_figure, decision_figure, roc_figure
from plo_risk.evaluate.survival import evaluate_horizons
from plo_risk.model.bundle import (
    BundleError,
    bundle_digest,
    data_fingerprint,
    load_bundle,
    save_bundle,
)
from plo_risk.model.ensemble import fit_bootstrap_ensemble
from plo_risk.model.families import FAMILIES, MODEL_NAMES, get_family
from plo_risk.model.horizon import (
    DEFAULT_HORIZONS,
    END,
    HazardModel,
    follow_up,
    horizon_label,
    model_inputs,
    parse_horizon,
    simulate_interval,
)
from plo_risk.model.zoo import make_model
from plo_risk.serve.authenticity import (
    BUNDLE_TAG,
    CODE_TAG,
    check_download,
    code_sha256,
    registry_pin,
)
from plo_risk.serve.tracking import (
    CHAMPION_ALIAS,
    PYFUNC_ENTRY,
    REGISTERED_NAME,
    default_tracking_uri,
    ensure_tracking_uri,
)
from plo_risk.utils.config import (
    ConfigError,
    ConfigModel,
    key_path,
    parse_config,
    read_yaml_file,
    unknown_key_problem,
)
from plo_risk.utils.locks import LockHeld, exclusive_lock
from plo_risk.utils.resources import shipped_file

__all__ = [
    "CHAMPION_ALIAS",
    "REGISTERED_NAME",
    "CompareResult",
    "PromotionError",
    "ConfigError",
    "DataSpec",
    "Dataset",
    "Experiment",
    "ModelResult",
    "ModelSpec",
    "SearchParam",
    "TuneConfig",
    "compare",
    "default_tracking_uri",
    "ensure_tracking_uri",
    "load_data",
    "load_experiment",
    "run_planned",
    "train",
]

_METRICS_HIGHER_BETTER = {"auroc": True, "auprc": True, "brier": False, "ici": False}
_SUBGROUPS = ("age_band", "parity_band")


# --------------------------------------------------------------------- config


class DataSpec(ConfigModel):
    """Where one data set comes from: the generator or a file.

    ``source="synthetic"`` uses ``n``, ``setting``, ``prevalence``,
    ``missingness`` and ``seed`` (see :func:`plo_risk.synthetic.generate_cohort`);
    ``source="file"`` reads ``path`` (CSV or Parquet) with optional ``units``.
    """

    source: Literal["synthetic", "file"] = "synthetic"
    n: int = Field(20_000, ge=10)
    setting: Literal["population", "referral"] = "referral"
    prevalence: float | None = Field(None, gt=0, lt=1)
    missingness: Literal["realistic", "none"] = "realistic"
    seed: int = 0
    path: str | None = None
    units: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _path_means_file(cls, data: Any) -> Any:
        # A path is a file to read: without `source`, it is a file source.
        if isinstance(data, Mapping) and data.get("path") and "source" not in data:
            return {**data, "source": "file"}
        return data

    @model_validator(mode="after")
    def _source_needs(self) -> DataSpec:
        if self.source == "file" and not self.path:
            raise ValueError("source 'file' needs 'path'")
        # Keys the source does not read are mistakes, not silent defaults.
        unused = sorted(self.model_fields_set & _UNUSED_BY_SOURCE[self.source])
        if unused:
            raise ValueError(
                f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not read "
                f"with source {self.source!r} (synthetic data read n, setting, "
                "prevalence, missingness and seed; a file reads path and units)"
            )
        return self

    def same_source_as(self, other: DataSpec) -> bool:
        """Whether both specs read the same rows (the same file, or the same
        generator call)."""
        if self.source != other.source:
            return False
        if self.source == "file":
            return Path(str(self.path)).resolve() == Path(str(other.path)).resolve()
        keys = ("n", "setting", "prevalence", "missingness", "seed")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


_UNUSED_BY_SOURCE = {
    "synthetic": frozenset({"path", "units"}),
    "file": frozenset({"n", "setting", "prevalence", "missingness", "seed"}),
}


class DataConfig(ConfigModel):
    """``data``: the training source, and a held-out source or fraction."""

    train: DataSpec
    test: DataSpec | None = None
    test_fraction: float = Field(0.3, gt=0, lt=1)

    @model_validator(mode="after")
    def _test_is_other_data(self) -> DataConfig:
        if self.test is not None and self.test.same_source_as(self.train):
            raise ValueError(
                "test reads the same rows as train (the same file, or the generator "
                "with the same n, setting, prevalence, missingness and seed): a model "
                "evaluated on its training rows looks better than it is; give the "
                "test set another seed or file, or leave test out to hold out "
                "test_fraction of train"
            )
        if self.test is not None and "test_fraction" in self.model_fields_set:
            raise ValueError("test_fraction is not used when a test set is given")
        return self


class SearchParam(ConfigModel):
    """One hyperparameter of a search space (``tune.space.<name>``), as Optuna's
    ``suggest_float``/``suggest_int``/``suggest_categorical`` take it."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError(
                    f"type categorical needs a non-empty 'choices' list; got "
                    f"choices={self.choices!r}"
                )
            given = sorted({"low", "high", "log"} & self.model_fields_set)
            if given:
                raise ValueError(
                    f"{', '.join(given)} not read with type categorical (it reads "
                    "choices); use type float or int for a range"
                )
            return self
        if self.choices is not None:
            raise ValueError(
                f"choices={self.choices!r} is only read with type categorical; "
                f"type {self.type} reads low, high and log"
            )
        if self.low is None or self.high is None:
            raise ValueError(
                f"type {self.type} needs both 'low' and 'high'; got "
                f"low={self.low!r}, high={self.high!r}"
            )
        if not self.low < self.high:
            raise ValueError(f"low={self.low!r} must be below high={self.high!r}")
        if self.type == "int" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            raise ValueError(
                f"type int needs whole numbers; got low={self.low!r}, "
                f"high={self.high!r}"
            )
        if self.log and not self.low > 0:
            raise ValueError(
                f"log: true needs low > 0 (a log scale); got low={self.low!r}"
            )
        return self

    def values_to_check(self) -> list[Any]:
        """The values that must be valid hyperparameters: the ends or the choices."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            return [int(self.low), int(self.high)]  # type: ignore[arg-type]
        return [float(self.low), float(self.high)]  # type: ignore[arg-type]


class TuneConfig(ConfigModel):
    """``models[i].tune``: a hyperparameter search (:mod:`plo_risk.tuning`).

    ``cv`` stratified folds of the training data only score each trial by
    ``metric``; ``seed`` (default: the experiment's) seeds Optuna's TPE sampler.
    """

    n_trials: int = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0)
    seed: int | None = None
    cv: int = Field(3, ge=2)
    metric: Literal["auroc", "log_loss"] = "auroc"
    space: dict[str, SearchParam] = Field(min_length=1)


class ModelEntry(ConfigModel):
    """One entry of ``models``: a family with its hyperparameters.

    ``name`` is the family (``xgboost``, ...) unless ``family`` is given, in which
    case ``name`` is this entry's own name (e.g. ``xgboost_shallow``).
    """

    name: str
    family: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    tune: TuneConfig | None = None


class CVConfig(ConfigModel):
    folds: int = Field(5, ge=2)


class EvaluationConfig(ConfigModel):
    n_boot: int = Field(200, ge=1)
    ci: float = Field(0.95, gt=0, lt=1)
    subgroups: tuple[str, ...] = ("age_band", "ancestry", "parity_band")
    # Subgroup cells with fewer patients, events or non-events are hidden in what
    # is logged to MLflow (suppress_small_cells); the result in memory keeps them.
    min_cell: int = Field(MIN_CELL, ge=1)


class ChampionConfig(ConfigModel):
    metric: Literal["auroc", "auprc", "brier", "ici"] = "auroc"
    min_improvement: float = 0.0
    # "register" in the file (a pydantic model has a method of that name).
    register_champion: bool = Field(True, alias="register")
    # A model at chance (AUROC CI reaching 0.5) or no better than the clinical rule
    # is never promoted unless this is set.
    allow_weak: bool = False


class MLflowConfig(ConfigModel):
    experiment: str = "plo-risk"


class IntervalConfig(ConfigModel):
    # 0: no interval ensemble; else its number of bootstrap members.
    n_models: int = 10

    @field_validator("n_models")
    @classmethod
    def _zero_or_two(cls, v: int) -> int:
        if v != 0 and v < 2:
            raise ValueError("must be 0 (no interval) or a whole number >= 2")
        return v


class HorizonConfig(ConfigModel):
    """The horizon model (:class:`plo_risk.model.horizon.HazardModel`) trained
    beside the experiment's models and stored in each of their bundles."""

    enabled: bool = False
    family: Literal["xgboost", "logistic_regression"] = "xgboost"
    params: dict[str, Any] = Field(default_factory=dict)
    horizons: tuple[float | str, ...] = DEFAULT_HORIZONS
    cv: int = Field(3, ge=2)
    # Women per generator cohort the intervals are calibrated on (0: none).
    interval_n: int = Field(20_000, ge=0)
    # Women of a simulated trial (plo_risk.synthetic.simulated_trial) added to the
    # training rows, from whom the effect of an intervention can be learned; 0:
    # none, and what-if then says the data cannot tell.
    trial_n: int = Field(0, ge=0)

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, v: tuple) -> tuple:
        return tuple(parse_horizon(h) for h in v)

    @field_validator("interval_n", "trial_n")
    @classmethod
    def _enough(cls, v: int) -> int:
        if 0 < v < 500:
            raise ValueError("must be 0 or at least 500 women")
        return v


@dataclass(frozen=True)
class ModelSpec:
    """One model of an experiment: its name (unique), family and hyperparameters."""

    name: str
    family: str
    params: dict[str, Any]
    #: The search space and budget when the model is tuned (``plo-risk tune``).
    tune: TuneConfig | None = None


class Experiment(ConfigModel):
    """One experiment, as read from a YAML file in ``training/``.

    Every section maps one to one onto a parameter of the package
    (:func:`plo_risk.synthetic.generate_cohort`, :func:`plo_risk.model.make_model`,
    :func:`plo_risk.evaluate.evaluate`, ...).
    """

    name: str = "experiment"
    description: str = ""
    seed: int = 0
    data: DataConfig
    models: list[ModelEntry] = Field(min_length=1)
    cv: CVConfig = CVConfig()
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"moderate": 0.02, "high": 0.10}
    )
    evaluation: EvaluationConfig = EvaluationConfig()
    champion: ChampionConfig = ChampionConfig()
    mlflow: MLflowConfig = MLflowConfig()
    interval: IntervalConfig = IntervalConfig()
    horizon: HorizonConfig = HorizonConfig()
    _source_file: str | None = PrivateAttr(None)

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not 0 < x < 1}
        if bad:
            raise ValueError(
                f"must map category names to probabilities in (0, 1); got {bad}"
            )
        return v

    @property
    def source_file(self) -> str | None:
        """The YAML file the experiment was read from (logged with its runs)."""
        return self._source_file

    @property
    def model_specs(self) -> tuple[ModelSpec, ...]:
        """The models with their unique names (see :func:`load_experiment`)."""
        return _model_specs(self.models)

    @property
    def train(self) -> DataSpec:
        return self.data.train

    @property
    def test(self) -> DataSpec | None:
        return self.data.test


def _model_specs(models: list[ModelEntry]) -> tuple[ModelSpec, ...]:
    """Unique names: a family listed more than once without names is numbered."""
    families = [m.family or m.name for m in models]
    counts = Counter(m.name for m in models if m.family is None)
    seen: Counter = Counter()
    specs = []
    for m, family in zip(models, families, strict=True):
        name = m.name
        if m.family is None and counts[name] > 1:
            seen[name] += 1
            name = f"{name}-{seen[name]}"
        specs.append(ModelSpec(name, family, dict(m.params), m.tune))
    return tuple(specs)


def _model_problems(raw: Any) -> list[str]:
    """Checks of ``models`` that need the families: names, hyperparameters, repeats."""
    models = raw.get("models") if isinstance(raw, Mapping) else None
    if not isinstance(models, list):
        return []
    problems, seen, names = [], {}, Counter()
    for i, m in enumerate(models):
        if not isinstance(m, Mapping):
            continue
        where = key_path(("models", i))
        family = m.get("family") if m.get("family") is not None else m.get("name")
        key = "family" if m.get("family") is not None else "name"
        if family not in FAMILIES:
            problems.append(
                f"{where}.{key}={family!r}: must be one of {', '.join(MODEL_NAMES)}"
            )
            continue
        params = m.get("params") or {}
        if isinstance(params, Mapping):
            fam = get_family(family)
            known = fam.known_params()
            for p in params:
                if p not in known:
                    problems.append(
                        unknown_key_problem(f"{where}.params ({family})", p, known)
                    )
            known_params = {k: v for k, v in params.items() if k in known}
            problems += [
                f"{where}.params: {msg}" for msg in fam.check_params(known_params)
            ]
            problems += _space_problems(m.get("tune"), f"{where}.tune.space", fam)
            signature = (family, repr(sorted(params.items(), key=lambda kv: kv[0])))
            if signature in seen:
                problems.append(
                    f"{where}: duplicates models[{seen[signature]}] (the same "
                    f"family {family!r} with the same params); remove one"
                )
            seen.setdefault(signature, i)
        if m.get("family") is not None:
            names[m.get("name")] += 1
    problems += [
        f"models: the name {name!r} is used by {n} models; give each its own name"
        for name, n in names.items()
        if n > 1
    ]
    return problems


def _space_problems(tune: Any, where: str, fam) -> list[str]:
    """A search space's names must be the family's hyperparameters, and its ends
    (or choices) values the family accepts."""
    space = tune.get("space") if isinstance(tune, Mapping) else None
    if not isinstance(space, Mapping):
        return []
    problems, known = [], fam.known_params()
    for name, spec in space.items():
        if name not in known:
            problems.append(unknown_key_problem(f"{where} ({fam.name})", name, known))
            continue
        try:
            values = SearchParam.model_validate(spec).values_to_check()
        except (pydantic.ValidationError, TypeError, ValueError):
            continue  # reported by the schema, with its key path
        for value in values:
            problems += [
                f"{where}.{name}: {value!r} is not a valid value: {msg}"
                for msg in fam.check_params({name: value})
            ]
    return problems


def load_experiment(config: str | Path | Mapping[str, Any] | Experiment) -> Experiment:
    """Read and check an experiment YAML file (or an already parsed mapping).

    Parameters
    ----------
    config : str, Path, Mapping or Experiment

    Returns
    -------
    Experiment

    Raises
    ------
    ConfigError
        Listing every problem, each with its key path: a missing, unknown or
        misspelled key (with "did you mean"), a bad value, an unknown model family
        or hyperparameter, the same model listed twice.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> from plo_risk.training import load_experiment
    >>> exp = load_experiment({"data": {"train": {"n": 500}},
    ...                        "models": [{"name": "xgboost"},
    ...                                   {"name": "xgboost", "params": {"max_depth": 2}}]})
    >>> [m.name for m in exp.model_specs]
    ['xgboost-1', 'xgboost-2']
    """
    if isinstance(config, Experiment):
        return config
    source_file = None
    if isinstance(config, (str, Path)):
        config = _experiment_file(config)
        raw = read_yaml_file(config, "experiment file")
        where = source_file = str(config)
    else:
        raw, where = config, "config"
    exp = parse_config(Experiment, raw, where, extra_problems=_model_problems(raw))
    if "name" not in raw and source_file:
        exp = exp.model_copy(update={"name": Path(source_file).stem})
    exp._source_file = source_file
    return exp


#: The experiments shipped with the package (``training/<name>.yaml``).
SHIPPED_EXPERIMENTS = ("baseline", "compare", "tune")


def _experiment_file(config: str | Path) -> str | Path:
    """A path as given, or the shipped experiment of that name: ``compare`` (or
    ``training/compare.yaml`` run from outside the clone) is the package's copy."""
    path = Path(config)
    if path.is_file():
        return config
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    bare = path.parent in (Path("."), Path("training")) and path.suffix in (
        "",
        ".yaml",
        ".yml",
    )
    if bare and name in SHIPPED_EXPERIMENTS:
        return shipped_file(f"training/{name}.yaml", f"training/{name}.yaml")
    return config


# ----------------------------------------------------------------------- data


@dataclass
class Dataset:
    """Validated model input, outcome and the rows rejected on the way."""

    X: pd.DataFrame
    y: np.ndarray
    n_input: int
    n_rejected: int
    description: str
    #: Months after the assessment to the first fracture or the end of follow-up,
    #: and whether it was a fracture (None without ``fracture_month``).
    time: np.ndarray | None = None
    event: np.ndarray | None = None


def _read(spec: DataSpec) -> tuple[pd.DataFrame, str]:
    if spec.source == "synthetic":
        df = generate_cohort(
            spec.n,
            setting=spec.setting,
            prevalence=spec.prevalence,
            missingness=spec.missingness,
            seed=spec.seed,
        )
        return df, (
            f"synthetic {spec.setting} cohort, n={spec.n}, "
            f"missingness={spec.missingness}, seed={spec.seed}"
        )
    path = Path(spec.path)  # type: ignore[arg-type]
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.suffix.lower() == ".parquet":
        df = pd.read_parquet(path)
    elif path.suffix.lower() == ".csv":
        df = pd.read_csv(path)
    else:
        raise ConfigError(str(path), ["data file: must end in .csv or .parquet"])
    return df, f"file {path}"


def _dataset(df: pd.DataFrame, spec: DataSpec, description: str) -> Dataset:
    if OUTCOME_COLUMN not in df.columns:
        raise ConfigError(
            description,
            [f"has no '{OUTCOME_COLUMN}' column (the outcome to train on)"],
        )
    res = validate_frame(df, units=spec.units, unknown="ignore")
    y = res.valid[OUTCOME_COLUMN].to_numpy(dtype=np.int64)
    X = model_inputs(res.valid)
    time_, event = None, None
    if "fracture_month" in df.columns:
        try:
            time_, event = follow_up(df.loc[res.valid.index])
        except ValueError as exc:
            raise ConfigError(description, [str(exc)]) from None
    return Dataset(
        X, y, res.n_input, res.n_rejected, description, time=time_, event=event
    )


def load_data(exp: Experiment) -> tuple[Dataset, Dataset]:
    """The training and held-out data of an experiment, validated.

    A separate ``test`` source is used when given; otherwise a stratified
    ``test_fraction`` of the training source is held out (seeded).
    """
    df, desc = _read(exp.data.train)
    if exp.data.test is not None:
        tdf, tdesc = _read(exp.data.test)
        train, test = (
            _dataset(df, exp.data.train, desc),
            _dataset(tdf, exp.data.test, tdesc),
        )
        _refuse_overlap(train, test, df, tdf)
        return train, test
    full = _dataset(df, exp.data.train, desc)
    idx = np.arange(len(full.y))
    tr, te = train_test_split(
        idx, test_size=exp.data.test_fraction, stratify=full.y, random_state=exp.seed
    )
    share = (full.n_rejected * len(tr)) // max(len(idx), 1)

    def part(rows, attr):
        values = getattr(full, attr)
        return None if values is None else values[rows]

    train = Dataset(
        full.X.iloc[tr],
        full.y[tr],
        len(tr) + share,
        share,
        f"{desc} (training part)",
        time=part(tr, "time"),
        event=part(tr, "event"),
    )
    test = Dataset(
        full.X.iloc[te],
        full.y[te],
        len(te) + full.n_rejected - share,
        full.n_rejected - share,
        f"{desc} (held-out part)",
        time=part(te, "time"),
        event=part(te, "event"),
    )
    return train, test


def _refuse_overlap(
    train: Dataset, test: Dataset, train_raw: pd.DataFrame, test_raw: pd.DataFrame
) -> None:
    """A held-out set that shares rows (or patients) with the training set is refused."""
    problems = []
    common = set(pd.util.hash_pandas_object(train.X, index=False)) & set(
        pd.util.hash_pandas_object(test.X, index=False)
    )
    if common:
        problems.append(
            f"{len(common):,} rows of the test set ({test.description}) are also rows "
            f"of the training set ({train.description})"
        )
    if ID_COLUMN in train_raw.columns and ID_COLUMN in test_raw.columns:
        ids = set(train_raw[ID_COLUMN].dropna().astype(str)) & set(
            test_raw[ID_COLUMN].dropna().astype(str)
        )
        # Generated cohorts number their patients P0000001..., whatever the seed.
        if ids and not all(
            d.startswith("synthetic") for d in (train.description, test.description)
        ):
            problems.append(
                f"{len(ids):,} patient ids are in both the training and the test set"
            )
    if problems:
        raise ConfigError(
            "data.test",
            [p + ": evaluate on rows the model was not trained on" for p in problems],
        )


# ----------------------------------------------------------------- tracking


def _setup_mlflow(exp: Experiment, tracking_uri: str | None):
    import mlflow  # optional heavy import: only when runs are logged

    uri = ensure_tracking_uri(tracking_uri)
    # MLflow's alembic migrations log at INFO on a new database; keep them quiet.
    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(exp.mlflow.experiment)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):
            db = Path(uri[len("sqlite:///") :])
            location = (db.parent / "mlartifacts").resolve().as_uri()
        exp_id = client.create_experiment(
            exp.mlflow.experiment, artifact_location=location
        )
    else:
        exp_id = found.experiment_id
    return mlflow, client, exp_id, uri


# ------------------------------------------------------------------ results


@dataclass
class ModelResult:
    """One fitted and evaluated model of an experiment."""

    name: str
    model: Any
    metrics: pd.DataFrame
    subgroups: pd.DataFrame
    seconds: float
    run_id: str | None = None
    model_uri: str | None = None
    family: str | None = None
    params: dict[str, Any] | None = None
    #: The digests registration records (plo_risk.serve.authenticity), computed
    #: from what training wrote, before it was uploaded.
    bundle_sha256: str | None = None
    code_sha256: str | None = None
    #: The horizon model's held-out numbers (:class:`HorizonConfig`), when trained.
    horizon_metrics: dict[str, float] | None = None

    def estimate(self, metric: str) -> float:
        """Point estimate of one metric on the held-out data."""
        return float(self.metrics.loc[metric, "estimate"])


@dataclass
class CompareResult:
    """What :func:`compare` (or :func:`train`) did."""

    experiment: Experiment
    results: list[ModelResult]
    tracking_uri: str
    parent_run_id: str | None
    champion: str | None
    champion_version: str | None
    replaced: bool
    reason: str
    n_train: int
    n_test: int
    n_rejected: int

    def leaderboard(self) -> pd.DataFrame:
        """One row per model: metrics with their confidence intervals."""
        rows = []
        for r in self.results:
            row: dict[str, Any] = {"model": r.name}
            for metric in r.metrics.index:
                row[metric] = r.metrics.loc[metric, "estimate"]
                row[f"{metric}_lower"] = r.metrics.loc[metric, "lower"]
                row[f"{metric}_upper"] = r.metrics.loc[metric, "upper"]
            row["seconds"] = r.seconds
            row["run_id"] = r.run_id
            rows.append(row)
        board = pd.DataFrame(rows)
        metric = self.experiment.champion.metric
        return board.sort_values(
            metric, ascending=not _METRICS_HIGHER_BETTER[metric]
        ).reset_index(drop=True)


def _evaluate(
    model: Any, test: Dataset, exp: Experiment
) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = model.predict_proba(test.X)[:, 1]
    ev = exp.evaluation
    metrics = evaluate(
        test.y,
        p,
        thresholds=exp.thresholds,
        n_boot=ev.n_boot,
        ci=ev.ci,
        seed=exp.seed,
    )
    groups = {}
    for g in ev.subgroups:
        if g == "age_band":
            groups[g] = age_band(test.X["age_years"].to_numpy())
        elif g == "parity_band":
            groups[g] = parity_band(test.X["parity"].to_numpy())
        elif g in test.X.columns:
            groups[g] = test.X[g].to_numpy()
        else:
            raise ConfigError(
                "evaluation.subgroups",
                [f"{g!r} is neither age_band, parity_band nor a catalog field"],
            )
    subgroups = (
        evaluate_subgroups(
            test.y,
            p,
            groups,
            thresholds=exp.thresholds,
            n_boot=min(ev.n_boot, 100),
            ci=ev.ci,
            seed=exp.seed,
        )
        if groups
        else pd.DataFrame()
    )
    return metrics, subgroups


def _fit_horizon(exp: Experiment, train: Dataset, say: Callable[[str], None]):
    """The experiment's horizon model and its intervals, or None."""
    cfg = exp.horizon
    if not cfg.enabled:
        return None
    if train.time is None:
        raise ConfigError(
            train.description,
            [
                "horizon.enabled needs 'fracture_month' (months postpartum of the "
                "first fracture after the assessment; 18 when none) to know when "
                "each woman fractured"
            ],
        )
    X, t, d = train.X, train.time, train.event
    changes = None
    spec = exp.data.train
    setting = spec.setting if spec.source == "synthetic" else "referral"
    if cfg.trial_n:
        say(f"horizon model: simulating a trial of {cfg.trial_n:,} women")
        trial = simulated_trial(
            cfg.trial_n,
            setting=setting,
            missingness=spec.missingness if spec.source == "synthetic" else "realistic",
            seed=exp.seed + 7919,
        )
        tds = _dataset(trial.frame, spec, "simulated trial")
        kept = trial.frame.index.get_indexer(tds.X.index)
        blank = pd.DataFrame(np.nan, index=range(len(X)), columns=trial.changes.columns)
        changes = pd.concat(
            [blank, trial.changes.iloc[kept].reset_index(drop=True)],
            ignore_index=True,
        )
        X = pd.concat([X, tds.X], ignore_index=True)
        t = np.concatenate([t, tds.time])
        d = np.concatenate([d, tds.event])
    say(
        f"horizon model: fitting the {cfg.family} hazard on {len(X):,} women "
        f"({int(d.sum()):,} fractures), {cfg.cv}-fold calibration per horizon"
    )
    model = HazardModel(
        family=cfg.family,
        params=cfg.params,
        horizons=cfg.horizons,
        cv=cfg.cv,
        thresholds=exp.thresholds,
        random_state=exp.seed,
    ).fit(X, t, d, changes=changes)
    interval = None
    if cfg.interval_n:
        say(
            f"horizon model: calibrating the intervals on 2 x {cfg.interval_n:,} "
            "generator women"
        )
        interval = simulate_interval(
            model, setting=setting, n=cfg.interval_n, seed=exp.seed + 104729
        )
    return model, interval


def _horizon_metrics(
    model: HazardModel, test: Dataset, exp: Experiment
) -> dict[str, float]:
    """The horizon model on the held-out data, per numeric horizon
    (:func:`plo_risk.evaluate.evaluate_horizons`: time-dependent AUROC, IPCW
    Brier, observed and expected risk, calibration-in-the-large, slope, ICI,
    net benefit at the thresholds), as MLflow metrics with their CIs."""
    if test.time is None:
        return {}
    fixed = [h for h in model.horizons if h != END]
    if not fixed:
        return {}
    risks = model.risk(test.X, fixed)
    table = evaluate_horizons(
        test.time,
        test.event,
        {h: risks[f"risk_{horizon_label(h)}"].to_numpy() for h in fixed},
        n_boot=exp.evaluation.n_boot,
        seed=exp.seed,
        level=exp.evaluation.ci,
        thresholds=tuple(sorted(exp.thresholds.values())),
    )
    out = {}
    for row in table.itertuples():
        key = _metric_key(f"horizon_{horizon_label(row.horizon)}_{row.metric}")
        for suffix, value in (
            ("", row.estimate),
            ("_ci_lower", row.low),
            ("_ci_upper", row.high),
        ):
            if value is not None and np.isfinite(value):
                out[f"{key}{suffix}"] = float(value)
    return out


def _metric_key(name: str) -> str:
    return name.replace("@", "_at_").replace(" ", "_")


def _fit_one(
    spec: ModelSpec,
    exp: Experiment,
    train: Dataset,
    test: Dataset,
    say: Callable[[str], None] = lambda _msg: None,
):
    start = time.perf_counter()
    model = make_model(
        spec.family,
        params=spec.params,
        thresholds=exp.thresholds,
        cv=exp.cv.folds,
        random_state=exp.seed,
    )
    say(
        f"fitting {spec.name} on {len(train.y):,} rows "
        f"({exp.cv.folds}-fold cross-fitted calibration)"
    )
    with get_family(spec.family).fit_context():
        model.fit(train.X, train.y)
    if exp.interval.n_models:
        say(f"{spec.name}: {exp.interval.n_models} bootstrap refits for the intervals")
        fit_bootstrap_ensemble(
            model,
            train.X,
            train.y,
            n_models=exp.interval.n_models,
            random_state=exp.seed,
        )
    say(
        f"{spec.name}: evaluating on {len(test.y):,} held-out rows "
        f"({exp.evaluation.n_boot} bootstrap replicates)"
    )
    metrics, subgroups = _evaluate(model, test, exp)
    return ModelResult(
        spec.name,
        model,
        metrics,
        subgroups,
        time.perf_counter() - start,
        family=spec.family,
        params={**get_family(spec.family).default_params, **spec.params},
    )


def _log_model_run(
    mlflow,
    result: ModelResult,
    exp: Experiment,
    train: Dataset,
    test: Dataset,
    workdir: Path,
) -> None:
    params = dict(result.params or {})
    mlflow.log_params(
        {
            "model": result.name,
            "family": result.family,
            "cv_folds": exp.cv.folds,
            "seed": exp.seed,
            **{f"param.{k}": v for k, v in params.items()},
            **{f"threshold.{k}": v for k, v in exp.thresholds.items()},
            "data.train": train.description,
            "data.test": test.description,
        }
    )
    if result.horizon_metrics:
        mlflow.log_metrics(
            {k: v for k, v in result.horizon_metrics.items() if np.isfinite(v)}
        )
    for metric, row in result.metrics.iterrows():
        key = _metric_key(str(metric))
        values = {
            key: row["estimate"],
            f"{key}_ci_lower": row["lower"],
            f"{key}_ci_upper": row["upper"],
        }
        mlflow.log_metrics(
            {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}
        )
    mlflow.log_metrics(
        {
            "n_train": len(train.y),
            "n_test": len(test.y),
            "n_rejected_rows": train.n_rejected + test.n_rejected,
            "fit_seconds": result.seconds,
            "calibration_fit_intercept": result.model.intercept_,
            "calibration_fit_slope": result.model.slope_,
        }
    )
    mlflow.log_text(result.metrics.to_csv(), "metrics_with_ci.csv")
    if len(result.subgroups):
        published = suppress_small_cells(
            result.subgroups, min_cell=exp.evaluation.min_cell
        )
        mlflow.log_text(published.to_csv(index=False), "subgroups.csv")
    for fig_name, fig in _plots(result, test, exp).items():
        mlflow.log_figure(fig, f"plots/{fig_name}.png")
    fingerprint = data_fingerprint(train.X, train.y)
    mlflow.set_tags(
        {
            "plo_risk.model": result.name,
            "plo_risk.family": str(result.family),
            "plo_risk.catalog_sha256": load_catalog().sha256,
            "plo_risk.train_sha256": fingerprint["sha256"],
        }
    )
    bundle_dir = save_bundle(
        result.model,
        workdir / result.name / "bundle",
        model_name=result.name,
        metrics={
            str(k): {
                c: (None if pd.isna(v) else float(v))
                for c, v in row.items()
                if c in ("estimate", "lower", "upper")
            }
            for k, row in result.metrics.iterrows()
        },
        training_data=fingerprint,
        extra={
            "experiment": exp.name,
            "run_id": mlflow.active_run().info.run_id,
            "params": params,
            "reference": reference_values(train.X),
            "training_description": train.description,
            "outcome": OUTCOME_DEFINITION,
        },
    )
    # Pinned before the upload: the registry keeps these, the artifact store the
    # files, so a copy changed in the store is refused on load.
    result.bundle_sha256 = bundle_digest(bundle_dir)
    result.code_sha256 = code_sha256()
    mlflow.set_tags({BUNDLE_TAG: result.bundle_sha256, CODE_TAG: result.code_sha256})
    with warnings.catch_warnings():
        # We log no input example on purpose: it would be a row of patient data.
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        info = _log_pyfunc(mlflow, bundle_dir)
    result.model_uri = info.model_uri
    result.run_id = mlflow.active_run().info.run_id


def _log_pyfunc(mlflow, bundle_dir: Path):
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_ENTRY),
        artifacts={"bundle": str(bundle_dir)},
        pip_requirements=_pip_requirements(),
        signature=_signature(),
    )


def _signature():
    """Input: every catalog field, optional and of any type (validation is ours, so a
    bad cell becomes that row's error rather than a failed request); output: risk."""
    from mlflow.models import ModelSignature  # optional heavy import (mlflow)
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = [ColSpec(AnyType(), "patient_id", required=False)]
    inputs += [ColSpec(AnyType(), f.name, required=False) for f in load_catalog()]
    outputs = [
        ColSpec("string", "patient_id", required=False),
        ColSpec("double", "risk"),
        ColSpec("string", "category"),
        *[
            spec
            for k in range(1, 4)
            for spec in (
                ColSpec("string", f"factor_{k}", required=False),
                ColSpec("double", f"contribution_{k}", required=False),
            )
        ],
        ColSpec("string", "error", required=False),
        ColSpec("string", "model_version"),
    ]
    return ModelSignature(Schema(inputs), Schema(outputs))


def _pip_requirements() -> list[str]:
    reqs = []
    for dist in (
        "plo-risk",
        "xgboost-cpu",
        "scikit-learn",
        "pandas",
        "numpy",
        "skops",
        "pydantic",
        "pandera",
        "pyyaml",
        "mlflow",
    ):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return reqs


def _plots(result: ModelResult, test: Dataset, exp: Experiment) -> dict[str, Any]:
    """The run's plots as bare figures (no pyplot: no global backend is touched)."""
    p = result.model.predict_proba(test.X)[:, 1]
    return {
        "calibration": calibration_figure(
            test.y, {result.name: p}, title=f"Calibration ({result.name})"
        ),
        "roc": roc_figure(test.y, p, result.estimate("auroc"), result.name),
        "decision_curve": decision_figure(test.y, p, exp.thresholds, result.name),
    }


# -------------------------------------------------------------- champion


class PromotionError(RuntimeError):
    """The champion could not be promoted safely (another promotion held on)."""


#: Seconds a promotion waits for another one to finish before giving up.
PROMOTION_WAIT_SECONDS = 600


@contextlib.contextmanager
def _promotion_lock(uri: str, say: Callable[[str], None]):
    """Read, decide and set the champion alias as one step (compare-and-set).

    MLflow has no atomic alias update, so two runs promoting at once could each
    read the old champion and the later write win, even when it is the worse
    model. The lock (flock) sits beside a SQLite store, or in the temporary
    folder for any other tracking URI, so it covers the runs of one machine; a
    shared tracking server used from several machines needs its own serialisation.
    """
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :] + ".champion.lock")
    else:
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"plo-risk-champion-{digest}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    held = contextlib.ExitStack()
    try:  # only taking the lock is translated here, not what runs under it
        held.enter_context(
            exclusive_lock(
                path,
                wait_seconds=PROMOTION_WAIT_SECONDS,
                on_wait=lambda pid: say(
                    f"waiting for another run (pid {pid}) to finish promoting its "
                    "champion"
                ),
            )
        )
    except LockHeld as other:
        raise PromotionError(
            f"another run (pid {other.pid}) has been promoting a champion in {uri} "
            f"for over {PROMOTION_WAIT_SECONDS} s (lock {path}); not promoted"
        ) from None
    with held:
        yield


def _current_champion(client, mlflow):
    """(version, loaded model) of the current champion, or (None, None)."""
    from mlflow.exceptions import MlflowException  # optional heavy import (mlflow)

    try:
        mv = client.get_model_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS)
    except MlflowException:
        return None, None
    try:
        pin = registry_pin(f"models:/{REGISTERED_NAME}/{mv.version}", client)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=pin.download_uri, dst_path=tmp
            )
            if pin.bundle_sha256 is None:
                # Registered before digests were recorded: compared as it is
                # (it is only compared here, never served).
                model, _ = load_bundle(Path(local) / "artifacts" / "bundle")
            else:
                model, _ = load_bundle(check_download(local, pin))
    except (BundleError, MlflowException, OSError) as exc:
        return mv.version, exc
    return mv.version, model


def _weakness(
    exp: Experiment,
    best: ModelResult,
    results: list[ModelResult],
    train: Dataset,
    test: Dataset,
) -> str | None:
    """Why the best model must not become the champion, or None.

    At chance (its AUROC interval reaches 0.5, or no interval and AUROC <= 0.5),
    or no better than the ISCD clinical rule on the same held-out rows (the rule is
    fitted here when the experiment does not compare it).
    """
    auc = best.metrics.loc["auroc"]
    low = auc["lower"] if np.isfinite(auc["lower"]) else auc["estimate"]
    if not low > 0.5:
        return (
            f"{best.name} is not better than chance on the held-out data "
            f"(AUROC {auc['estimate']:.3f}, lower bound {low:.3f})"
        )
    rule = next((r for r in results if r.family == "clinical_rule"), None)
    if rule is not None:
        rule_auc = rule.estimate("auroc")
    else:
        fitted = make_model("clinical_rule", cv=exp.cv.folds, random_state=exp.seed)
        fitted.fit(train.X, train.y)
        rule_auc = metric_functions.auroc(test.y, fitted.predict_proba(test.X)[:, 1])
    if not best.estimate("auroc") > rule_auc:
        return (
            f"{best.name} (AUROC {best.estimate('auroc'):.3f}) is no better than the "
            f"ISCD clinical rule (AUROC {rule_auc:.3f}) on the same held-out data"
        )
    return None


def _decide(
    exp: Experiment, best: ModelResult, current: Any, test: Dataset
) -> tuple[bool, str]:
    metric = exp.champion.metric
    min_improvement = exp.champion.min_improvement
    new = best.estimate(metric)
    if current is None:
        return True, f"no champion yet; {best.name} {metric}={new:.4f}"
    if isinstance(current, Exception):
        return True, (
            f"the current champion cannot be loaded ({current}); "
            f"replaced by {best.name}"
        )
    p_old = current.predict_proba(test.X)[:, 1]
    old = float(getattr(metric_functions, metric)(test.y, p_old))
    higher = _METRICS_HIGHER_BETTER[metric]
    gain = (new - old) if higher else (old - new)
    if gain > min_improvement:
        return True, (
            f"{best.name} {metric}={new:.4f} beats the champion's "
            f"{old:.4f} on the same held-out data by {gain:.4f} "
            f"(> {min_improvement})"
        )
    return False, (
        f"kept the champion: its {metric}={old:.4f} vs {best.name} "
        f"{new:.4f} on the same held-out data (improvement {gain:.4f} "
        f"not > {min_improvement})"
    )


# ------------------------------------------------------------ entry points


def _run(
    exp: Experiment,
    *,
    nested: bool,
    tracking_uri: str | None,
    progress: Callable[[str], None] | None,
    plan: Callable[..., list[ModelSpec]] | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> CompareResult:
    say = progress or (lambda _msg: None)
    specs = list(exp.model_specs)
    say("loading and validating the data")
    train_ds, test_ds = load_data(exp)
    say(
        f"{len(train_ds.y):,} training rows ({int(train_ds.y.sum()):,} fractures), "
        f"{len(test_ds.y):,} held-out rows ({int(test_ds.y.sum()):,} fractures)"
    )
    mlflow, client, exp_id, uri = _setup_mlflow(exp, tracking_uri)
    results: list[ModelResult] = []
    parent_id = None
    metric = exp.champion.metric
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        parent = (
            mlflow.start_run(
                experiment_id=exp_id,
                run_name=run_name or (f"{exp.name}" + (" (compare)" if nested else "")),
                tags=dict(tags or {}) or None,
            )
            if nested
            else None
        )
        try:
            if parent is not None:
                parent_id = parent.info.run_id
                if exp.source_file:
                    mlflow.log_artifact(exp.source_file, "config")
            if plan is not None:
                # Sees the training data only: the held-out set is never passed.
                specs = plan(train_ds, mlflow=mlflow, experiment_id=exp_id, say=say)
            if parent is not None:
                mlflow.log_params(
                    {
                        "experiment": exp.name,
                        "models": ",".join(s.name for s in specs),
                        "champion_metric": metric,
                    }
                )
            horizon = _fit_horizon(exp, train_ds, say)
            for spec in specs:
                result = _fit_one(spec, exp, train_ds, test_ds, say)
                if horizon is not None:
                    result.model.horizon_, result.model.horizon_interval_ = horizon
                    result.horizon_metrics = _horizon_metrics(horizon[0], test_ds, exp)
                say(f"{spec.name}: logging the run, its plots and the model to MLflow")
                with mlflow.start_run(
                    experiment_id=exp_id, run_name=spec.name, nested=nested
                ):
                    _log_model_run(mlflow, result, exp, train_ds, test_ds, workdir)
                results.append(result)
            higher = _METRICS_HIGHER_BETTER[metric]
            best = sorted(results, key=lambda r: r.estimate(metric), reverse=higher)[0]
            champion, version, replaced, reason = None, None, False, "not registered"
            if exp.champion.register_champion:
                say("choosing the champion")
                # weak first (it may fit the clinical rule): outside the lock
                weak = _weakness(exp, best, results, train_ds, test_ds)
                with _promotion_lock(uri, say):
                    current_version, current = _current_champion(client, mlflow)
                    if weak and not exp.champion.allow_weak:
                        replaced, reason = (
                            False,
                            f"not promoted: {weak} (set champion.allow_weak: true "
                            "to promote it anyway)",
                        )
                    else:
                        replaced, reason = _decide(exp, best, current, test_ds)
                    if replaced:
                        mv = mlflow.register_model(
                            best.model_uri,
                            REGISTERED_NAME,
                            tags={
                                BUNDLE_TAG: best.bundle_sha256,
                                CODE_TAG: best.code_sha256,
                            },
                        )
                        client.set_registered_model_alias(
                            REGISTERED_NAME, CHAMPION_ALIAS, mv.version
                        )
                        champion, version = best.name, str(mv.version)
                    else:
                        champion, version = None, str(current_version)
                if parent is not None:
                    mlflow.set_tags(
                        {
                            "plo_risk.champion_decision": reason,
                            "plo_risk.best_model": best.name,
                        }
                    )
                    mlflow.log_metric(f"best_{metric}", best.estimate(metric))
        finally:
            if parent is not None:
                mlflow.end_run()
    return CompareResult(
        exp,
        results,
        uri,
        parent_id,
        champion,
        version,
        replaced,
        reason,
        len(train_ds.y),
        len(test_ds.y),
        train_ds.n_rejected + test_ds.n_rejected,
    )


def train(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompareResult:
    """Fit, evaluate and log each model of an experiment as its own MLflow run.

    Parameters
    ----------
    config : path, mapping or Experiment
        The experiment (e.g. ``training/baseline.yaml``); checked whole before any
        work (:func:`load_experiment`).
    tracking_uri : str, default=None
        MLflow tracking URI; default :func:`default_tracking_uri`.
    progress : callable, default=None
        Called with a short message at each step (the CLI shows it).

    Returns
    -------
    CompareResult
    """
    exp = load_experiment(config)
    return _run(exp, nested=False, tracking_uri=tracking_uri, progress=progress)


def run_planned(
    exp: Experiment,
    plan: Callable[..., list[ModelSpec]],
    *,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> CompareResult:
    """:func:`compare` with the models chosen inside its parent run.

    ``plan(train, mlflow=..., experiment_id=..., say=...)`` gets the training
    :class:`Dataset` only (never the held-out one) while the parent run is
    active, may log nested runs of its own, and returns the :class:`ModelSpec`
    list that is then fitted, evaluated, logged and put to the champion rule
    exactly as :func:`compare` does (:func:`plo_risk.tuning.tune_experiment`).

    Parameters
    ----------
    exp : Experiment
    plan : callable
    tracking_uri : str, default=None
    progress : callable, default=None
    run_name : str, default=None
        The parent run's name (default: the experiment's).
    tags : dict, default=None
        Tags of the parent run.

    Returns
    -------
    CompareResult
    """
    return _run(
        exp,
        nested=True,
        tracking_uri=tracking_uri,
        progress=progress,
        plan=plan,
        run_name=run_name,
        tags=tags,
    )


def compare(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompareResult:
    """Compare the experiment's models in one parent MLflow run; promote a champion.

    Each model is a nested run with its parameters, metrics with bootstrap CIs,
    subgroup table (cells of fewer than ``evaluation.min_cell`` patients, events or
    non-events suppressed: :func:`~plo_risk.evaluate.suppress_small_cells`),
    calibration/ROC/decision-curve plots and the model (bundle as an
    MLflow pyfunc). The best model by ``champion.metric`` is registered as
    ``plo-risk`` with alias ``champion`` when it beats the current champion on the
    same held-out data by more than ``champion.min_improvement``.

    Parameters
    ----------
    config : path, mapping or Experiment
        The experiment (e.g. ``training/compare.yaml``); checked whole before any
        work (:func:`load_experiment`).
    tracking_uri : str, default=None
    progress : callable, default=None

    Returns
    -------
    CompareResult
    """
    exp = load_experiment(config)
    return _run(exp, nested=True, tracking_uri=tracking_uri, progress=progress)

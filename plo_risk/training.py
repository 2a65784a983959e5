"""Experiments: train, evaluate and compare models, tracked in MLflow.

An experiment is one YAML file in ``training/`` (data, models, hyperparameters, CV,
seed, thresholds, champion rule) that maps one to one onto :class:`Experiment`.
:func:`train` fits the experiment's models and logs a run each; :func:`compare`
logs a parent run with one nested run per model, picks the champion by the metric
the config declares, registers it as ``plo-risk`` with the alias ``champion``, and
replaces an existing champion only when the new one is better by the declared rule
on the same held-out data.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlflow.db``
in the working folder (no server needed); artifacts go beside it in ``mlartifacts/``.
No row-level patient data is logged: metrics, plots of aggregates, the model bundle
and a fingerprint of the training data only.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from plo_risk.catalog import load_catalog
from plo_risk.models import MODEL_NAMES, make_model

__all__ = [
    "CompareResult",
    "DataSpec",
    "Experiment",
    "ModelResult",
    "compare",
    "default_tracking_uri",
    "load_experiment",
    "load_data",
    "train",
]

REGISTERED_NAME = "plo-risk"
CHAMPION_ALIAS = "champion"
_METRICS_HIGHER_BETTER = {"auroc": True, "auprc": True, "brier": False, "ici": False}


class ConfigError(ValueError):
    """An experiment file that does not fit the expected shape (names the key)."""


# --------------------------------------------------------------------- config


@dataclass(frozen=True)
class DataSpec:
    """Where one data set comes from: the generator or a file.

    ``source="synthetic"`` uses ``n``, ``setting``, ``prevalence``,
    ``missingness`` and ``seed`` (see :func:`plo_risk.synthetic.generate_cohort`);
    ``source="file"`` reads ``path`` (CSV or Parquet) with optional ``units``.
    """

    source: str = "synthetic"
    n: int = 20_000
    setting: str = "referral"
    prevalence: float | None = None
    missingness: str = "realistic"
    seed: int = 0
    path: str | None = None
    units: dict[str, str] | None = None


@dataclass(frozen=True)
class Experiment:
    """One experiment, as read from a YAML file in ``training/``."""

    name: str
    train: DataSpec
    test: DataSpec | None = None
    test_fraction: float = 0.3
    models: tuple[tuple[str, dict], ...] = (("xgboost", {}),)
    cv_folds: int = 5
    seed: int = 0
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"moderate": 0.02, "high": 0.10}
    )
    n_boot: int = 200
    ci: float = 0.95
    subgroups: tuple[str, ...] = ("age_band", "ancestry", "parity_band")
    champion_metric: str = "auroc"
    champion_min_improvement: float = 0.0
    register: bool = True
    interval_models: int = 10
    experiment_name: str = "plo-risk"
    description: str = ""
    source_file: str | None = None


_TOP_KEYS = {
    "name",
    "description",
    "data",
    "models",
    "cv",
    "seed",
    "thresholds",
    "evaluation",
    "champion",
    "mlflow",
    "interval",
}


def _need(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise ConfigError(f"{where}: missing key '{key}'")
    return mapping[key]


def _check_keys(mapping: Any, allowed: set[str], where: str) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {mapping!r}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        import difflib

        hints = [
            f"{k!r} (did you mean {m[0]!r}?)"
            if (m := difflib.get_close_matches(k, sorted(allowed), n=1))
            else repr(k)
            for k in unknown
        ]
        raise ConfigError(
            f"{where}: unknown keys {', '.join(hints)}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )
    return dict(mapping)


def _data_spec(raw: Any, where: str) -> DataSpec:
    d = _check_keys(raw, {f for f in DataSpec.__dataclass_fields__}, where)
    spec = DataSpec(**d)
    if spec.source not in ("synthetic", "file"):
        raise ConfigError(
            f"{where}.source={spec.source!r}: must be 'synthetic' or 'file'"
        )
    if spec.source == "file" and not spec.path:
        raise ConfigError(f"{where}: source 'file' needs 'path'")
    if spec.source == "synthetic" and (not isinstance(spec.n, int) or spec.n < 10):
        raise ConfigError(f"{where}.n={spec.n!r}: must be a whole number >= 10")
    return spec


def load_experiment(config: str | Path | Mapping[str, Any]) -> Experiment:
    """Read and check an experiment YAML file (or an already parsed mapping).

    Parameters
    ----------
    config : str, Path or Mapping

    Returns
    -------
    Experiment

    Raises
    ------
    ConfigError
        Naming the key that is missing, unknown or has a bad value.
    FileNotFoundError
        If the file does not exist.
    """
    source_file = None
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"experiment file {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        where = str(path)
        source_file = str(path)
    else:
        raw, where = config, "config"
    raw = _check_keys(raw, _TOP_KEYS, where)
    data = _check_keys(
        _need(raw, "data", where), {"train", "test", "test_fraction"}, f"{where}: data"
    )
    train_spec = _data_spec(
        _need(data, "train", f"{where}: data"), f"{where}: data.train"
    )
    test_spec = (
        _data_spec(data["test"], f"{where}: data.test")
        if data.get("test") is not None
        else None
    )
    models_raw = _need(raw, "models", where)
    if not isinstance(models_raw, list) or not models_raw:
        raise ConfigError(f"{where}: models must be a non-empty list")
    models = []
    for i, m in enumerate(models_raw):
        m = _check_keys(m, {"name", "params"}, f"{where}: models[{i}]")
        name = _need(m, "name", f"{where}: models[{i}]")
        if name not in MODEL_NAMES:
            raise ConfigError(
                f"{where}: models[{i}].name={name!r}: must be one of "
                f"{', '.join(MODEL_NAMES)}"
            )
        models.append((name, dict(m.get("params") or {})))
    cv = _check_keys(raw.get("cv"), {"folds"}, f"{where}: cv")
    ev = _check_keys(
        raw.get("evaluation"), {"n_boot", "ci", "subgroups"}, f"{where}: evaluation"
    )
    champ = _check_keys(
        raw.get("champion"),
        {"metric", "min_improvement", "register"},
        f"{where}: champion",
    )
    tracking = _check_keys(raw.get("mlflow"), {"experiment"}, f"{where}: mlflow")
    interval = _check_keys(raw.get("interval"), {"n_models"}, f"{where}: interval")
    n_models = interval.get("n_models", 10)
    if not isinstance(n_models, int) or not (n_models == 0 or n_models >= 2):
        raise ConfigError(
            f"{where}: interval.n_models={n_models!r}: must be 0 (no "
            "interval) or a whole number >= 2"
        )
    thresholds = raw.get("thresholds", {"moderate": 0.02, "high": 0.10})
    if not isinstance(thresholds, Mapping) or not all(
        isinstance(v, (int, float)) and 0 < v < 1 for v in thresholds.values()
    ):
        raise ConfigError(
            f"{where}: thresholds={thresholds!r}: must map category "
            "names to probabilities in (0, 1)"
        )
    metric = champ.get("metric", "auroc")
    if metric not in _METRICS_HIGHER_BETTER:
        raise ConfigError(
            f"{where}: champion.metric={metric!r}: must be one of "
            f"{', '.join(_METRICS_HIGHER_BETTER)}"
        )
    fraction = data.get("test_fraction", 0.3)
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(
            f"{where}: data.test_fraction={fraction!r}: must be in (0, 1)"
        )
    folds = cv.get("folds", 5)
    if not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"{where}: cv.folds={folds!r}: must be a whole number >= 2")
    return Experiment(
        name=str(
            raw.get("name") or (Path(source_file).stem if source_file else "experiment")
        ),
        description=str(raw.get("description") or ""),
        train=train_spec,
        test=test_spec,
        test_fraction=float(fraction),
        models=tuple(models),
        cv_folds=folds,
        seed=int(raw.get("seed", 0)),
        thresholds={str(k): float(v) for k, v in thresholds.items()},
        n_boot=int(ev.get("n_boot", 200)),
        ci=float(ev.get("ci", 0.95)),
        subgroups=tuple(ev.get("subgroups", ("age_band", "ancestry", "parity_band"))),
        champion_metric=metric,
        champion_min_improvement=float(champ.get("min_improvement", 0.0)),
        register=bool(champ.get("register", True)),
        interval_models=n_models,
        experiment_name=str(tracking.get("experiment", "plo-risk")),
        source_file=source_file,
    )


# ----------------------------------------------------------------------- data


@dataclass
class Dataset:
    """Validated model input, outcome and the rows rejected on the way."""

    X: pd.DataFrame
    y: np.ndarray
    n_input: int
    n_rejected: int
    description: str


def _read(spec: DataSpec) -> tuple[pd.DataFrame, str]:
    if spec.source == "synthetic":
        from plo_risk.synthetic import generate_cohort

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
        raise ConfigError(f"data file {path}: must end in .csv or .parquet")
    return df, f"file {path}"


def _dataset(df: pd.DataFrame, spec: DataSpec, description: str) -> Dataset:
    from plo_risk.schema import OUTCOME_COLUMN, validate_frame

    if OUTCOME_COLUMN not in df.columns:
        raise ConfigError(
            f"{description}: has no '{OUTCOME_COLUMN}' column (the outcome to train on)"
        )
    res = validate_frame(df, units=spec.units, unknown="ignore")
    y = res.valid[OUTCOME_COLUMN].to_numpy(dtype=np.int64)
    X = res.valid.drop(
        columns=[
            c
            for c in ("patient_id", OUTCOME_COLUMN, "true_risk")
            if c in res.valid.columns
        ]
    )
    return Dataset(X, y, res.n_input, res.n_rejected, description)


def load_data(exp: Experiment) -> tuple[Dataset, Dataset]:
    """The training and held-out data of an experiment, validated.

    A separate ``test`` source is used when given; otherwise a stratified
    ``test_fraction`` of the training source is held out (seeded).
    """
    from sklearn.model_selection import train_test_split

    df, desc = _read(exp.train)
    if exp.test is not None:
        tdf, tdesc = _read(exp.test)
        return _dataset(df, exp.train, desc), _dataset(tdf, exp.test, tdesc)
    full = _dataset(df, exp.train, desc)
    idx = np.arange(len(full.y))
    tr, te = train_test_split(
        idx, test_size=exp.test_fraction, stratify=full.y, random_state=exp.seed
    )
    share = (full.n_rejected * len(tr)) // max(len(idx), 1)
    train = Dataset(
        full.X.iloc[tr], full.y[tr], len(tr) + share, share, f"{desc} (training part)"
    )
    test = Dataset(
        full.X.iloc[te],
        full.y[te],
        len(te) + full.n_rejected - share,
        full.n_rejected - share,
        f"{desc} (held-out part)",
    )
    return train, test


# ----------------------------------------------------------------- tracking


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<cwd>/mlflow.db``."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{(Path.cwd() / 'mlflow.db').as_posix()}"
    )


def ensure_tracking_uri(tracking_uri: str | None = None) -> str:
    """Point MLflow (tracking and registry) at ``tracking_uri`` or the default."""
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _setup_mlflow(exp: Experiment, tracking_uri: str | None):
    import logging

    import mlflow

    uri = ensure_tracking_uri(tracking_uri)
    # MLflow's alembic migrations log at INFO on a new database; keep them quiet.
    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(exp.experiment_name)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):
            db = Path(uri[len("sqlite:///") :])
            location = (db.parent / "mlartifacts").resolve().as_uri()
        exp_id = client.create_experiment(
            exp.experiment_name, artifact_location=location
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
        higher = _METRICS_HIGHER_BETTER[self.experiment.champion_metric]
        return board.sort_values(
            self.experiment.champion_metric, ascending=not higher
        ).reset_index(drop=True)


def _evaluate(
    model: Any, test: Dataset, exp: Experiment
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from plo_risk.evaluation import age_band, evaluate, evaluate_subgroups, parity_band

    p = model.predict_proba(test.X)[:, 1]
    metrics = evaluate(
        test.y,
        p,
        thresholds=exp.thresholds,
        n_boot=exp.n_boot,
        ci=exp.ci,
        seed=exp.seed,
    )
    groups = {}
    for g in exp.subgroups:
        if g == "age_band":
            groups[g] = age_band(test.X["age_years"].to_numpy())
        elif g == "parity_band":
            groups[g] = parity_band(test.X["parity"].to_numpy())
        elif g in test.X.columns:
            groups[g] = test.X[g].to_numpy()
        else:
            raise ConfigError(
                f"evaluation.subgroups: {g!r} is neither age_band, "
                "parity_band nor a catalog field"
            )
    subgroups = (
        evaluate_subgroups(
            test.y,
            p,
            groups,
            thresholds=exp.thresholds,
            n_boot=min(exp.n_boot, 100),
            ci=exp.ci,
            seed=exp.seed,
        )
        if groups
        else pd.DataFrame()
    )
    return metrics, subgroups


def _metric_key(name: str) -> str:
    return name.replace("@", "_at_").replace(" ", "_")


def _fit_one(
    name: str, params: dict, exp: Experiment, train: Dataset, test: Dataset
) -> ModelResult:
    start = time.perf_counter()
    model = make_model(
        name,
        params=params,
        thresholds=exp.thresholds,
        cv=exp.cv_folds,
        random_state=exp.seed,
    )
    if name == "hist_gradient_boosting":
        # scikit-learn's OpenMP threads spin-wait: when another process shares the
        # cores a fit slows 10-20x (measured here). One thread costs ~1.5x at most.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(train.X, train.y)
    else:
        model.fit(train.X, train.y)
    if name == "xgboost" and exp.interval_models:
        from plo_risk.models import fit_bootstrap_ensemble

        fit_bootstrap_ensemble(
            model, train.X, train.y, n_models=exp.interval_models, random_state=exp.seed
        )
    metrics, subgroups = _evaluate(model, test, exp)
    return ModelResult(name, model, metrics, subgroups, time.perf_counter() - start)


def _log_model_run(
    mlflow,
    result: ModelResult,
    exp: Experiment,
    train: Dataset,
    test: Dataset,
    workdir: Path,
) -> None:
    from plo_risk.assess import reference_values
    from plo_risk.bundle import data_fingerprint, save_bundle
    from plo_risk.models import DEFAULT_PARAMS

    params = {**DEFAULT_PARAMS[result.name], **dict(exp.models)[result.name]}
    mlflow.log_params(
        {
            "model": result.name,
            "cv_folds": exp.cv_folds,
            "seed": exp.seed,
            **{f"param.{k}": v for k, v in params.items()},
            **{f"threshold.{k}": v for k, v in exp.thresholds.items()},
            "data.train": train.description,
            "data.test": test.description,
        }
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
        mlflow.log_text(result.subgroups.to_csv(index=False), "subgroups.csv")
    for fig_name, fig in _plots(result, test, exp).items():
        mlflow.log_figure(fig, f"plots/{fig_name}.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
    fingerprint = data_fingerprint(train.X, train.y)
    mlflow.set_tags(
        {
            "plo_risk.model": result.name,
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
        },
    )
    with warnings.catch_warnings():
        # We log no input example on purpose: it would be a row of patient data.
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        info = _log_pyfunc(mlflow, bundle_dir)
    result.model_uri = info.model_uri
    result.run_id = mlflow.active_run().info.run_id


def _log_pyfunc(mlflow, bundle_dir: Path):
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("_mlflow_model.py")),
        artifacts={"bundle": str(bundle_dir)},
        pip_requirements=_pip_requirements(),
        signature=_signature(),
    )


def _signature():
    """Input: every catalog field, optional and of any type (validation is ours, so a
    bad cell becomes that row's error rather than a failed request); output: risk."""
    from mlflow.models import ModelSignature
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
    from importlib.metadata import version

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
        except Exception:  # noqa: BLE001
            continue
    return reqs


def _plots(result: ModelResult, test: Dataset, exp: Experiment) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from plo_risk.evaluation import calibration_curve, decision_curve

    p = result.model.predict_proba(test.X)[:, 1]
    figs = {}
    fig, ax = plt.subplots(figsize=(5, 5))
    cal = calibration_curve(test.y, p, n_bins=10)
    top = float(max(cal.iloc[:, 0].max(), cal.iloc[:, 1].max()) * 1.05)
    ax.plot([0, top], [0, top], ls="--", color="grey", label="ideal")
    ax.plot(cal.iloc[:, 0], cal.iloc[:, 1], marker="o", label=result.name)
    ax.set(
        xlabel="predicted risk",
        ylabel="observed fracture rate",
        title=f"Calibration ({result.name})",
    )
    ax.legend()
    figs["calibration"] = fig
    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr, _ = roc_curve(test.y, p)
    ax.plot(fpr, tpr, label=f"{result.name} (AUROC {result.estimate('auroc'):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    ax.legend()
    figs["roc"] = fig
    fig, ax = plt.subplots(figsize=(6, 4))
    hi = max(exp.thresholds.values()) * 2
    dc = decision_curve(test.y, p, np.linspace(0.005, min(hi, 0.5), 60))
    ax.plot(dc["threshold"], dc["net_benefit_model"], label=result.name)
    ax.plot(dc["threshold"], dc["net_benefit_all"], ls="--", label="treat all")
    ax.axhline(0, color="grey", lw=1, label="treat none")
    ax.set_ylim(bottom=min(-0.005, float(dc["net_benefit_model"].min())))
    ax.set(xlabel="threshold probability", ylabel="net benefit", title="Decision curve")
    ax.legend()
    figs["decision_curve"] = fig
    return figs


# -------------------------------------------------------------- champion


def _current_champion(client, mlflow):
    """(version, loaded model) of the current champion, or (None, None)."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS)
    except MlflowException:
        return None, None
    from plo_risk.bundle import BundleError, load_bundle

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{REGISTERED_NAME}/{mv.version}", dst_path=tmp
            )
            model, _ = load_bundle(Path(local) / "artifacts" / "bundle")
    except (BundleError, MlflowException, OSError) as exc:
        return mv.version, exc
    return mv.version, model


def _decide(
    exp: Experiment, best: ModelResult, current: Any, test: Dataset
) -> tuple[bool, str]:
    from plo_risk import evaluation

    metric = exp.champion_metric
    new = best.estimate(metric)
    if current is None:
        return True, f"no champion yet; {best.name} {metric}={new:.4f}"
    if isinstance(current, Exception):
        return True, (
            f"the current champion cannot be loaded ({current}); "
            f"replaced by {best.name}"
        )
    p_old = current.predict_proba(test.X)[:, 1]
    old = float(getattr(evaluation, metric)(test.y, p_old))
    higher = _METRICS_HIGHER_BETTER[metric]
    gain = (new - old) if higher else (old - new)
    if gain > exp.champion_min_improvement:
        return True, (
            f"{best.name} {metric}={new:.4f} beats the champion's "
            f"{old:.4f} on the same held-out data by {gain:.4f} "
            f"(> {exp.champion_min_improvement})"
        )
    return False, (
        f"kept the champion: its {metric}={old:.4f} vs {best.name} "
        f"{new:.4f} on the same held-out data (improvement {gain:.4f} "
        f"not > {exp.champion_min_improvement})"
    )


# ------------------------------------------------------------ entry points


def _run(
    exp: Experiment,
    *,
    nested: bool,
    tracking_uri: str | None,
    progress: Callable[[str], None] | None,
) -> CompareResult:
    say = progress or (lambda _msg: None)
    say("loading data")
    train_ds, test_ds = load_data(exp)
    mlflow, client, exp_id, uri = _setup_mlflow(exp, tracking_uri)
    results: list[ModelResult] = []
    parent_id = None
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        parent = (
            mlflow.start_run(
                experiment_id=exp_id,
                run_name=f"{exp.name}" + (" (compare)" if nested else ""),
            )
            if nested
            else None
        )
        try:
            if parent is not None:
                parent_id = parent.info.run_id
                mlflow.log_params(
                    {
                        "experiment": exp.name,
                        "models": ",".join(n for n, _ in exp.models),
                        "champion_metric": exp.champion_metric,
                    }
                )
                if exp.source_file:
                    mlflow.log_artifact(exp.source_file, "config")
            for name, params in exp.models:
                say(f"fitting {name}")
                result = _fit_one(name, params, exp, train_ds, test_ds)
                with mlflow.start_run(
                    experiment_id=exp_id, run_name=name, nested=nested
                ):
                    _log_model_run(mlflow, result, exp, train_ds, test_ds, workdir)
                results.append(result)
            higher = _METRICS_HIGHER_BETTER[exp.champion_metric]
            best = sorted(
                results, key=lambda r: r.estimate(exp.champion_metric), reverse=higher
            )[0]
            champion, version, replaced, reason = None, None, False, "not registered"
            if exp.register:
                say("choosing the champion")
                current_version, current = _current_champion(client, mlflow)
                replaced, reason = _decide(exp, best, current, test_ds)
                if replaced:
                    mv = mlflow.register_model(best.model_uri, REGISTERED_NAME)
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
                    mlflow.log_metric(
                        f"best_{exp.champion_metric}",
                        best.estimate(exp.champion_metric),
                    )
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
        The experiment (e.g. ``training/baseline.yaml``).
    tracking_uri : str, default=None
        MLflow tracking URI; default :func:`default_tracking_uri`.
    progress : callable, default=None
        Called with a short message at each step (the CLI shows it).

    Returns
    -------
    CompareResult
    """
    exp = config if isinstance(config, Experiment) else load_experiment(config)
    return _run(exp, nested=False, tracking_uri=tracking_uri, progress=progress)


def compare(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompareResult:
    """Compare the experiment's models in one parent MLflow run; promote a champion.

    Each model is a nested run with its parameters, metrics with bootstrap CIs,
    subgroup table, calibration/ROC/decision-curve plots and the model (bundle as an
    MLflow pyfunc). The best model by ``champion.metric`` is registered as
    ``plo-risk`` with alias ``champion`` when it beats the current champion on the
    same held-out data by more than ``champion.min_improvement``.

    Parameters
    ----------
    config : path, mapping or Experiment
        The experiment (e.g. ``training/compare.yaml``).
    tracking_uri : str, default=None
    progress : callable, default=None

    Returns
    -------
    CompareResult
    """
    exp = config if isinstance(config, Experiment) else load_experiment(config)
    return _run(exp, nested=True, tracking_uri=tracking_uri, progress=progress)

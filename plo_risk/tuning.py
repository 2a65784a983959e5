"""Hyperparameter search with Optuna, tracked in MLflow.

A model of an experiment that declares ``tune`` (:class:`plo_risk.training.TuneConfig`)
is searched with Optuna's TPE sampler (seeded) and median pruner. Each trial is
scored by a stratified ``tune.cv``-fold cross-validation inside the training data
only (the held-out set is never seen while searching); the running mean after
each fold is reported to the pruner. Every trial is a nested MLflow run under one
parent run tagged ``plo_risk.kind=tune``; the best parameters are then refitted on
the whole training data and evaluated on the held-out set beside the model's
untuned parameters, through the same code path, logging and champion rule as
:func:`plo_risk.training.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from plo_risk.evaluate import metrics as metric_functions
from plo_risk.model.families import get_family
from plo_risk.model.zoo import make_model
from plo_risk.training import (
    CompareResult,
    ConfigError,
    Dataset,
    Experiment,
    ModelSpec,
    TuneConfig,
    load_experiment,
    run_planned,
)

__all__ = ["KIND_TAG", "TuneResult", "TunedModel", "TuningError", "tune_experiment"]

#: Tag of the parent run (``tune``) and of each nested run (``trial``).
KIND_TAG = "plo_risk.kind"
TUNED_SUFFIX = "-tuned"


class TuningError(RuntimeError):
    """A search that gave no usable best trial (every trial pruned or stopped by
    the timeout, or a best value that is not finite)."""


#: Direction of each objective.
_MAXIMIZE = {"auroc": True, "log_loss": False}


@dataclass
class TunedModel:
    """The search of one model: its best parameters and trials."""

    name: str
    family: str
    metric: str
    best_params: dict[str, Any]
    best_value: float
    n_trials: int
    n_pruned: int
    trial_run_ids: list[str] = field(default_factory=list)


@dataclass
class TuneResult:
    """What :func:`tune_experiment` did: the searches and the refits."""

    tuned: list[TunedModel]
    compare: CompareResult

    @property
    def parent_run_id(self) -> str | None:
        return self.compare.parent_run_id

    def summary(self) -> pd.DataFrame:
        """Default vs tuned parameters of each model on the held-out data: AUROC
        and calibration slope with their bootstrap CIs."""
        by_name = {r.name: r for r in self.compare.results}
        rows = []
        for t in self.tuned:
            for variant, name in (
                ("default", t.name),
                ("tuned", t.name + TUNED_SUFFIX),
            ):
                m = by_name[name].metrics
                row: dict[str, Any] = {"model": t.name, "params": variant}
                for metric in ("auroc", "calibration_slope"):
                    row[metric] = float(m.loc[metric, "estimate"])
                    row[f"{metric}_lower"] = float(m.loc[metric, "lower"])
                    row[f"{metric}_upper"] = float(m.loc[metric, "upper"])
                row[f"cv_{t.metric}"] = t.best_value if variant == "tuned" else np.nan
                rows.append(row)
        return pd.DataFrame(rows)


def _suggest(trial, name: str, spec) -> Any:
    if spec.type == "categorical":
        return trial.suggest_categorical(name, spec.choices)
    if spec.type == "int":
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, log=spec.log)


def _score(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    if metric == "auroc":
        return float(metric_functions.auroc(y, p))
    return float(log_loss(y, p, labels=[0, 1]))


def _search(
    spec: ModelSpec,
    exp: Experiment,
    train: Dataset,
    *,
    mlflow,
    experiment_id: str,
    say: Callable[[str], None],
) -> TunedModel:
    cfg: TuneConfig = spec.tune  # type: ignore[assignment]
    seed = exp.seed if cfg.seed is None else cfg.seed
    maximize = _MAXIMIZE[cfg.metric]
    folds = list(
        StratifiedKFold(n_splits=cfg.cv, shuffle=True, random_state=seed).split(
            train.X, train.y
        )
    )
    fam = get_family(spec.family)
    run_ids: list[str] = []

    def objective(trial) -> float:
        suggested = {k: _suggest(trial, k, s) for k, s in cfg.space.items()}
        params = {**spec.params, **suggested}
        values: list[float] = []
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"{spec.name} trial {trial.number}",
            nested=True,
            tags={KIND_TAG: "trial", "plo_risk.model": spec.name},
        ) as run:
            run_ids.append(run.info.run_id)
            mlflow.log_params(
                {
                    "model": spec.name,
                    "family": spec.family,
                    "trial": trial.number,
                    **{f"param.{k}": v for k, v in params.items()},
                }
            )
            pruned = False
            for k, (fit_rows, score_rows) in enumerate(folds):
                model = make_model(
                    spec.family,
                    params=params,
                    thresholds=exp.thresholds,
                    cv=exp.cv.folds,
                    random_state=seed,
                )
                with fam.fit_context():
                    model.fit(train.X.iloc[fit_rows], train.y[fit_rows])
                p = model.predict_proba(train.X.iloc[score_rows])[:, 1]
                values.append(_score(cfg.metric, train.y[score_rows], p))
                mlflow.log_metric(f"cv_{cfg.metric}_fold", values[-1], step=k)
                trial.report(float(np.mean(values)), k)
                if k < len(folds) - 1 and trial.should_prune():
                    pruned = True
                    break
            value = float(np.mean(values))
            mlflow.log_metrics({f"cv_{cfg.metric}": value, "cv_folds_run": len(values)})
            mlflow.set_tag("plo_risk.trial_state", "pruned" if pruned else "complete")
        if pruned:
            raise optuna.TrialPruned()
        return value

    def show(study, trial) -> None:
        done = len(study.trials)
        try:
            best = f"best cv {cfg.metric} so far {study.best_value:.4f}"
        except ValueError:  # every trial so far pruned
            best = "no complete trial yet"
        state = "pruned" if trial.state == optuna.trial.TrialState.PRUNED else "done"
        say(f"{spec.name}: trial {done}/{cfg.n_trials} {state}; {best}")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if maximize else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(),
        study_name=f"{exp.name}:{spec.name}",
    )
    say(
        f"{spec.name}: tuning {', '.join(cfg.space)} over {cfg.n_trials} trials, "
        f"{cfg.cv}-fold CV {cfg.metric} on {len(train.y):,} training rows"
    )
    study.optimize(
        objective, n_trials=cfg.n_trials, timeout=cfg.timeout, callbacks=[show]
    )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise TuningError(
            f"{spec.name}: no trial of {len(study.trials)} completed (all pruned or "
            "stopped by the timeout); raise tune.n_trials or tune.timeout"
        )
    best = study.best_trial
    value = float(best.value)
    if not math.isfinite(value):
        raise TuningError(f"{spec.name}: the best cv {cfg.metric} is {value}")
    mlflow.log_params(
        {f"{spec.name}.best.{k}": v for k, v in best.params.items()}
        | {f"{spec.name}.n_trials": len(study.trials)}
    )
    mlflow.log_metric(f"{spec.name}.best_cv_{cfg.metric}", value)
    return TunedModel(
        spec.name,
        spec.family,
        cfg.metric,
        dict(best.params),
        value,
        len(study.trials),
        sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        run_ids,
    )


def tune_experiment(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> TuneResult:
    """Tune every model of an experiment that declares ``tune``; refit and compare.

    Parameters
    ----------
    config : path, mapping or Experiment
        The experiment (e.g. ``training/tune.yaml``); checked whole before any work.
    tracking_uri : str, default=None
        MLflow tracking URI; default :func:`plo_risk.training.default_tracking_uri`.
    progress : callable, default=None
        Called with a short message at each step and after each trial
        (``trial k/n``, best value so far).

    Returns
    -------
    TuneResult
        The searches and the :class:`~plo_risk.training.CompareResult` of the
        refits: each tuned model as ``<name>`` (its parameters as given) and
        ``<name>-tuned`` (the best trial's), evaluated on the held-out data.

    Raises
    ------
    ConfigError
        If the experiment is invalid or no model declares ``tune``.
    TuningError
        If a search gives no usable best trial.
    """
    exp = load_experiment(config)
    to_tune = [s for s in exp.model_specs if s.tune is not None]
    if not to_tune:
        raise ConfigError(
            exp.source_file or "config",
            [
                "models: no model declares 'tune' (e.g. tune: {n_trials: 20, "
                "space: {max_depth: {type: int, low: 2, high: 6}}})"
            ],
        )
    tuned: list[TunedModel] = []

    def plan(train: Dataset, *, mlflow, experiment_id, say) -> list[ModelSpec]:
        specs = []
        for spec in exp.model_specs:
            specs.append(spec)
            if spec.tune is None:
                continue
            found = _search(
                spec, exp, train, mlflow=mlflow, experiment_id=experiment_id, say=say
            )
            tuned.append(found)
            specs.append(
                ModelSpec(
                    spec.name + TUNED_SUFFIX,
                    spec.family,
                    {**spec.params, **found.best_params},
                )
            )
        return specs

    result = run_planned(
        exp,
        plan,
        tracking_uri=tracking_uri,
        progress=progress,
        run_name=f"{exp.name} (tune)",
        tags={KIND_TAG: "tune"},
    )
    return TuneResult(tuned, result)

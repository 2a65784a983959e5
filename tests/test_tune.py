"""Hyperparameter search: the held-out set is never seen, trials are nested MLflow
runs, a seed fixes the choice, a bad search space is a clear ConfigError."""

from __future__ import annotations

import mlflow
import pytest
import yaml
from typer.testing import CliRunner

from plo_risk.cli import app
from plo_risk.data.schema import ID_COLUMN, OUTCOME_COLUMN
from plo_risk.data.synthetic import generate_cohort
from plo_risk.training import ConfigError, load_experiment
from plo_risk.tuning import KIND_TAG, TuningError, tune_experiment

N_TRIALS = 3


def _config(train_path, test_path) -> dict:
    return {
        "name": "tiny-tune",
        "seed": 5,
        "data": {"train": {"path": str(train_path)}, "test": {"path": str(test_path)}},
        "models": [
            {
                "name": "xgboost",
                "params": {"n_estimators": 20, "max_depth": 3},
                "tune": {
                    "n_trials": N_TRIALS,
                    "cv": 3,
                    "space": {
                        "max_depth": {"type": "int", "low": 1, "high": 4},
                        "learning_rate": {
                            "type": "float",
                            "low": 0.02,
                            "high": 0.3,
                            "log": True,
                        },
                    },
                },
            }
        ],
        "cv": {"folds": 2},
        "evaluation": {"n_boot": 10, "subgroups": []},
        "interval": {"n_models": 0},
        "champion": {"register": False},
        "mlflow": {"experiment": "tune-test"},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One search with the true held-out labels, one with them flipped, and the
    first again through the CLI, each in its own tracking store."""
    tmp = tmp_path_factory.mktemp("tune")
    train = generate_cohort(900, seed=11).drop(columns=[ID_COLUMN, "fracture_month"])
    test = generate_cohort(600, seed=12).drop(columns=[ID_COLUMN, "fracture_month"])
    poisoned = test.assign(**{OUTCOME_COLUMN: 1 - test[OUTCOME_COLUMN]})
    train.to_csv(tmp / "train.csv", index=False)
    test.to_csv(tmp / "test.csv", index=False)
    poisoned.to_csv(tmp / "poisoned.csv", index=False)
    clean = _config(tmp / "train.csv", tmp / "test.csv")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mp.chdir(tmp)
        uri = f"sqlite:///{tmp / 'clean.db'}"
        first = tune_experiment(clean, tracking_uri=uri)
        flipped = tune_experiment(
            _config(tmp / "train.csv", tmp / "poisoned.csv"),
            tracking_uri=f"sqlite:///{tmp / 'poisoned.db'}",
        )
        (tmp / "tiny.yaml").write_text(yaml.safe_dump(clean, sort_keys=False))
        again_uri = f"sqlite:///{tmp / 'again.db'}"
        mp.setenv("MLFLOW_TRACKING_URI", again_uri)
        cli = CliRunner().invoke(app, ["tune", "--config", str(tmp / "tiny.yaml")])
    return {
        "first": first,
        "uri": uri,
        "flipped": flipped,
        "cli": cli,
        "again_uri": again_uri,
    }


def test_the_held_out_labels_never_change_the_search(runs):
    first, flipped = runs["first"].tuned[0], runs["flipped"].tuned[0]
    assert first.best_params == flipped.best_params
    assert first.best_value == flipped.best_value
    # ... while the held-out evaluation does see them
    auc = {r.name: r.estimate("auroc") for r in runs["flipped"].compare.results}
    assert (
        auc["xgboost-tuned"] < 0.5 < runs["first"].compare.results[1].estimate("auroc")
    )


def test_one_parent_run_holds_exactly_the_trials_and_the_refits(runs):
    result = runs["first"]
    client = mlflow.MlflowClient(tracking_uri=runs["uri"])
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags[KIND_TAG] == "tune"
    everything = client.search_runs([parent.info.experiment_id])
    assert [
        r.info.run_id for r in everything if "mlflow.parentRunId" not in r.data.tags
    ] == [result.parent_run_id]
    children = [
        r
        for r in everything
        if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id
    ]
    trials = [r for r in children if r.data.tags.get(KIND_TAG) == "trial"]
    assert len(trials) == N_TRIALS == result.tuned[0].n_trials
    assert sorted(r.info.run_id for r in trials) == sorted(
        result.tuned[0].trial_run_ids
    )
    for run in trials:
        assert "cv_auroc" in run.data.metrics
        assert {"param.max_depth", "param.learning_rate"} <= set(run.data.params)
    refits = sorted(r.data.tags["plo_risk.model"] for r in children if r not in trials)
    assert refits == ["xgboost", "xgboost-tuned"]
    summary = result.summary()
    assert list(summary["params"]) == ["default", "tuned"]
    assert (summary["auroc_lower"] <= summary["auroc"]).all()
    assert (summary["calibration_slope"] <= summary["calibration_slope_upper"]).all()


def test_the_same_seed_chooses_the_same_params(runs):
    cli = runs["cli"]
    assert cli.exit_code == 0, cli.output
    assert f"trial {N_TRIALS}/{N_TRIALS}" in cli.output
    assert "best cv auroc so far" in cli.output
    client = mlflow.MlflowClient(tracking_uri=runs["again_uri"])
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("tune-test").experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = 'tune'",
    )
    best = runs["first"].tuned[0].best_params
    logged = {
        k.removeprefix("xgboost.best."): v
        for k, v in parent.data.params.items()
        if k.startswith("xgboost.best.")
    }
    assert logged == {k: str(v) for k, v in best.items()}


def _with_space(space) -> dict:
    return {
        "data": {"train": {"n": 500}},
        "models": [{"name": "xgboost", "tune": {"n_trials": 3, "space": space}}],
    }


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (
            {"max_depth": {"type": "int", "low": 6, "high": 2}},
            r"models\[0\]\.tune\.space\.max_depth.*low=6.* must be below high=2",
        ),
        (
            {"max_dept": {"type": "int", "low": 1, "high": 3}},
            r"models\[0\]\.tune\.space \(xgboost\): unknown key 'max_dept' "
            r"\(did you mean 'max_depth'\?\)",
        ),
        (
            {"max_depth": {"type": "int", "low": -3, "high": 3}},
            r"models\[0\]\.tune\.space\.max_depth: -3 is not a valid value: .*"
            r"must be an int in the range \[0, inf\)",
        ),
        (
            {"learning_rate": {"low": 0, "high": 0.3, "log": True}},
            r"learning_rate.*log: true needs low > 0.*got low=0",
        ),
        (
            {"monotone": {"type": "categorical"}},
            r"monotone.*type categorical needs a non-empty 'choices' list",
        ),
        (
            {"max_depth": {"type": "integer", "low": 1, "high": 3}},
            r"models\[0\]\.tune\.space\.max_depth\.type.*'integer'.*"
            r"float.*int.*categorical",
        ),
    ],
    ids=[
        "low-above-high",
        "unknown-name",
        "invalid-end",
        "log-from-zero",
        "no-choices",
        "bad-type",
    ],
)
def test_a_bad_space_names_the_field_the_value_and_what_is_allowed(space, match):
    with pytest.raises(ConfigError, match=match):
        load_experiment(_with_space(space))


def test_an_experiment_without_tune_is_refused_before_any_work():
    with pytest.raises(ConfigError, match="no model declares 'tune'"):
        tune_experiment(
            {"data": {"train": {"n": 500}}, "models": [{"name": "xgboost"}]}
        )


def test_the_shipped_tune_experiment_parses():
    exp = load_experiment("training/tune.yaml")
    tuned = {s.name: s.tune for s in exp.model_specs if s.tune is not None}
    assert set(tuned) == {"xgboost", "hist_gradient_boosting", "logistic_regression"}


def test_a_search_with_no_complete_trial_is_a_clear_cli_error(tmp_path, monkeypatch):
    import optuna

    train = generate_cohort(300, seed=21).drop(columns=[ID_COLUMN, "fracture_month"])
    test = generate_cohort(200, seed=22).drop(columns=[ID_COLUMN, "fracture_month"])
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            _config(tmp_path / "train.csv", tmp_path / "test.csv"), sort_keys=False
        )
    )
    # A study that runs no trial (as a timeout before the first one would).
    monkeypatch.setattr(optuna.Study, "optimize", lambda self, *a, **k: None)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TuningError, match="no trial of 0 completed"):
        tune_experiment(config)
    cli = CliRunner().invoke(app, ["tune", "--config", str(config)])
    assert cli.exit_code == 2, cli.output
    assert "no trial of 0 completed" in cli.output
    assert "Traceback" not in cli.output

"""The plo-risk command line: verbs, help, outputs and error messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from plo_risk.cli import app
from plo_risk.data.catalog import catalog_markdown
from plo_risk.utils.atomic import TEMP_GLOB

runner = CliRunner()


VERBS = (
    "catalog",
    "generate",
    "ingest",
    "train",
    "compare",
    "tune",
    "assess",
    "score",
    "report",
    "validate",
    "demo",
    "keygen",
    "sign",
    "plan",
)


def test_help_lists_every_verb():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for verb in VERBS:
        assert f" {verb} " in result.output


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_is_documented(verb):
    result = runner.invoke(app, [verb, "--help"])
    assert result.exit_code == 0
    assert len(result.output.strip().splitlines()) > 3


def test_catalog_markdown_matches_generator():
    result = runner.invoke(app, ["catalog", "--markdown"])
    assert result.exit_code == 0
    assert result.output == catalog_markdown()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_generate_writes_file_by_extension(tmp_path, suffix):
    out = tmp_path / f"cohort{suffix}"
    result = runner.invoke(
        app, ["generate", "--n", "300", "--seed", "1", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(df) == 300
    assert {"patient_id", "fracture", "true_risk"} <= set(df.columns)
    assert not list(tmp_path.glob(TEMP_GLOB))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--out", "cohort.txt"], "must end in .csv or .parquet"),
        (["--out", "c.csv", "--setting", "hospital"], "setting"),
        (["--out", "c.csv", "--n", "-5"], "'n'"),
    ],
    ids=["bad-extension", "bad-setting", "negative-n"],
)
def test_generate_bad_arguments_are_clear(tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["generate", *args, "--quiet"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert match in result.output


def test_compare_prints_leaderboard_and_where_runs_are(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = tmp_path / "small.yaml"
    config.write_text(
        "name: small\nseed: 1\n"
        "data:\n  train: {source: synthetic, n: 2000, seed: 1}\n"
        "  test: {source: synthetic, n: 2000, seed: 2}\n"
        "models:\n  - {name: xgboost, params: {n_estimators: 30}}\n"
        "  - {name: clinical_rule}\n"
        "cv: {folds: 3}\nevaluation: {n_boot: 20}\n"
    )
    result = runner.invoke(app, ["compare", "--config", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "xgboost" in result.output and "clinical_rule" in result.output
    assert "mlflow ui --backend-store-uri sqlite:///" in result.output.replace("\n", "")
    assert (tmp_path / "mlflow.db").is_file()


def test_train_bad_config_is_a_clear_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("name: x\nmodles: []\n")
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "unknown key 'modles' (did you mean 'models'?)" in result.output
    assert "Traceback" not in result.output


def test_demo_writes_what_it_names(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    # The demo points MLFLOW_TRACKING_URI at its own database; monkeypatch restores it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'unused.db'}")
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--n", "2000", "--quiet"])
    assert result.exit_code == 0, result.output
    for name in (
        "cohort.parquet",
        "rejects.csv",
        "mlflow.db",
        "assessment.json",
        "model_card.html",
        "population_cohort.csv",
        "scored/_manifest.json",
    ):
        assert (out / name).is_file()
    assert "PLO fracture risk:" in result.output
    text = result.output
    assert "models:/plo-risk@champion" in text
    # Every output the closing summary names exists.
    summary = text.split("where everything is", 1)[1]
    named = [
        line.split(": ", 1)[1].strip()
        for line in summary.splitlines()
        if line.startswith("  ") and ": " in line
    ]
    paths = [
        p.replace("sqlite:///", "") for p in named if p.startswith(("/", "sqlite:///"))
    ]
    assert len(paths) >= 7, summary
    for p in paths:
        assert list(Path("/").glob(p.lstrip("/"))), f"named but missing: {p}"
    # Nothing lost in the population scoring: scored + rejected = 100,000 rows.
    manifest = json.loads((out / "scored" / "_manifest.json").read_text())
    assert manifest["n_scored"] + manifest["n_rejected"] == 100_000
    assert manifest["n_rejected"] == 500


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory):
    from plo_risk.data.reference import reference_values
    from plo_risk.data.schema import validate_frame
    from plo_risk.data.synthetic import generate_cohort
    from plo_risk.model.bundle import save_bundle
    from plo_risk.model.ensemble import fit_bootstrap_ensemble
    from plo_risk.model.zoo import make_model

    valid = validate_frame(generate_cohort(3000, seed=4)).valid
    y = valid["fracture"].to_numpy()
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    model = make_model(
        "xgboost",
        params={"n_estimators": 40},
        cv=3,
        thresholds={"moderate": 0.02, "high": 0.1},
    ).fit(X, y)
    fit_bootstrap_ensemble(model, X, y, n_models=3)
    return save_bundle(
        model,
        tmp_path_factory.mktemp("m") / "bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X)},
    )


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_assess_prints_an_explained_risk(tmp_path, small_bundle, as_json):
    import json

    patient = tmp_path / "patient.json"
    patient.write_text(
        json.dumps(
            {
                "age_years": 31,
                "parity": 1,
                "months_postpartum": 3,
                "vitamin_d_25oh": 40,
                "units": {"vitamin_d_25oh": "nmol/L"},
                "z_lumbar_spine": -2.4,
            }
        )
    )
    args = ["assess", "--model", str(small_bundle), "--patient", str(patient)]
    result = runner.invoke(app, args + (["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    if as_json:
        out = json.loads(result.output)
        assert 0 < out["risk"] < 1 and out["factors"]
        assert out["record"]["vitamin_d_25oh"] == pytest.approx(40 / 2.496, rel=1e-4)
    else:
        assert "PLO fracture risk:" in result.output


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        (
            '{"age_years": 31, "parity": 1, "months_postpartum": -9}',
            "months_postpartum=-9",
        ),
        ("[1, 2]", "one JSON object"),
    ],
    ids=["bad-json", "bad-value", "not-an-object"],
)
def test_assess_bad_patient_file(tmp_path, small_bundle, content, match):
    patient = tmp_path / "p.json"
    patient.write_text(content)
    result = runner.invoke(
        app, ["assess", "--model", str(small_bundle), "--patient", str(patient)]
    )
    assert result.exit_code == 2 and match in result.output
    assert "Traceback" not in result.output


def test_assess_bad_model_path(tmp_path):
    patient = tmp_path / "p.json"
    patient.write_text('{"age_years": 31, "parity": 1, "months_postpartum": 2}')
    result = runner.invoke(
        app, ["assess", "--model", str(tmp_path / "none"), "--patient", str(patient)]
    )
    assert result.exit_code == 2 and "no such bundle" in result.output


# ---------------------------------------------------------------- issue 14


def test_help_names_each_verbs_purpose():
    result = runner.invoke(app, ["--help"])
    lines = result.output.splitlines()
    for verb in VERBS:
        line = next(ln for ln in lines if f" {verb} " in ln)
        purpose = line.split(f" {verb} ", 1)[1].strip(" │")
        assert len(purpose) > 15, (verb, line)


@pytest.mark.parametrize(
    ("verb", "choices"),
    [
        ("score", ["flagged", "all", "none"]),
        ("score", ["local", "dask"]),
        ("score", ["population", "referral"]),
        ("assess", ["population", "referral"]),
        ("generate", ["referral", "population"]),
    ],
    ids=["explain", "engine", "score-setting", "assess-setting", "generate-setting"],
)
def test_choices_are_listed_in_help(verb, choices):
    text = runner.invoke(app, [verb, "--help"], env={"COLUMNS": "200"}).output
    assert any(all(c in ln for c in choices) for ln in text.splitlines()), text


def test_one_vocabulary_with_hidden_first_wave_names(tmp_path):
    helps = {
        v: runner.invoke(app, [v, "--help"], env={"COLUMNS": "200"}).output
        for v in VERBS
    }
    for verb in ("ingest", "score", "report", "validate"):
        assert "--input" in helps[verb], verb
    for old in ("--data", "--source", "--out-dir"):
        assert not any(old in text for text in helps.values()), old
    assert "--out" in helps["demo"] and "--unit" in helps["assess"]
    assert "--prevalence" in helps["assess"] and "--prevalence" in helps["score"]
    # The old names still reach the same option (here: its file-name check).
    for verb in ("report", "validate"):
        for name in ("--input", "--data"):
            result = runner.invoke(app, [verb, name, str(tmp_path / "x.txt")])
            assert result.exit_code == 2
            assert "--input" in result.output and ".csv or .parquet" in result.output
        both = runner.invoke(app, [verb, "--input", "a.csv", "--data", "b.csv"])
        assert both.exit_code == 2 and "the same option" in both.output
    bad = runner.invoke(
        app, ["score", "--input", "a.csv", "--out", "o", "--engine", "spark"]
    )
    assert bad.exit_code == 2 and "spark" in bad.output


def test_leaderboard_fits_80_columns_with_labelled_intervals(monkeypatch, tmp_path):
    import io

    from rich.console import Console

    from plo_risk import training
    from plo_risk.cli import _leaderboard_table

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    result = training.compare(
        {
            "name": "a-rather-long-experiment-name",
            "data": {
                "train": {"source": "synthetic", "n": 1500, "seed": 1},
                "test": {"source": "synthetic", "n": 1500, "seed": 2},
            },
            "models": [
                {"name": "hist_gradient_boosting", "params": {"max_iter": 20}},
                {"name": "logistic_regression"},
                {"name": "clinical_rule"},
            ],
            "cv": {"folds": 2},
            "evaluation": {"n_boot": 20},
            "champion": {"allow_weak": True},
        }
    )
    buf = io.StringIO()
    Console(file=buf, width=80).print(_leaderboard_table(result))
    text = buf.getvalue()
    assert max(len(ln) for ln in text.splitlines()) <= 80
    assert "…" not in text  # nothing truncated
    for label in ("model", "AUROC", "calibration", "ICI", "Brier"):
        assert label in text
    board = result.leaderboard()
    for _, row in board.iterrows():
        assert row["model"] in text
        lo, hi = row["auroc_lower"], row["auroc_upper"]
        assert f"{lo:.2f} to {hi:.2f}" in text
    assert "--" not in text.replace("---", "") and "(-" not in text


def test_assess_without_a_store_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    patient = tmp_path / "p.json"
    patient.write_text('{"age_years": 31, "parity": 1, "months_postpartum": 2}')
    result = runner.invoke(app, ["assess", "--patient", str(patient)])
    assert result.exit_code == 2, result.output
    assert "mlflow.db" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


def test_assess_unit_and_setting_options(tmp_path, small_bundle):
    patient = tmp_path / "p.json"
    patient.write_text(
        json.dumps(
            {"age_years": 31, "parity": 1, "months_postpartum": 3, "vitamin_d_25oh": 40}
        )
    )
    base = ["assess", "--model", str(small_bundle), "--patient", str(patient), "--json"]
    nmol = json.loads(
        runner.invoke(app, [*base, "--unit", "vitamin_d_25oh=nmol/L"]).output
    )
    assert nmol["record"]["vitamin_d_25oh"] == pytest.approx(40 / 2.496, rel=1e-4)
    referral = json.loads(runner.invoke(app, base).output)
    population = json.loads(
        runner.invoke(app, [*base, "--setting", "population"]).output
    )
    assert population["risk"] < referral["risk"] / 5
    bad = runner.invoke(app, [*base, "--unit", "vitamin_d_25oh"])
    assert bad.exit_code == 2 and "FIELD=UNIT" in bad.output
    bad = runner.invoke(app, [*base, "--prevalence", "2"])
    assert bad.exit_code == 2 and "prevalence" in bad.output


def test_score_in_a_log_prints_progress_and_warnings(tmp_path, small_bundle):
    import subprocess
    import sys

    from plo_risk.data.synthetic import generate_cohort

    source = tmp_path / "population.parquet"
    generate_cohort(6000, setting="population", seed=5).to_parquet(
        source, row_group_size=1000
    )
    cmd = [
        sys.executable,
        "-m",
        "plo_risk.cli",
        "score",
        "--model",
        str(small_bundle),
        "--input",
        str(source),
        "--chunk-rows",
        "1000",
    ]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*cmd, "--out", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "scored 6,000/6,000 rows" in proc.stderr  # the closing progress line
    assert "warning:" in proc.stderr and "--setting population" in proc.stderr
    moved = subprocess.run(
        [*cmd, "--out", str(tmp_path / "b"), "--setting", "population", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert moved.returncode == 0, moved.stderr
    assert "warning:" not in moved.stderr and "rows/s" not in moved.stderr


def test_compare_in_a_log_says_each_step_and_that_it_is_still_running(
    tmp_path, monkeypatch
):
    import plo_risk.cli as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "HEARTBEAT_SECONDS", 0.2)
    config = tmp_path / "small.yaml"
    config.write_text(
        "name: small\nseed: 1\n"
        "data:\n  train: {source: synthetic, n: 3000, seed: 1}\n"
        "  test: {source: synthetic, n: 3000, seed: 2}\n"
        "models:\n  - {name: xgboost, params: {n_estimators: 60}}\n"
        "cv: {folds: 3}\ninterval: {n_models: 5}\nevaluation: {n_boot: 50}\n"
        "champion: {register: false}\n"
    )
    result = runner.invoke(app, ["compare", "--config", str(config)])
    assert result.exit_code == 0, result.output
    text = result.output
    for step in (
        "loading and validating the data",
        "fitting xgboost on 3,000 rows",
        "xgboost: 5 bootstrap refits for the intervals",
        "xgboost: evaluating on 3,000 held-out rows (50 bootstrap replicates)",
        "xgboost: logging the run",
    ):
        assert step in text, step
    assert "… still " in text  # the heartbeat between steps


def test_reference_check_prints_the_scorecard_and_refuses_too_few(monkeypatch):
    small = runner.invoke(app, ["reference-check", "--n", "10"])
    assert small.exit_code == 2 and "at least 1000" in small.output
    result = runner.invoke(app, ["reference-check", "--n", "20000", "--quiet"])
    # 20,000 episodes hold a handful of cases: the verdict may go either way,
    # but the table and its verdict are printed and the exit status follows it
    from plo_risk.data.synthetic import reference_check

    card = reference_check(n=20000, seed=20240627)
    assert "statistics within tolerance" in result.output
    assert str(card).splitlines()[-1] in result.output
    assert result.exit_code == (0 if card.acceptable else 1)


def test_the_committed_reference_check_is_current():
    from plo_risk.data.synthetic import shipped_reference_check

    card, current = shipped_reference_check()
    assert current, "run: plo-risk reference-check --write"
    assert card.acceptable and card.n_episodes >= 1_000_000


_GOOD = '{"age_years": 33, "parity": 1, "months_postpartum": 2}'


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes('{"ancestry": "é"}'.encode("latin-1")), "not UTF-8"),
        (lambda p: p.mkdir(), "a folder"),
        (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested"),
        (lambda p: p.write_text('{"parity": ' + "9" * 5000 + "}"), "digits"),
        (lambda p: p.write_text('{"parity": 1, "parity": 2}'), "appears twice"),
        (lambda p: p.write_text('{"a": "' + "x" * (2 << 20) + '"}'), "at most"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.write_text('{"units": {"a": {"b": {"c": 1}}}}'), "nested"),
        (lambda p: p.write_text("[1, 2]"), "one JSON object"),
        (lambda p: p.write_text("{"), "not valid JSON"),
    ],
    ids=[
        "latin-1",
        "folder",
        "deep",
        "5000-digits",
        "duplicate-key",
        "2-MB",
        "fifo",
        "deep-units",
        "a-list",
        "truncated",
    ],
)
def test_assess_refuses_a_hostile_patient_file_in_one_line(tmp_path, make, message):
    path = tmp_path / "patient.json"
    make(path)
    result = runner.invoke(
        app, ["assess", "--patient", str(path), "--model", str(tmp_path / "none")]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "--model" not in result.output  # refused before the model is loaded


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_assess_reads_utf16_and_a_byte_order_mark(tmp_path, encoding):
    path = tmp_path / "patient.json"
    path.write_bytes(_GOOD.encode(encoding))
    result = runner.invoke(
        app, ["assess", "--patient", str(path), "--model", str(tmp_path / "none")]
    )
    # read: the next thing to fail is the missing model
    assert result.exit_code == 2 and "--model" in result.output


def test_plan_prints_the_criteria():
    """pmsampsize's binary example (Riley et al. BMJ 2020, doi:10.1136/bmj.m441)."""
    result = runner.invoke(
        app, ["plan", "--prevalence", "0.174", "--r2", "0.288", "--parameters", "24"]
    )
    assert result.exit_code == 0, result.output
    assert "662" in result.stdout
    assert "criterion 2" in result.stdout


def test_plan_c_statistic_and_check():
    result = runner.invoke(
        app,
        ["plan", "--prevalence", "0.3", "--c-statistic", "0.7", "--parameters", "3"]
        + ["--check", "1", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert "calibration slope >= 0.9" in result.stdout


def test_plan_bad_prevalence_names_the_field():
    result = runner.invoke(
        app, ["plan", "--prevalence", "1.5", "--r2", "0.1", "--parameters", "5"]
    )
    assert result.exit_code == 2
    assert "prevalence=1.5" in result.stderr

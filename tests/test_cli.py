"""The plo-risk command line: verbs, help, outputs and error messages."""

from __future__ import annotations

import json
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
    "assess",
    "score",
    "report",
    "validate",
    "demo",
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
    result = runner.invoke(
        app, ["demo", "--out-dir", str(out), "--n", "2000", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    for name in (
        "cohort.parquet",
        "rejects.csv",
        "mlflow.db",
        "assessment.json",
        "model_card.html",
        "population_cohort.csv",
        "scored/manifest.json",
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
    manifest = json.loads((out / "scored" / "manifest.json").read_text())
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

"""The model card (TRIPOD+AI), external validation and their CLI verbs."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from plo_risk.cli import app
from plo_risk.data.reference import reference_values
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import save_bundle
from plo_risk.model.ensemble import fit_bootstrap_ensemble
from plo_risk.model.zoo import make_model
from plo_risk.report import (
    SECTIONS,
    external_validation,
    model_card,
    tripod_checklist,
)
from plo_risk.serve import RiskModel
from tests.browser import CHROMIUM, CHROMIUM_ARGS

THRESHOLDS = {"moderate": 0.02, "high": 0.10}
# One thread: xgboost's OpenMP threads spin-wait when other processes share the
# cores, which made a 4k-row fit 8x slower here.
XGB = {"n_estimators": 60, "n_jobs": 1}
PLOTS = (
    "calibration",
    "roc",
    "decision-curve",
    "importance",
    "beeswarm",
    "waterfall-seed-case",
    "waterfall-typical",
    "recalibration",
)
# TRIPOD+AI (Collins et al., BMJ 2024;385:e078378): 27 items and their sub-items.
TRIPOD_IDS = (
    "1 2 3a 3b 3c 4 5a 5b 6a 6b 6c 7 8a 8b 8c 9a 9b 9c 10 11 12a 12b 12c 12d 12e "
    "12f 12g 13 14 15 16 17 18a 18b 18c 18d 18e 18f 19 20a 20b 20c 21 22 23a 23b "
    "24 25 26 27a 27b 27c"
).split()

runner = CliRunner()


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    valid = validate_frame(frame).valid
    y = valid["fracture"].to_numpy()
    return valid.drop(columns=["patient_id", "fracture", "true_risk"]), y


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory) -> Path:
    """A referral-trained xgboost model with a small interval ensemble."""
    X, y = _xy(generate_cohort(4000, setting="referral", seed=31))
    model = make_model("xgboost", params=XGB, cv=3, thresholds=THRESHOLDS).fit(X, y)
    fit_bootstrap_ensemble(model, X, y, n_models=3)
    return save_bundle(
        model,
        tmp_path_factory.mktemp("model") / "bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X), "params": XGB},
    )


@pytest.fixture(scope="module")
def risk_model(bundle_path) -> RiskModel:
    return RiskModel.load(bundle_path)


@pytest.fixture(scope="module")
def eval_frame() -> pd.DataFrame:
    """Referral evaluation rows, two of them invalid."""
    df = generate_cohort(3000, setting="referral", seed=32)
    df.loc[5, "lactation_months"] = -3
    df.loc[9, "age_years"] = 99
    return df


@pytest.fixture(scope="module")
def card(risk_model, eval_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("card") / "card.html"
    result = model_card(risk_model, eval_frame, path, n_boot=30)
    return result, path.read_text(encoding="utf-8")


# ------------------------------------------------------------------ checklist


def test_checklist_has_all_27_items_with_their_subitems():
    items = tripod_checklist()
    assert [it.id for it in items] == TRIPOD_IDS
    assert sorted({it.item for it in items}) == list(range(1, 28))
    anchors = {"title"} | {s for s, _ in SECTIONS}
    for it in items:
        assert bool(it.answered_in) != bool(it.not_applicable), it.id
        assert set(it.answered_in) <= anchors, it.id
    ethics = next(it for it in items if it.id == "17")
    assert "synthetic" in ethics.not_applicable.lower()


# Collins et al., BMJ 2024;385:e078378, Table 2: section headings and the D/E column
# (D development only, E evaluation only, D;E both) of items the first wave got
# wrong or left out.
PUBLISHED = {
    "1": ("Title", "D;E"),
    "2": ("Abstract", "D;E"),
    "9a": ("Methods", "D"),
    "10": ("Methods", "D;E"),
    "12a": ("Methods", "D"),
    "12e": ("Methods", "D;E"),
    "12f": ("Methods", "E"),
    "14": ("Methods", "D;E"),
    "19": ("Patient and public involvement", "D;E"),
    "20c": ("Results", "E"),
    "24": ("Results", "E"),
    "27a": ("Discussion", "D"),
}


@pytest.mark.parametrize("item_id", sorted(PUBLISHED))
def test_checklist_headings_and_de_column_are_as_published(item_id):
    item = next(it for it in tripod_checklist() if it.id == item_id)
    assert (item.section, item.applies_to) == PUBLISHED[item_id]


def test_checklist_item_texts_keep_their_clauses():
    items = {it.id: it.text.lower() for it in tripod_checklist()}
    assert "compare" in items["12e"] or "compared" in items["12e"]
    assert "fair" not in items["12e"] and "fair" in items["14"]
    assert "sample size calculation" in items["10"]
    assert "sample size" in items["12a"]
    de = [it.applies_to for it in tripod_checklist()]
    assert (de.count("D;E"), de.count("D"), de.count("E")) == (40, 8, 4)


def test_card_shows_the_de_column(card):
    _, text = card
    assert "<th>D/E</th>" in text
    row = re.search(r'<tr id="tripod-12f">(.*?)</tr>', text, flags=re.S).group(1)
    assert "<td>E</td>" in row


# ----------------------------------------------------------------------- card


def test_card_has_every_tripod_item_section_and_plot(card):
    _, text = card
    for item_id in TRIPOD_IDS:
        assert f'id="tripod-{item_id}"' in text, item_id
    for anchor, _ in SECTIONS:
        assert f'<section id="{anchor}">' in text, anchor
    assert 'id="title"' in text
    # Every link of the checklist (and the rest of the card) points inside it.
    for target in re.findall(r'href="#([^"]+)"', text):
        assert f'id="{target}"' in text, target
    for plot in PLOTS:
        match = re.search(
            rf'<figure id="plot-{plot}"><img [^>]*src="data:image/png;base64,'
            r'([A-Za-z0-9+/=]+)"',
            text,
        )
        assert match, plot
        assert base64.b64decode(match.group(1))[:8] == b"\x89PNG\r\n\x1a\n", plot


def test_card_has_no_external_resources(card):
    _, text = card
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", text, re.I)
    for src in re.findall(r'src="([^"]*)"', text):
        assert src.startswith("data:image/png;base64,")
    for href in re.findall(r'href="([^"]*)"', text):
        assert href.startswith("#"), href
    lowered = text.lower()
    for banned in ("<script", "<link", "<iframe", "@import", "url("):
        assert banned not in lowered, banned


def test_card_reports_data_rejections_and_contents(card, risk_model):
    result, text = card
    assert result.n_input == 3000 and result.n_rejected == 2
    assert result.n == 2998 and result.mlflow_run_id is None
    assert "2 of 3,000 rows rejected by validation" in text
    assert "lactation_months" in text  # the rejection reasons table
    assert "DATASHEET.md" in text
    for f in risk_model.catalog:  # every predictor with its source
        assert f"<code>{f.name}</code>" in text
    assert "Mishra et al. 2024, Table 3 row 9; Cerit et al. 2020" in text
    assert not re.search(r"\bseed,? (Table|[A-Z][a-z]+ section|Introduction)", text)
    assert "<h1>Model card: xgboost model predicting" in text  # the bundle's name
    assert "n_estimators" in text  # hyperparameters
    for level in ("&lt;25", "european", "3+"):  # subgroups: age, ancestry, parity
        assert f"<td>{level}</td>" in text
    row = result.metrics.loc["auroc"]
    assert row.lower < row.estimate < row.upper
    assert "oe_ratio" in result.metrics.index


def test_card_renders_in_headless_chromium(card, tmp_path):
    _, text = card
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        if os.environ.get("PLO_RISK_SKIP_BROWSER") == "1":
            pytest.skip("PLO_RISK_SKIP_BROWSER=1 and no chromium")
        pytest.fail(
            f"{CHROMIUM} is missing: the model card is rendered with Debian's "
            "chromium. Install it with `apt-get install chromium` (`make test` does "
            "this when run as root), or set PLO_RISK_SKIP_BROWSER=1 to skip."
        )
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "card.html"
    page_file.write_text(text, encoding="utf-8")
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "console",
                lambda m: errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri(), wait_until="load")
            widths = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, "
                "i.naturalWidth])"
            )
            shot = tmp_path / "model_card.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert len(widths) == len(PLOTS)
    assert all(ok and width > 0 for _, ok, width in widths), widths
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert shot.stat().st_size > 100_000


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda d, p: d.drop(columns=["fracture"]), ValueError, "no 'fracture'"),
        (lambda d, p: p / "missing.csv", FileNotFoundError, "no such file"),
        (lambda d, p: p / "cohort.txt", ValueError, r"\.csv or \.parquet"),
        (lambda d, p: d.assign(fracture=0), ValueError, "both cases and non-cases"),
        (lambda d, p: d.assign(age_years=99), ValueError, "all 50 rows were rejected"),
        (
            lambda d, p: d.assign(fracture=2),
            ValueError,
            r"all 50 rows were rejected by validation, e\.g\. fracture=2: must be "
            r"0 or 1 \([^;]*$",  # one distinct reason, not the same one three times
        ),
    ],
    ids=[
        "no-outcome",
        "missing-file",
        "bad-suffix",
        "one-class",
        "all-rejected",
        "outcome-not-0-1",
    ],
)
def test_bad_evaluation_data_is_named(risk_model, tmp_path, make, error, match):
    data = generate_cohort(50, setting="referral", seed=3)
    with pytest.raises(error, match=match):
        model_card(risk_model, make(data, tmp_path), tmp_path / "c.html", n_boot=5)
    assert not (tmp_path / "c.html").exists()


def test_card_of_a_bare_model_is_titled_by_its_family(risk_model, eval_frame, tmp_path):
    # A fitted PlattCalibratedClassifier without a bundle: the title names the
    # model family of make_model, not the wrapper class.
    model_card(risk_model.model, eval_frame.head(400), tmp_path / "c.html", n_boot=5)
    text = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "<h1>Model card: xgboost model predicting" in text
    assert "PlattCalibratedClassifier" not in text


def test_card_escapes_text_from_the_bundle(risk_model, eval_frame, tmp_path):
    info = risk_model.info
    ref = dict(info.extra["reference"], ancestry=["<script>alert(1)</script>"])
    hostile = RiskModel(
        risk_model.model,
        dataclasses.replace(
            info,
            model_name="<img src=x onerror=alert(1)>",
            extra={**info.extra, "reference": ref},
        ),
        catalog=risk_model.catalog,
    )
    model_card(hostile, eval_frame.head(400), tmp_path / "c.html", n_boot=5)
    text = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<h1>Model card: &lt;img src=x onerror=alert(1)&gt; model" in text


# -------------------------------------------------------- external validation


def test_referral_model_is_recalibrated_to_the_population(risk_model, tmp_path):
    # Population prevalence 4.6e-4 (params sheet B): 300k rows give ~140 events.
    population = generate_cohort(300_000, setting="population", seed=33)
    ev = external_validation(risk_model, population, n_boot=20)
    assert ev.n == 300_000 and ev.n_rejected == 0
    before, after = ev.calibration_intercept, ev.recalibrated_calibration_intercept
    assert before < -3.0  # referral risks are far too high in the population
    assert abs(after) < 0.2
    assert ev.metrics.loc["oe_ratio", "upper"] < 0.1
    comp = ev.comparison()
    # An intercept change keeps the ranking.
    assert comp.loc["auroc", "estimate"] == pytest.approx(
        comp.loc["auroc", "recalibrated"]
    )
    assert comp.loc["brier", "recalibrated"] < comp.loc["brier", "estimate"]
    assert ev.intercept_after < ev.intercept_before - 3
    shift = ev.intercept_after - ev.intercept_before
    old_members = risk_model.model.ensemble_
    new_members = ev.recalibrated.model.ensemble_
    for old, new in zip(old_members, new_members, strict=True):
        assert new["intercept"] == pytest.approx(old["intercept"] + shift)
    saved = ev.recalibrated.save(tmp_path / "recalibrated")
    reloaded = RiskModel.load(saved)
    assert reloaded.model.intercept_ == pytest.approx(ev.intercept_after)
    assert reloaded.info.extra["recalibration"]["n_events"] == ev.n_events
    assert reloaded.version != risk_model.version
    fig = ev.plot_calibration()
    assert len(fig.axes) == 1


# --------------------------------------------------------------------- MLflow


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_card_is_logged_to_the_champion_run(tracking, tmp_path, eval_frame):
    from plo_risk.training import compare

    result = compare(
        {
            "name": "report",
            "seed": 4,
            "data": {
                "train": {"source": "synthetic", "n": 2000, "seed": 41},
                "test": {"source": "synthetic", "n": 1500, "seed": 42},
            },
            "models": [
                {"name": "xgboost", "params": {"n_estimators": 30, "n_jobs": 1}}
            ],
            "cv": {"folds": 3},
            "evaluation": {"n_boot": 10},
            "interval": {"n_models": 0},
        }
    )
    assert result.replaced
    card = model_card(
        "models:/plo-risk@champion",
        eval_frame.head(1500),
        tmp_path / "c.html",
        n_boot=10,
    )
    run_id = result.results[0].run_id
    assert card.mlflow_run_id == run_id
    client = mlflow.MlflowClient()
    assert "model_card.html" in {a.path for a in client.list_artifacts(run_id)}
    local = client.download_artifacts(run_id, "model_card.html", str(tmp_path))
    assert 'id="tripod-27c"' in Path(local).read_text(encoding="utf-8")
    # An unknown run is named in the error.
    with pytest.raises(ValueError, match="mlflow_run_id='0123'"):
        model_card(
            "models:/plo-risk@champion",
            eval_frame.head(500),
            tmp_path / "d.html",
            n_boot=5,
            mlflow_run_id="0123",
        )


# ------------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def eval_csv(eval_frame, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "eval.csv"
    eval_frame.head(1500).to_csv(path, index=False)
    return path


def test_cli_report_writes_the_card(bundle_path, eval_csv, tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(
        app,
        [
            "report",
            "--model",
            str(bundle_path),
            "--data",
            str(eval_csv),
            "--out",
            str(out),
            "--n-boot",
            "10",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and 'id="tripod-1"' in out.read_text(encoding="utf-8")
    assert "2 of 1,500 rows rejected" in result.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--input", "nope.parquet"], "--input nope.parquet: no such file"),
        (["--input", "cohort.txt"], "must end in .csv or .parquet"),
        (["--data", "{no_outcome}"], "no 'fracture' column"),  # the old name
        (["--model", "no-bundle", "--input", "{eval}"], "--model no-bundle"),
    ],
    ids=["missing-data", "bad-suffix", "no-outcome", "missing-model"],
)
@pytest.mark.parametrize("verb", ["report", "validate"])
def test_cli_bad_input_exits_2_with_a_message(
    verb, args, match, bundle_path, eval_csv, eval_frame, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    no_outcome = tmp_path / "no_outcome.csv"
    eval_frame.head(20).drop(columns=["fracture"]).to_csv(no_outcome, index=False)
    args = [a.format(no_outcome=no_outcome, eval=eval_csv) for a in args]
    if "--model" not in args:
        args = ["--model", str(bundle_path), *args]
    result = runner.invoke(app, [verb, *args, "--n-boot", "5", "--quiet"])
    assert result.exit_code == 2, result.output
    assert match in result.output
    assert "Traceback" not in result.output


def test_cli_validate_prints_table_and_saves_recalibrated_bundle(
    bundle_path, risk_model, tmp_path
):
    data = tmp_path / "population.parquet"
    generate_cohort(40_000, setting="population", prevalence=0.005, seed=34).to_parquet(
        data
    )
    base = ["validate", "--model", str(bundle_path), "--input", str(data)]
    shown = runner.invoke(app, [*base, "--n-boot", "10", "--quiet"])
    assert shown.exit_code == 0, shown.output
    for text in (
        "AUROC",
        "Calibration intercept",
        "Observed/expected",
        "ICI",
        "recalibrated",
        "intercept refitted to these data",
        "--recalibrate --out DIR",
    ):
        assert text in " ".join(shown.output.split()), text
    out = tmp_path / "recalibrated"
    saved = runner.invoke(
        app, [*base, "--recalibrate", "--out", str(out), "--n-boot", "10", "--quiet"]
    )
    assert saved.exit_code == 0, saved.output
    reloaded = RiskModel.load(out)
    assert f"new intercept {reloaded.model.intercept_:.4f}" in saved.output
    assert reloaded.model.intercept_ < risk_model.model.intercept_
    again = runner.invoke(app, [*base, "--recalibrate", "--quiet"])
    assert again.exit_code == 2 and "--recalibrate needs --out" in again.output


# ----------------------------------------------------------- small cells


def _card_row(html: str, subgroup: str, level: str) -> str:
    m = re.search(
        rf"<tr><td>{re.escape(subgroup)}</td><td>{re.escape(level)}</td>(.*?)</tr>",
        html,
    )
    assert m, (subgroup, level)
    return m.group(1)


def test_a_subgroup_with_few_events_never_shows_its_numbers(
    risk_model, eval_frame, tmp_path
):
    df = eval_frame.drop(index=[5, 9]).reset_index(drop=True)
    df["ancestry"] = df["ancestry"].replace("middle_eastern", "european")
    # Three fractures among 40 women: a cell the card must not publish.
    events = df.index[df["fracture"] == 1][:3]
    others = df.index[df["fracture"] == 0][:37]
    df.loc[events.union(others), "ancestry"] = "middle_eastern"
    card = model_card(risk_model, df, tmp_path / "c.html", n_boot=10)
    html = (tmp_path / "c.html").read_text(encoding="utf-8")

    full = card.evaluation.subgroups.set_index(["subgroup", "level"])
    assert full.loc[("ancestry", "middle_eastern"), "n_events"] == 3  # in memory
    cells = re.findall(
        r"<td[^>]*>(.*?)</td>", _card_row(html, "ancestry", "middle_eastern")
    )
    assert cells[0] == "40" and cells[1] == "&lt;5"
    assert all(c in ("", "—", "–") for c in cells[2:]), cells
    # Never one hidden level alone: it would be the total minus the rest.
    published = [
        re.findall(r"<td[^>]*>(.*?)</td>", _card_row(html, "ancestry", lvl))[1]
        for lvl in full.loc["ancestry"].index
    ]
    hidden = [c for c in published if not c.replace(",", "").isdigit()]
    assert len(hidden) >= 2, published
    for lvl in full.loc["ancestry"].index:  # no small count is shown anywhere
        row = full.loc[("ancestry", lvl)]
        if 0 < row["n_events"] < 5:
            shown = re.findall(r"<td[^>]*>(.*?)</td>", _card_row(html, "ancestry", lvl))
            assert shown[1] == "&lt;5" and set(shown[2:]) <= {"", "—", "–"}
    assert "fewer than 5 women, events or non-events" in html


def test_min_cell_is_refused_before_any_work(risk_model, tmp_path):
    with pytest.raises(ValueError, match="'min_cell' parameter"):
        model_card(risk_model, tmp_path / "absent.csv", tmp_path / "c.html", min_cell=0)

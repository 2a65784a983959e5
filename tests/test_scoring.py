"""Batch scoring: nothing lost, crash-safe resume, the dask engine, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from plo_risk import ScoreSummary, score_cohort
from plo_risk.cli import app
from plo_risk.data.catalog import load_catalog
from plo_risk.data.synthetic import generate_cohort
from plo_risk.serve import RiskModel
from plo_risk.serve.scoring import ScoringError, score_frame

THRESHOLDS = {"moderate": 0.02, "high": 0.10}
OUTPUT = ["row", "patient_id", "risk", "category", "model_version"]


@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "cohort.parquet"
    generate_cohort(6000, seed=32).to_parquet(path, row_group_size=1500)
    return path


def _corrupt(df: pd.DataFrame, rate: float, seed: int) -> tuple[pd.DataFrame, set]:
    """Bad types, out-of-range values and missing required values in ~rate of rows."""
    rng = np.random.default_rng(seed)
    n = len(df)
    bad = rng.choice(n, size=int(n * rate), replace=False)
    kinds = rng.integers(0, 3, size=len(bad))
    df = df.copy()
    for col in ("parity", "age_years", "months_postpartum"):
        df[col] = df[col].astype(object)
    for row, kind in zip(bad, kinds, strict=True):
        if kind == 0:
            df.iat[row, df.columns.get_loc("parity")] = "two"
        elif kind == 1:
            df.iat[row, df.columns.get_loc("age_years")] = 212
        else:
            df.iat[row, df.columns.get_loc("months_postpartum")] = None
    return df, set(bad.tolist())


def test_nothing_lost_on_200k_rows_with_one_percent_corrupted(model, tmp_path):
    clean = generate_cohort(200_000, setting="population", seed=33)
    corrupted, bad = _corrupt(clean, 0.01, seed=34)
    source = tmp_path / "cohort.csv"
    corrupted.to_csv(source, index=False)

    s = score_cohort(model, source, tmp_path / "out", chunk_rows=50_000)

    assert s.n_input == 200_000
    assert s.n_scored + s.n_rejected == s.n_input
    assert s.n_rejected == len(bad) == 2000
    scored, rejects = s.read(), s.read(rejects=True)
    assert len(scored) == s.n_scored
    assert set(rejects["row"]) == bad
    assert set(scored["row"]).isdisjoint(bad)
    assert set(scored["row"]) | set(rejects["row"]) == set(range(200_000))
    assert rejects["reason"].str.len().gt(0).all()
    assert set(rejects["field"]) == {"parity", "age_years", "months_postpartum"}
    # Scored rows carry their patient ids, and the same risks predict_proba gives.
    good = clean.drop(index=sorted(bad))
    assert scored["patient_id"].tolist() == good["patient_id"].tolist()
    np.testing.assert_allclose(
        scored["risk"].to_numpy(), model.predict_proba(good), rtol=1e-12, atol=0
    )
    manifest = json.loads(s.manifest.read_text())
    assert manifest["n_input"] == 200_000
    assert manifest["model_version"] == model.version
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_explain_modes(model, cohort_file, tmp_path):
    flagged = score_cohort(model, cohort_file, tmp_path / "f").read()
    everyone = score_cohort(model, cohort_file, tmp_path / "a", explain="all").read()
    none = score_cohort(model, cohort_file, tmp_path / "n", explain="none").read()
    assert none.columns.tolist() == OUTPUT
    assert "factor_3" in flagged and "contribution_3" in flagged
    is_flagged = flagged["category"] != "low"
    assert 0 < is_flagged.sum() < len(flagged)
    assert flagged.loc[is_flagged, "factor_1"].notna().all()
    assert flagged.loc[~is_flagged, "factor_1"].isna().all()
    assert everyone["factor_1"].notna().all()
    # Flagged rows are explained exactly as when every row is explained.
    pd.testing.assert_frame_equal(
        flagged[is_flagged].reset_index(drop=True),
        everyone[is_flagged].reset_index(drop=True),
    )
    np.testing.assert_array_equal(none["risk"], everyone["risk"])
    # The factors are the largest |contribution| first.
    c = everyone[["contribution_1", "contribution_2", "contribution_3"]].abs()
    assert (c["contribution_1"] >= c["contribution_2"]).all()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(chunk_rows=st.integers(min_value=17, max_value=700))
def test_chunking_never_changes_the_result(model, tmp_path, chunk_rows):
    df = generate_cohort(700, seed=35)
    df, _ = _corrupt(df, 0.05, seed=chunk_rows)
    source = tmp_path / f"c{chunk_rows}.csv"
    df.to_csv(source, index=False)
    a = score_cohort(model, source, tmp_path / f"a{chunk_rows}", chunk_rows=chunk_rows)
    b = score_cohort(model, source, tmp_path / f"b{chunk_rows}", chunk_rows=700)
    pd.testing.assert_frame_equal(a.read(), b.read())
    pd.testing.assert_frame_equal(a.read(rejects=True), b.read(rejects=True))
    assert len(a.parts) == -(-700 // chunk_rows)


def test_parquet_folder_and_csv_give_the_same_rows(model, tmp_path):
    df = generate_cohort(3000, seed=36)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(3):
        df.iloc[i * 1000 : (i + 1) * 1000].to_parquet(folder / f"f{i}.parquet")
    df.to_csv(tmp_path / "all.csv", index=False)
    a = score_cohort(model, folder, tmp_path / "a", chunk_rows=700)
    b = score_cohort(model, tmp_path / "all.csv", tmp_path / "b", chunk_rows=700)
    pd.testing.assert_frame_equal(a.read(), b.read())
    assert a.n_input == 3000


KILLED_RUN = """
import sys
from plo_risk.serve.scoring import score_cohort
score_cohort(sys.argv[1], sys.argv[2], sys.argv[3], chunk_rows=400, explain="all")
"""


def test_sigkill_then_resume_equals_an_uninterrupted_run(bundle_path, model, tmp_path):
    source = tmp_path / "cohort.parquet"
    df, _ = _corrupt(generate_cohort(12_000, seed=37), 0.01, seed=38)
    df[["parity", "age_years", "months_postpartum"]] = df[
        ["parity", "age_years", "months_postpartum"]
    ].astype(str)
    df.to_parquet(source)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(bundle_path), str(source), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no part written in 120 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("part-*.parquet")))
    assert not (out / "_SUCCESS").exists()
    assert done_before < 30

    resumed = score_cohort(model, source, out, chunk_rows=400, explain="all")
    fresh = score_cohort(
        model, source, tmp_path / "fresh", chunk_rows=400, explain="all"
    )
    assert resumed.resumed_parts >= done_before - 1 >= 2
    pd.testing.assert_frame_equal(resumed.read(), fresh.read())
    pd.testing.assert_frame_equal(resumed.read(rejects=True), fresh.read(rejects=True))
    assert resumed.n_scored + resumed.n_rejected == 12_000
    assert not list(out.glob(".*tmp*")) and not list(out.glob("_rejects/.*tmp*"))


def test_another_model_or_input_on_the_same_out_dir_is_refused(
    model, bundle_path, cohort_file, tmp_path
):
    out = tmp_path / "out"
    score_cohort(model, cohort_file, out, chunk_rows=2000)
    other_input = tmp_path / "other.parquet"
    generate_cohort(500, seed=39).to_parquet(other_input)
    with pytest.raises(ScoringError, match="input"):
        score_cohort(model, other_input, out)
    with pytest.raises(ScoringError, match="explain"):
        score_cohort(model, cohort_file, out, chunk_rows=2000, explain="all")
    other = RiskModel.load(bundle_path)
    other.model.intercept_ += 0.5
    with pytest.raises(ScoringError, match="model"):
        score_cohort(other, cohort_file, out, chunk_rows=2000)
    # resume=False replaces the folder's output instead.
    s = score_cohort(other, cohort_file, out, chunk_rows=2000, resume=False)
    assert s.resumed_parts == 0 and s.n_input == 6000
    again = score_cohort(other, cohort_file, out, chunk_rows=2000)
    assert again.resumed_parts == len(again.parts) == 3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "absent.parquet", "no such file"),
        (lambda p: _write(p / "x.json", "{}"), "unknown input type"),
        (
            lambda p: _write(p / "bad.parquet", "not parquet at all"),
            "not a readable Parquet",
        ),
        (lambda p: _write(p / "empty_dir.parquet.d/keep.txt", "").parent, "without"),
        (
            lambda p: _write(p / "noreq.csv", "age_years,parity\n30,1\n"),
            "months_postpartum",
        ),
    ],
)
def test_bad_sources_get_clear_errors(model, tmp_path, make, match):
    source = make(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ScoringError, match=match):
        score_cohort(model, source, out)
    assert not list(out.glob("part-*"))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"explain": "some"}, "explain='some'"),
        ({"engine": "spark"}, "engine='spark'"),
        ({"chunk_rows": 0}, "chunk_rows=0"),
        ({"top_k": 0}, "top_k=0"),
        ({"top_k": 999}, "top_k=999"),
        ({"scheduler": "tcp://x:1"}, "scheduler"),
        ({"units": {"vitamin_d_25oh": "furlongs"}}, "furlongs"),
    ],
)
def test_bad_options_get_clear_errors(model, cohort_file, tmp_path, kwargs, match):
    with pytest.raises(ScoringError, match=match):
        score_cohort(model, cohort_file, tmp_path / "out", **kwargs)


def test_units_apply_to_the_whole_column(model, tmp_path):
    df = generate_cohort(500, seed=40)
    factor = load_catalog()["vitamin_d_25oh"].unit_factor("nmol/L")
    nmol = df.assign(vitamin_d_25oh=df["vitamin_d_25oh"] / factor)
    df.to_parquet(tmp_path / "ng.parquet")
    nmol.to_parquet(tmp_path / "nmol.parquet")
    a = score_cohort(model, tmp_path / "ng.parquet", tmp_path / "a").read()
    b = score_cohort(
        model,
        tmp_path / "nmol.parquet",
        tmp_path / "b",
        units={"vitamin_d_25oh": "nmol/L"},
    ).read()
    np.testing.assert_allclose(a["risk"], b["risk"], rtol=1e-6)


def test_empty_input_scores_nothing_and_says_so(model, tmp_path):
    source = tmp_path / "empty.csv"
    generate_cohort(10, seed=1).head(0).to_csv(source, index=False)
    s = score_cohort(model, source, tmp_path / "out")
    assert (s.n_input, s.n_scored, s.n_rejected) == (0, 0, 0)
    assert json.loads(s.manifest.read_text())["n_input"] == 0


def test_score_frame_is_the_per_chunk_function(model):
    df = generate_cohort(300, seed=41)
    df.index = pd.RangeIndex(1000, 1300)
    scored, rejects = score_frame(model, df, explain="none")
    assert scored["row"].tolist() == list(range(1000, 1300))
    assert rejects.empty and list(rejects.columns)[:3] == ["row", "patient_id", "field"]


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


def test_dask_local_cluster_output_equals_the_local_engine(
    model, dask_cluster, tmp_path
):
    df, bad = _corrupt(generate_cohort(8000, seed=42), 0.01, seed=43)
    df[["parity", "age_years", "months_postpartum"]] = df[
        ["parity", "age_years", "months_postpartum"]
    ].astype(str)
    source = tmp_path / "cohort.parquet"
    df.to_parquet(source, row_group_size=2000)
    local = score_cohort(model, source, tmp_path / "local", chunk_rows=2000)
    dask = score_cohort(
        model,
        source,
        tmp_path / "dask",
        engine="dask",
        scheduler=dask_cluster.scheduler_address,
    )
    assert len(dask.parts) == 4
    pd.testing.assert_frame_equal(local.read(), dask.read())
    pd.testing.assert_frame_equal(local.read(rejects=True), dask.read(rejects=True))
    assert (dask.n_input, dask.n_rejected) == (8000, len(bad))
    # CSV through dask too, and a resumed dask run skips every finished part.
    df.to_csv(tmp_path / "cohort.csv", index=False)
    csv = score_cohort(
        model,
        tmp_path / "cohort.csv",
        tmp_path / "dcsv",
        engine="dask",
        scheduler=dask_cluster.scheduler_address,
    )
    pd.testing.assert_frame_equal(local.read(), csv.read())
    again = score_cohort(
        model,
        source,
        tmp_path / "dask",
        engine="dask",
        scheduler=dask_cluster.scheduler_address,
    )
    assert again.resumed_parts == 4


def test_dask_scheduler_that_does_not_answer(model, cohort_file, tmp_path):
    with pytest.raises(ScoringError, match="cannot connect"):
        score_cohort(
            model,
            cohort_file,
            tmp_path / "o",
            engine="dask",
            scheduler="tcp://127.0.0.1:9",
        )


runner = CliRunner()


def test_cli_score(bundle_path, cohort_file, tmp_path):
    out = tmp_path / "scored"
    result = runner.invoke(
        app,
        [
            "score",
            "--model",
            str(bundle_path),
            "--input",
            str(cohort_file),
            "--out",
            str(out),
            "--explain",
            "all",
            "--chunk-rows",
            "2500",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "6,000 rows" in result.output and "scored" in result.output
    assert len(list(out.glob("part-*.parquet"))) == 3
    bad = runner.invoke(
        app,
        [
            "score",
            "--model",
            str(bundle_path),
            "--input",
            str(tmp_path / "nope.csv"),
            "--out",
            str(out),
        ],
    )
    assert bad.exit_code == 2
    assert "nope.csv" in bad.output and "Traceback" not in bad.output


def test_summary_is_a_dataclass_with_text(model, cohort_file, tmp_path):
    s = score_cohort(model, cohort_file, tmp_path / "o")
    assert isinstance(s, ScoreSummary)
    assert "6,000 rows" in str(s) and s.rows_per_second > 0


def test_progress_shows_rows_per_second_only_when_asked(
    model, cohort_file, tmp_path, capsys
):
    score_cohort(model, cohort_file, tmp_path / "quiet", chunk_rows=2000)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""  # not a terminal: silent
    score_cohort(model, cohort_file, tmp_path / "shown", chunk_rows=2000, progress=True)
    shown = capsys.readouterr()
    assert "rows/s" in shown.err and "6000/6000" in shown.err
    assert shown.out == ""


# ---------------------------------------------------------------- issue 14


def test_misspelled_columns_stop_the_job_before_any_output(model, tmp_path):
    df = generate_cohort(500, seed=51).rename(
        columns={"vitamin_d_25oh": "vitamin_d", "bmd_lumbar_spine": "bmd_spine"}
    )
    source = tmp_path / "renamed.csv"
    df.to_csv(source, index=False)
    out = tmp_path / "out"
    with pytest.raises(ScoringError) as info:
        score_cohort(model, source, out)
    message = str(info.value)
    assert "'vitamin_d': not a catalog field; did you mean 'vitamin_d_25oh'?" in message
    assert (
        "'bmd_spine': not a catalog field; did you mean 'bmd_lumbar_spine'?" in message
    )
    assert not out.exists()  # nothing written


def test_ignored_columns_are_named_in_manifest_and_summary(model, tmp_path):
    df = generate_cohort(500, seed=52).rename(columns={"vitamin_d_25oh": "vitamin_d"})
    df["site_code"] = "A"
    source = tmp_path / "renamed.parquet"
    df.to_parquet(source)
    s = score_cohort(model, source, tmp_path / "out", unknown_columns="ignore")
    assert s.ignored_columns == ["vitamin_d", "site_code"]
    manifest = json.loads(s.manifest.read_text())
    assert manifest["ignored_columns"] == ["vitamin_d", "site_code"]
    assert s.n_scored + s.n_rejected == 500
    with pytest.raises(ScoringError, match="unknown_columns='warn' is not allowed"):
        score_cohort(model, source, tmp_path / "o2", unknown_columns="warn")


def test_a_column_empty_in_every_row_is_reported(model, tmp_path):
    df = generate_cohort(800, seed=53)
    df["vitamin_d_25oh"] = np.nan
    df["prolactin"] = np.nan
    source = tmp_path / "empty.parquet"
    df.to_parquet(source, row_group_size=200)
    with pytest.warns(UserWarning, match="empty in every row"):
        s = score_cohort(model, source, tmp_path / "out", chunk_rows=300)
    assert s.empty_columns == ["vitamin_d_25oh", "prolactin"]
    assert json.loads(s.manifest.read_text())["empty_columns"] == s.empty_columns
    # A column with one value in one chunk is not empty.
    df.loc[df.index[-1], "vitamin_d_25oh"] = 30.0
    df.to_parquet(source, row_group_size=200)
    s = score_cohort(model, source, tmp_path / "out2", chunk_rows=300)
    assert s.empty_columns == ["prolactin"]


def test_population_cohort_warns_and_setting_recalibrates(model, tmp_path):
    df = generate_cohort(20_000, setting="population", seed=54)
    source = tmp_path / "population.parquet"
    df.to_parquet(source)
    with pytest.warns(UserWarning, match="--prevalence"):
        as_trained = score_cohort(model, source, tmp_path / "a")
    assert any("times the expected" in w for w in as_trained.warnings)
    moved = score_cohort(model, source, tmp_path / "b", setting="population")
    assert not moved.warnings
    # Against the oracle: the moved model's mean risk is near the true mean risk,
    # the referral model's is tens of times too high.
    truth = df["true_risk"].mean()
    assert as_trained.mean_risk > 10 * truth
    assert truth / 3 < moved.mean_risk < 3 * truth
    assert moved.n_flagged < as_trained.n_flagged / 5
    assert "prevalence=" in moved.model_version
    same = score_cohort(
        model,
        source,
        tmp_path / "c",
        prevalence=model.for_setting(setting="population").model.prevalence_,
    )
    pd.testing.assert_frame_equal(same.read(), moved.read())
    with pytest.raises(ScoringError, match="setting"):
        score_cohort(model, source, tmp_path / "d", setting="hospital")
    with pytest.raises(ScoringError, match="not both"):
        score_cohort(
            model, source, tmp_path / "e", setting="population", prevalence=0.1
        )


def test_progress_lines_in_a_log(model, cohort_file, tmp_path, caplog, monkeypatch):
    import plo_risk.serve.scoring as scoring

    monkeypatch.setattr(scoring, "_LOG_EVERY", 0.0)
    with caplog.at_level("INFO", logger="plo_risk.serve.scoring"):
        score_cohort(model, cohort_file, tmp_path / "o", chunk_rows=1500)
    lines = [r.getMessage() for r in caplog.records if "rows/s" in r.getMessage()]
    # One per chunk and one at the end: rows done of the total, speed, time left.
    assert len(lines) == 5, lines
    assert lines[0].startswith("scored 1,500/6,000 rows, ")
    assert "s left" in lines[0] and lines[-1].startswith("scored 6,000/6,000")


def test_resumed_run_reports_the_speed_of_the_rows_it_scored(
    model, cohort_file, tmp_path
):
    out = tmp_path / "o"
    first = score_cohort(model, cohort_file, out, chunk_rows=1500)
    assert first.n_resumed_rows == 0
    (out / "part-00002.parquet").unlink()
    (out / "_SUCCESS").unlink(missing_ok=True)
    again = score_cohort(model, cohort_file, out, chunk_rows=1500)
    assert (again.resumed_parts, again.n_resumed_rows) == (3, 4500)
    assert again.rows_per_second == pytest.approx(1500 / again.seconds)
    pd.testing.assert_frame_equal(first.read(), again.read())


def test_dask_splits_a_single_row_group_to_chunk_rows(model, dask_cluster, tmp_path):
    source = tmp_path / "one_group.parquet"
    generate_cohort(6000, seed=55).to_parquet(source, row_group_size=10_000)
    local = score_cohort(model, source, tmp_path / "local", chunk_rows=1500)
    dask = score_cohort(
        model,
        source,
        tmp_path / "dask",
        chunk_rows=1500,
        engine="dask",
        scheduler=dask_cluster.scheduler_address,
    )
    assert len(local.parts) == len(dask.parts) == 4
    pd.testing.assert_frame_equal(local.read(), dask.read())


def test_a_second_run_on_a_busy_out_folder_is_refused(bundle_path, model, tmp_path):
    source = tmp_path / "big.parquet"
    generate_cohort(150_000, setting="population", seed=35).to_parquet(source)
    out = tmp_path / "out"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plo_risk.cli",
            "score",
            "--model",
            str(bundle_path),
            "--input",
            str(source),
            "--out",
            str(out),
            "--chunk-rows",
            "5000",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        lock = out / ".lock"
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # another model, replacing the folder: refused, naming the holder
        other = RiskModel.load(bundle_path)
        with pytest.raises(
            ScoringError, match=f"another scoring run \\(pid {first.pid}\\)"
        ):
            score_cohort(other, source, out, resume=False, progress=False)
        assert first.poll() is None  # refused while the first was still running
    finally:
        stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr.decode()[-2000:]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["n_input"] == 150_000
    assert manifest["model_version"] == model.version  # one model's rows only
    # once it is done the folder is free again: the same job resumes every part
    again = score_cohort(model, source, out, chunk_rows=5000, progress=False)
    assert again.resumed_parts == len(manifest["parts"])


# ------------------------------------------ lines and row groups that cannot be read


def _lines(df: pd.DataFrame) -> list[bytes]:
    return df.to_csv(index=False).encode().splitlines(keepends=True)


def _hostile_lines(good: bytes) -> dict[str, bytes]:
    cells = good.rstrip(b"\n").split(b",")
    return {
        "too few fields": b",".join(cells[:5]) + b"\n",
        "too many fields": good.rstrip(b"\n") + b",7,8\n",
        "a Latin-1 byte": b",".join([b"caf\xe9", *cells[1:]]) + b"\n",
        "an unterminated quote": b'"' + good,
        "a field larger than a CSV block": b"x" * 3_000_000 + b"," + good,
        "a field over the csv module's limit": b",".join([b"y" * 200_000, *cells[1:]])
        + b"\n",
        "only spaces": b"   \n",
        "a stray quote after a quoted field": b'"1"2,' + good,
    }


def test_a_bad_csv_line_is_rejected_with_its_line_number_and_the_run_goes_on(
    model, tmp_path
):
    df = generate_cohort(900, seed=71)
    lines = _lines(df)
    header, rows = lines[0], lines[1:]
    hostile = _hostile_lines(rows[0])
    before = dict(zip([7, 150, 151, 400, 401, 620, 700, 899], hostile, strict=True))
    text = [header]
    for i, row in enumerate(rows):
        if i in before:
            text.append(hostile[before[i]])
        if i == 300:
            text += [b"\n", b"\r\n"]  # blank lines are not rows
        text.append(row)
    # Where each line lands: its physical line number and its row (non-empty lines).
    good_rows, bad = [], {}
    n = 0
    for number, raw in enumerate(text[1:], start=2):
        if not raw.strip(b"\r\n"):
            continue
        if raw in rows:
            good_rows.append(n)
        else:
            bad[n] = number
        n += 1
    source = tmp_path / "hostile.csv"
    source.write_bytes(b"".join(text))
    clean = tmp_path / "clean.csv"
    clean.write_bytes(b"".join(lines))

    s = score_cohort(model, source, tmp_path / "out", chunk_rows=250, progress=False)
    assert s.n_input == len(rows) + len(hostile)
    assert (s.n_scored, s.n_rejected, s.n_unreadable) == (len(rows), len(hostile), 0)
    rejects = s.read(rejects=True)
    assert set(rejects["reason"]) == {"unreadable_row"}
    assert rejects["row"].tolist() == sorted(bad)
    for row, message in zip(rejects["row"], rejects["message"], strict=True):
        assert message.startswith(f"line {bad[row]:,}: ")

    # Every good row is scored as in the clean file, under its own position.
    reference = score_cohort(model, clean, tmp_path / "ref", chunk_rows=900).read()
    scored = s.read()
    assert scored["row"].tolist() == good_rows
    assert scored["patient_id"].tolist() == reference["patient_id"].tolist()
    np.testing.assert_array_equal(scored["risk"], reference["risk"])

    again = score_cohort(
        model, source, tmp_path / "out", chunk_rows=250, progress=False
    )
    assert again.resumed_parts == len(again.parts)
    pd.testing.assert_frame_equal(again.read(rejects=True), rejects)


def _corrupt_row_group(path: Path, group: int) -> None:
    """Overwrite the page headers of one row group's column chunks with garbage."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata.row_group(group)
    data = bytearray(path.read_bytes())
    for c in range(md.num_columns):
        offset = md.column(c).data_page_offset
        data[offset : offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("chunk_rows", [500, 700])
def test_an_unreadable_row_group_is_one_entry_counting_exactly_its_rows(
    model, tmp_path, chunk_rows
):
    df = generate_cohort(2000, seed=72)
    source = tmp_path / "groups.parquet"
    df.to_parquet(source, row_group_size=500)
    _corrupt_row_group(source, 2)
    s = score_cohort(model, source, tmp_path / "out", chunk_rows=chunk_rows)
    assert (s.n_input, s.n_unreadable) == (2000, 500)
    assert s.n_scored + s.n_rejected + s.n_unreadable == 2000
    rejects = s.read(rejects=True)
    lost = rejects[rejects["reason"] == "unreadable"]
    covered = []
    for value, message in zip(lost["value"], lost["message"], strict=True):
        first, last = (int(x) for x in value.removeprefix("rows ").split("-"))
        covered += range(first, last + 1)
        assert "row group 3 of 4" in message
    assert covered == list(range(1000, 1500))
    assert len(lost) == (1 if chunk_rows == 500 else 2)  # one per part it spans
    scored = s.read()
    assert set(scored["row"]) == set(range(2000)) - set(covered)
    assert json.loads(s.manifest.read_text())["n_unreadable"] == 500
    again = score_cohort(model, source, tmp_path / "out", chunk_rows=chunk_rows)
    assert again.resumed_parts == len(again.parts)


def test_each_file_of_a_folder_is_validated_with_its_own_types(model, tmp_path):
    df = generate_cohort(600, seed=73)
    first, second = df.iloc[:300], df.iloc[300:].copy()
    second["parity"] = second["parity"] == 1  # a bool where a count belongs
    second["age_years"] = second["age_years"].astype(float)
    alone = tmp_path / "alone"
    alone.mkdir()
    second.to_parquet(alone / "b.parquet")
    folder = tmp_path / "folder"
    folder.mkdir()
    first.to_parquet(folder / "a.parquet")
    second.to_parquet(folder / "b.parquet")
    a = score_cohort(model, alone, tmp_path / "out-alone", chunk_rows=250)
    f = score_cohort(model, folder, tmp_path / "out-folder", chunk_rows=250)
    ra, rf = a.read(rejects=True), f.read(rejects=True)
    rf = rf[rf["row"] >= 300].assign(row=lambda r: r["row"] - 300)
    assert len(ra) > 0 and set(ra["field"]) == {"parity"}
    pd.testing.assert_frame_equal(ra.reset_index(drop=True), rf.reset_index(drop=True))
    assert f.n_scored == 300 + a.n_scored


def test_decimal_columns_read_as_numbers_alone_and_in_a_folder(model, tmp_path):
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    df = generate_cohort(400, seed=74)
    floats = tmp_path / "floats.parquet"
    df.to_parquet(floats)
    table = pa.Table.from_pandas(df, preserve_index=False)
    i = table.schema.get_field_index("age_years")
    ages = [
        None if pd.isna(v) else decimal.Decimal(f"{v:.1f}") for v in df["age_years"]
    ]
    table = table.set_column(i, "age_years", pa.array(ages, pa.decimal128(5, 1)))
    folder = tmp_path / "folder"
    folder.mkdir()
    pq.write_table(table, folder / "b.parquet")
    pq.write_table(table, tmp_path / "decimals.parquet")
    rounded = df.assign(age_years=df["age_years"].round(1))
    rounded.to_parquet(tmp_path / "rounded.parquet")
    ref = score_cohort(model, tmp_path / "rounded.parquet", tmp_path / "r").read()
    alone = score_cohort(model, tmp_path / "decimals.parquet", tmp_path / "a").read()
    inside = score_cohort(model, folder, tmp_path / "f").read()
    pd.testing.assert_frame_equal(alone, ref)
    pd.testing.assert_frame_equal(inside, ref)


def test_dask_reads_bad_lines_and_lost_row_groups_as_the_local_engine(
    model, dask_cluster, tmp_path
):
    lines = _lines(generate_cohort(1200, seed=75))
    hostile = list(_hostile_lines(lines[1]).values())
    text = lines[:1] + [
        row
        for i, line in enumerate(lines[1:])
        for row in ([hostile[i % 8]] if i % 97 == 5 else []) + [line]
    ]
    csv_path = tmp_path / "bad.csv"
    csv_path.write_bytes(b"".join(text))
    pq_path = tmp_path / "bad.parquet"
    generate_cohort(1200, seed=76).to_parquet(pq_path, row_group_size=400)
    _corrupt_row_group(pq_path, 1)
    for source in (csv_path, pq_path):
        local = score_cohort(
            model, source, tmp_path / f"l-{source.name}", chunk_rows=300
        )
        dask = score_cohort(
            model,
            source,
            tmp_path / f"d-{source.name}",
            chunk_rows=300,
            engine="dask",
            scheduler=dask_cluster.scheduler_address,
        )
        pd.testing.assert_frame_equal(local.read(), dask.read())
        if source == csv_path:
            pd.testing.assert_frame_equal(
                local.read(rejects=True), dask.read(rejects=True)
            )
        assert dask.n_scored + dask.n_rejected + dask.n_unreadable == dask.n_input
        assert (dask.n_rejected, dask.n_unreadable) == (
            local.n_rejected,
            local.n_unreadable,
        )
    # The lines are rejected alike; a lost run is cut where each engine's parts end.
    assert local.n_unreadable == 400
    lr, dr = local.read(rejects=True), dask.read(rejects=True)
    assert set(lr["value"]) == {"rows 400-599", "rows 600-799"}
    assert set(dr["value"]) == {"rows 400-699", "rows 700-799"}


_GOOD = _lines(generate_cohort(60, seed=77))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(range(1, len(_GOOD))),
            st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"") + b"\n"),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(7, 40),
)
def test_any_csv_lines_are_scored_or_rejected_never_lost(model, tmp_path, lines, chunk):
    text = [_GOOD[0]] + [_GOOD[x] if isinstance(x, int) else x for x in lines]
    source = tmp_path / f"f{abs(hash(tuple(text)))}.csv"
    source.write_bytes(b"".join(text))
    s = score_cohort(
        model, source, tmp_path / f"o-{source.stem}-{chunk}", chunk_rows=chunk
    )
    rows = [t for t in text[1:] if t.strip(b"\r\n")]
    assert s.n_input == len(rows)
    assert s.n_scored + s.n_rejected == len(rows) and s.n_unreadable == 0
    scored = set(s.read().get("row", []))
    rejected = set(s.read(rejects=True).get("row", []))
    assert {i for i, t in enumerate(rows) if t in _GOOD[1:]} <= scored
    assert scored | rejected == set(range(len(rows))) and not scored & rejected


def _no_space(real, after: int):
    """pq.write_table that fails with ENOSPC from the ``after``-th call on."""
    import errno

    calls = {"n": 0}

    def write_table(table, where, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            Path(where).write_bytes(b"PAR1 half")  # a half-written temporary file
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        return real(table, where, *args, **kwargs)

    return write_table


def test_a_full_disk_is_one_clear_error_nothing_half_written_and_resume_finishes(
    model, cohort_file, tmp_path, monkeypatch
):
    import pyarrow.parquet as pq

    from plo_risk.utils.atomic import DiskFullError

    real = pq.write_table
    monkeypatch.setattr(pq, "write_table", _no_space(real, after=3))
    out = tmp_path / "out"
    with pytest.raises(DiskFullError, match=r"the disk is full .* free some space"):
        score_cohort(model, cohort_file, out, chunk_rows=1500)
    assert not list(out.glob(".*tmp*")) and not list(out.glob("_rejects/.*tmp*"))
    assert not (out / "_SUCCESS").exists()
    for part in out.glob("**/part-*.parquet"):
        pq.read_metadata(part)  # every part under a final name is whole
    monkeypatch.setattr(pq, "write_table", real)
    s = score_cohort(model, cohort_file, out, chunk_rows=1500)
    assert s.resumed_parts >= 1 and s.n_scored + s.n_rejected == s.n_input == 6000


def test_the_cli_says_a_full_disk_in_one_line(
    bundle_path, cohort_file, tmp_path, monkeypatch, capsys
):
    import pyarrow.parquet as pq

    from plo_risk import cli

    monkeypatch.setattr(pq, "write_table", _no_space(pq.write_table, after=0))
    args = ["plo-risk", "score", "--model", str(bundle_path), "--input"]
    monkeypatch.setattr(
        sys, "argv", [*args, str(cohort_file), "--out", str(tmp_path / "o")]
    )
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 1
    text = capsys.readouterr().err
    assert "the disk is full" in text and "Traceback" not in text


def test_dask_keeps_big_integer_ids_with_a_gap_exactly(model, dask_cluster, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = generate_cohort(400, seed=78)
    ids = pd.array([12345678901234567 + i for i in range(400)], dtype="Int64")
    ids[5] = pd.NA
    df["patient_id"] = ids
    source = tmp_path / "ids.parquet"
    # As a database export writes it: int64 with nulls and no pandas metadata.
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, source, row_group_size=150)
    dask = score_cohort(
        model,
        source,
        tmp_path / "d",
        chunk_rows=150,
        engine="dask",
        scheduler=dask_cluster.scheduler_address,
    )
    got = [None if pd.isna(v) else v for v in dask.read()["patient_id"]]
    assert got == [None if i == 5 else str(12345678901234567 + i) for i in range(400)]


def test_null_tokens_in_a_csv_get_the_record_verdict(model, tmp_path):
    import csv

    from plo_risk import ValidationError, validate_record

    tokens = ["NaN", "nan", "NULL", "null", "N/A", "NA", "n/a", "None", "", "  "]
    tokens += ["#N/A", "-NaN", "1.#IND"]  # Arrow's own null words, not ours
    fields = ["lactation_months", "smoking", "ancestry", "age_years"]
    header = ["patient_id", "age_years", "parity", "months_postpartum", *fields[:3]]
    rows = []
    for field in fields:
        for token in tokens:
            row = {"age_years": "31", "parity": "2", "months_postpartum": "3"}
            row[field] = token
            rows.append({"patient_id": f"p{len(rows)}", **row})
    rows.append(
        {"patient_id": "NA", "age_years": "31", "parity": "2", "months_postpartum": "3"}
    )  # an id is an id, even "NA"
    source = tmp_path / "tokens.csv"
    with open(source, "w", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(rows)

    s = score_cohort(model, source, tmp_path / "out")
    rejects = s.read(rejects=True)
    scored = s.read()
    differ = []
    for i, row in enumerate(rows):
        record = {k: row.get(k, "") for k in header if k != "patient_id"}
        try:
            validate_record(record)
            expected = []
        except ValidationError as exc:
            expected = [p.message for p in exc.problems]
        got = rejects.loc[rejects["row"] == i, "message"].tolist()
        if got != expected:
            differ.append((row, expected, got))
    assert differ == []
    assert s.n_scored + s.n_rejected == len(rows)
    assert "NA" in set(scored["patient_id"])


def test_a_parquet_list_column_is_rows_rejected_not_a_dead_job(model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "patient_id": ["a", "b", "c"],
            "age_years": [30.0, 31.0, 32.0],
            "parity": [1, 2, 1],
            "months_postpartum": [3.0, 4.0, 5.0],
            "lactation_months": pa.array(
                [[1.0], None, [2.0, 3.0]], pa.list_(pa.float64())
            ),
        }
    )
    pq.write_table(table, tmp_path / "lists.parquet")
    s = score_cohort(model, tmp_path / "lists.parquet", tmp_path / "out")
    assert (s.n_input, s.n_scored, s.n_rejected) == (3, 1, 2)
    rejects = s.read(rejects=True)
    assert rejects["field"].tolist() == ["lactation_months"] * 2
    assert rejects["message"].str.contains("must be a finite number").all()

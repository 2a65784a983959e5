"""The fuzz harness: hostile inputs get the package's own errors, never hang, lose no row.

Two sources of hostile input:

* the committed corpus ``tests/data/hostile/`` (``make_corpus.py`` writes it): CSV
  and Parquet files, patient files and mappings of the kinds an adversarial review
  or a broken export produced, plus the cases made here because git cannot hold
  them (a FIFO, symlinks, megabyte fields, resealed forged bundles);
* hypothesis: records, frames and CSV bytes built from hostile values (lists,
  dicts, bytes, huge integers, NaN and infinities, null tokens, Decimals).

Every case runs under a time limit (a hang fails), may raise only an exception
class defined in ``plo_risk`` (which subclass the builtin ones), and, when it
returns a scoring or validation result, accounts for every input row.
"""

from __future__ import annotations

import decimal
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from plo_risk.cli import app
from plo_risk.data.catalog import load_catalog
from plo_risk.data.ingest import ingest
from plo_risk.data.patient_file import read_patient_file
from plo_risk.data.reference import reference_values
from plo_risk.data.schema import validate_frame, validate_record
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import MANIFEST, save_bundle
from plo_risk.model.zoo import make_model
from plo_risk.serve import RiskModel
from plo_risk.serve.scoring import score_cohort
from tests.forge import reseal

CORPUS = Path(__file__).parent / "data" / "hostile"
# Seconds one case may take on a loaded 2-core machine; the slowest legitimate
# case (scoring a corpus file) takes well under a second.
LIMIT = 60.0
CATALOG = load_catalog()


def _own(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] == "plo_risk"


def _within(fn, *args, seconds: float = LIMIT, **kwargs) -> tuple[Any, Any]:
    """(result, exception) of ``fn`` run in a thread; a run past ``seconds`` fails."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - the harness judges it
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)}{args!r:.200} hung for {seconds} s")
    error = box.get("error")
    if error is not None and not _own(error):
        raise AssertionError(
            f"a foreign exception reached the caller: {type(error).__module__}."
            f"{type(error).__name__}: {str(error)[:300]}"
        ) from error
    return box.get("result"), error


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    valid = validate_frame(generate_cohort(3000, seed=91)).valid
    y = valid["fracture"].to_numpy()
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    model = make_model(
        "xgboost",
        params={"n_estimators": 30},
        cv=3,
        thresholds={"moderate": 0.02, "high": 0.10},
    ).fit(X, y)
    return save_bundle(
        model,
        tmp_path_factory.mktemp("fuzz") / "bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X)},
    )


@pytest.fixture(scope="module")
def model(bundle) -> RiskModel:
    return RiskModel.load(bundle)


def _files(folder: str) -> list[Path]:
    return sorted(p for p in (CORPUS / folder).iterdir() if p.is_file())


def test_the_corpus_is_what_make_corpus_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_corpus", CORPUS / "make_corpus.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for folder, files in (
        ("csv", module.csv_files()),
        ("parquet", module.parquet_files()),
        ("patient", module.patient_files()),
        ("mapping", module.mapping_files()),
    ):
        on_disk = {p.name: p.read_bytes() for p in _files(folder)}
        assert on_disk == files, (
            f"tests/data/hostile/{folder} is stale: run make_corpus.py"
        )


# ------------------------------------------------------------ files to score


def _rows_of_csv(path: Path) -> int:
    """Rows by the scoring rule: one non-empty line after the header, one row."""
    lines = path.read_bytes().split(b"\n")[1:]
    return sum(1 for line in lines if line not in (b"", b"\r"))


def _check_scored(summary, expected_rows: int) -> None:
    assert summary.n_input == expected_rows
    assert summary.n_scored + summary.n_rejected + summary.n_unreadable == expected_rows
    rows = set()
    for part in summary.parts + summary.rejects:
        rows |= set(pq.read_table(part, columns=["row"]).column("row").to_pylist())
    assert rows == set(range(expected_rows)), "rows neither scored nor rejected"


@pytest.mark.parametrize("path", _files("csv"), ids=lambda p: p.name)
def test_hostile_csv_is_scored_row_by_row_or_refused_whole(model, tmp_path, path):
    summary, error = _within(
        score_cohort,
        model,
        path,
        tmp_path / "out",
        chunk_rows=3,
        progress=False,
        unknown_columns="ignore",
    )
    if error is None:
        _check_scored(summary, _rows_of_csv(path))
    else:
        assert not (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.parametrize("path", _files("parquet"), ids=lambda p: p.name)
def test_hostile_parquet_is_scored_row_by_row_or_refused_whole(model, tmp_path, path):
    summary, error = _within(
        score_cohort, model, path, tmp_path / "out", chunk_rows=3, progress=False
    )
    if error is None:
        _check_scored(summary, pq.ParquetFile(path).metadata.num_rows)
    else:
        assert not (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.parametrize("path", _files("parquet"), ids=lambda p: p.name)
def test_hostile_parquet_in_a_folder_gets_the_verdict_it_gets_alone(
    model, tmp_path, path
):
    alone, folder = tmp_path / "alone", tmp_path / "folder"
    for d in (alone, folder):
        d.mkdir()
        (d / "b.parquet").write_bytes(path.read_bytes())
    (folder / "a.parquet").write_bytes(
        (CORPUS / "parquet" / "good.parquet").read_bytes()
    )
    a, a_error = _within(score_cohort, model, alone, tmp_path / "oa", chunk_rows=3)
    f, f_error = _within(score_cohort, model, folder, tmp_path / "of", chunk_rows=3)
    if a_error is not None:
        assert f_error is not None, f"refused alone ({a_error}) but read in a folder"
        return
    if f_error is not None:  # the folder's columns differ from good.parquet's
        assert "columns differ" in str(f_error) or "no such" in str(f_error)
        return
    shift = pq.ParquetFile(folder / "a.parquet").metadata.num_rows
    rf = f.read(rejects=True)
    rf = rf[rf["row"] >= shift].assign(row=lambda r: r["row"] - shift)
    assert _verdicts(a.read(rejects=True)) == _verdicts(rf, shift)
    assert (f.n_scored, f.n_unreadable) == (a.n_scored + shift, a.n_unreadable)


def _verdicts(rejects: pd.DataFrame, shift: int = 0) -> set[tuple[int, str, str]]:
    """(row, field, reason) of every reject; a lost run as each row it covers (the
    runs are cut where parts end, which differs between a file and a folder)."""
    out = set()
    if rejects.empty:
        return out
    for row, field, value, reason in rejects[
        ["row", "field", "value", "reason"]
    ].itertuples(index=False):
        if reason == "unreadable":
            first, last = (int(x) for x in value.removeprefix("rows ").split("-"))
            out |= {(r - shift, field, reason) for r in range(first, last + 1)}
        else:
            out.add((row, field, reason))
    return out


def test_a_fifo_or_a_field_of_megabytes_does_not_hang_scoring(model, tmp_path):
    fifo = tmp_path / "cohort.csv"
    os.mkfifo(fifo)
    _, error = _within(score_cohort, model, fifo, tmp_path / "o1", seconds=20)
    assert error is not None and "not a regular file" in str(error)
    big = tmp_path / "big.csv"
    head = (CORPUS / "csv" / "header_only.csv").read_bytes()
    big.write_bytes(head + b"H-1," + b"9" * 8_000_000 + b",1,2,2,true,-2\n")
    summary, error = _within(score_cohort, model, big, tmp_path / "o2", seconds=60)
    assert error is None and (summary.n_input, summary.n_rejected) == (1, 1)


# ------------------------------------------------------------- patient files


@pytest.mark.parametrize("path", _files("patient"), ids=lambda p: p.name)
def test_hostile_patient_file_is_assessed_or_refused_in_one_line(bundle, model, path):
    record, error = _within(read_patient_file, path)
    if error is None:
        _within(model.assess, record)
    result = _within(
        CliRunner().invoke,
        app,
        ["assess", "--model", str(bundle), "--patient", str(path)],
    )[0]
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:  # a bounded message, whatever the file holds
        assert len(result.output) < 5_000, result.output[:2000]
    assert not isinstance(result.exception, Exception) or _own(result.exception)


# ------------------------------------------------------------------ mappings


@pytest.mark.parametrize("path", _files("mapping"), ids=lambda p: p.name)
def test_hostile_mapping_is_a_mapping_error_and_runs_nothing(
    tmp_path, path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame({"Age": [31.0], "Parity": [1], "PP": [3.0]})
    _, error = _within(ingest, frame, path)
    assert error is not None  # none of the corpus mappings is valid
    assert not list(tmp_path.iterdir()), "the mapping ran something"


# ------------------------------------------------------------------- bundles


def _copy(bundle: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(bundle, to)
    return to


BUNDLE_FILES = ["manifest.json", "features.json", "model.json", "ensemble-000.json"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(BUNDLE_FILES),
    st.integers(0, 10**9),
    st.binary(min_size=1, max_size=8),
    st.booleans(),
)
def test_a_mutated_resealed_bundle_loads_or_is_a_bundle_error(
    bundle, tmp_path_factory, name, where, junk, resealed
):
    forged = _copy(bundle, tmp_path_factory.mktemp("forged") / "b")
    target = forged / name
    if not target.exists():
        return
    data = bytearray(target.read_bytes())
    at = where % len(data)
    data[at : at + len(junk)] = junk
    target.write_bytes(bytes(data))
    if resealed and name != MANIFEST:
        reseal(forged)
    _within(RiskModel.load, forged)


@pytest.mark.parametrize(
    "make",
    [
        "fifo",
        "directory",
        "symlink_out",
        "deep_features",
        "latin1_manifest",
        "manifest_list",
        "no_features",
        "features_wrong_shape",
        "huge_number",
    ],
)
def test_a_forged_bundle_is_a_bundle_error_naming_what(bundle, tmp_path, make):
    forged = _copy(bundle, tmp_path / "b")
    features = forged / "features.json"
    if make == "fifo":
        (forged / "model.json").unlink()
        os.mkfifo(forged / "model.json")
    elif make == "directory":
        features.unlink()
        features.mkdir()
    elif make == "symlink_out":
        outside = tmp_path / "outside.json"
        outside.write_bytes(features.read_bytes())
        features.unlink()
        features.symlink_to(outside)
    elif make == "deep_features":
        features.write_text('{"steps": ' + "[" * 50_000 + "]" * 50_000 + "}")
    elif make == "latin1_manifest":
        text = (forged / MANIFEST).read_text().replace('"xgboost"', '"xgbööst"', 1)
        (forged / MANIFEST).write_bytes(text.encode("latin-1"))
    elif make == "manifest_list":
        (forged / MANIFEST).write_text("[1, 2, 3]")
    elif make == "no_features":
        features.write_text("{}")
    elif make == "features_wrong_shape":
        features.write_text('{"steps": {"a": [1, 2, {"b": null}]}, "version": "x"}')
    elif make == "huge_number":
        features.write_text('{"steps": [' + "9" * 10_000 + "]}")
    if make not in (
        "fifo",
        "directory",
        "symlink_out",
        "latin1_manifest",
        "manifest_list",
    ):
        reseal(forged)
    _, error = _within(RiskModel.load, forged, seconds=20)
    assert error is not None, f"the forged bundle ({make}) loaded"


# --------------------------------------------------------- hypothesis inputs

NULL_TOKENS = ["NaN", "nan", "NULL", "null", "N/A", "NA", "n/a", "None", "", "  "]
FIELDS = [f.name for f in CATALOG][:24] + ["patient_id"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(NULL_TOKENS),
    st.binary(max_size=6),
    st.decimals(allow_nan=True, allow_infinity=True, places=3),
)
hostile = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
records = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=10), hostile, max_size=10
)


@settings(max_examples=150, deadline=None)
@given(records)
def test_any_record_gets_a_verdict_in_our_own_errors(record):
    _within(validate_record, record)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_any_record_is_assessed_or_refused(model, data):
    base = json.loads((CORPUS / "patient" / "valid.json").read_text())
    record = {**base, **data.draw(records)}
    _within(model.assess, record)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_any_frame_keeps_every_row(model, data):
    n = data.draw(st.integers(1, 6))
    columns = data.draw(
        st.lists(st.sampled_from(FIELDS), min_size=1, max_size=6, unique=True)
    )
    base = json.loads((CORPUS / "patient" / "valid.json").read_text())
    frame = pd.DataFrame([base] * n)
    for c in columns:
        frame[c] = pd.Series(
            data.draw(st.lists(hostile, min_size=n, max_size=n)), dtype=object
        )
    result, error = _within(validate_frame, frame)
    if error is None:
        rejected = set(result.rejects["row"]) if len(result.rejects) else set()
        assert len(result.valid) + len(rejected) == n
        assert not set(result.valid.index) & rejected
    out, error = _within(model.predict_frame, frame)
    if error is None:
        assert len(out) == n


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.binary(max_size=400))
def test_any_csv_bytes_are_scored_row_by_row_or_refused(model, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("bytes")
    head = (CORPUS / "csv" / "header_only.csv").read_bytes()
    path = folder / "x.csv"
    path.write_bytes(head + data)
    summary, error = _within(
        score_cohort, model, path, folder / "out", chunk_rows=4, progress=False
    )
    if error is None:
        _check_scored(summary, _rows_of_csv(path))


@pytest.mark.parametrize(
    "age",
    [decimal.Decimal("33.5"), decimal.Decimal("NaN"), decimal.Decimal("-Infinity")]
    + [np.int64(33), np.float32(33.5), np.float64("nan")],
    ids=repr,
)
def test_exact_decimals_and_numpy_scalars_get_one_verdict_on_both_paths(age):
    base = json.loads((CORPUS / "patient" / "valid.json").read_text())
    record, error = _within(validate_record, {**base, "age_years": age})
    frame = validate_frame(pd.DataFrame([{**base, "age_years": age}]))
    if error is None:
        assert len(frame.valid) == 1
        assert record["age_years"] == frame.valid["age_years"].iloc[0] == float(age)
    else:
        assert [str(error)] == frame.rejects["message"].tolist()

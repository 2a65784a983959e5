"""The MLflow pyfunc's predict: every row scored or given its error, never a trace.

MLflow's scoring server answers an exception from ``predict`` with a 400 that
carries the server's stack trace, and a batch with one bad cell used to be lost
as a whole. Tested on ``predict`` itself and through the scoring server in-process.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plo_risk.data.catalog import load_catalog
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import save_bundle
from plo_risk.model.zoo import make_model
from plo_risk.report import SEED_CASE
from plo_risk.serve import RiskModel
from plo_risk.serve.pyfunc import INTERNAL_ERROR, PLORiskPyfunc
from tests.forge import deep_list

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


HOSTILE = {
    "dict": {"a": 1},
    "list": [1, 2],
    "set": {1, 2},
    "bytes": b"12",
    "nested": {"a": [{"b": {1, 2}}]},
    "deep": deep_list(50_000),
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    valid = validate_frame(generate_cohort(2000, seed=61), unknown="ignore").valid
    X = valid[[c for c in valid.columns if c in load_catalog()]]
    model = make_model("xgboost", params={"n_estimators": 20, "n_jobs": 1}, cv=3).fit(
        X, valid["fracture"].to_numpy()
    )
    path = tmp_path_factory.mktemp("pyfunc") / "bundle"
    return save_bundle(model, path, model_name="xgboost")


@pytest.fixture(scope="module")
def pyfunc(bundle) -> PLORiskPyfunc:
    # predict only: the model is set as load_context sets it.
    p = PLORiskPyfunc()
    p.model = RiskModel.load(bundle)
    return p


def _cells(values: list) -> pd.Series:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return pd.Series(out)


@pytest.mark.parametrize("field", ["age_years", "smoking", "ancestry", "bmi"])
@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_dict_or_list_cell_is_that_rows_error(pyfunc, field, value):
    rows = pd.DataFrame([SEED_CASE, SEED_CASE, SEED_CASE])
    good = SEED_CASE.get(field)
    rows[field] = _cells([good, value, good])
    out = pyfunc.predict(None, rows)
    assert len(out) == 3
    assert out["error"].isna().tolist() == [True, False, True]
    assert out.loc[1, "error"].startswith(f"{field}=")
    assert np.isnan(out.loc[1, "risk"])
    alone = pyfunc.predict(None, pd.DataFrame([SEED_CASE]))
    assert out.loc[0, "risk"] == out.loc[2, "risk"] == alone.loc[0, "risk"]


def test_a_problem_of_the_whole_batch_is_every_rows_error(pyfunc):
    rows = pd.DataFrame([{"age_years": 30, "patient_id": "a"}, {"age_years": 31}])
    out = pyfunc.predict(None, rows)
    assert out["patient_id"].tolist()[:1] == ["a"]
    assert out["risk"].isna().all()
    assert out["error"].str.contains("parity: required column is absent").all()
    assert out["model_version"].eq(pyfunc.model.version).all()
    assert list(out.columns) == list(pyfunc.predict(None, rows.head(0)).columns)


def test_input_that_is_no_table_is_one_error_row(pyfunc):
    out = pyfunc.predict(None, {"age_years": 1, "parity": 2})  # scalars, no rows
    assert len(out) == 1
    assert "model_input='dict': must be a table of rows" in out.loc[0, "error"]


def test_an_internal_failure_is_logged_not_answered(pyfunc, monkeypatch, caplog):
    def fail(*args, **kwargs):
        raise RuntimeError(f'File "{__file__}": secret state')

    monkeypatch.setattr(pyfunc.model, "predict_frame", fail)
    with caplog.at_level("ERROR", logger="plo_risk.serve.pyfunc"):
        out = pyfunc.predict(None, pd.DataFrame([SEED_CASE, SEED_CASE]))
    assert out["error"].tolist() == [INTERNAL_ERROR] * 2
    assert "secret state" in caplog.text  # the server's log has the details


@pytest.fixture(scope="module")
def scoring_client(bundle, tmp_path_factory):
    import mlflow
    from mlflow.pyfunc import scoring_server

    from plo_risk.model.bundle import bundle_digest
    from plo_risk.serve.authenticity import BUNDLE_TAG, CODE_TAG, code_sha256
    from plo_risk.training import _log_pyfunc

    store = tmp_path_factory.mktemp("served")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

            # Logged as training logs it, pinned by its run's tags (load_context
            # refuses a model that nothing pins).
            mlflow.set_experiment("pyfunc")
            with mlflow.start_run():
                mlflow.set_tags(
                    {BUNDLE_TAG: bundle_digest(bundle), CODE_TAG: code_sha256()}
                )
                info = _log_pyfunc(mlflow, bundle)
            model = mlflow.pyfunc.load_model(info.model_uri)
        yield TestClient(scoring_server.init(model), raise_server_exceptions=False)
    finally:
        mlflow.set_tracking_uri(previous)


def _post(client, body) -> tuple[int, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(
        "/invocations", content=raw, headers={"content-type": "application/json"}
    )
    for leak in ("Traceback", 'File "', "/work/", _PACKAGE_DIR, "stack_trace"):
        assert leak not in r.text, (leak, r.text[:500])
    return r.status_code, r.text


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": [SEED_CASE, {**SEED_CASE, "age_years": {"a": 1}}]},
        {"dataframe_records": [SEED_CASE, {**SEED_CASE, "smoking": [1, 2]}]},
        {"dataframe_records": [{**SEED_CASE, "ancestry": {"a": [{"b": None}]}}]},
        {"dataframe_records": [{**SEED_CASE, "patient_id": "x" * 1000}]},
        {"dataframe_records": []},
        {"inputs": {"age_years": [[1]]}},
        {"instances": [{"age_years": {"x": 1}}]},
    ],
    ids=["dict", "list", "nested", "long-id", "empty", "inputs-list", "instances"],
)
def test_served_batches_get_row_errors_and_no_trace(scoring_client, body):
    status, text = _post(scoring_client, body)
    assert status == 200, text[:500]
    predictions = json.loads(text.replace("NaN", "null"))["predictions"]
    rows = body.get("dataframe_records", [None] * len(predictions))
    assert len(predictions) == len(rows)
    if body.get("dataframe_records") and len(rows) == 2:
        assert predictions[0]["error"] is None and predictions[0]["risk"] > 0
        assert predictions[1]["error"] and predictions[1]["risk"] is None

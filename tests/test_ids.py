"""A patient's id comes out exactly as it went in: never through float."""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plo_risk import score_cohort
from plo_risk.data.ids import ids_as_text
from plo_risk.data.ingest import ingest
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.zoo import make_model
from plo_risk.serve import RiskModel

BIG = [12345678901234567, 12345678901234568, 2**63 - 1, -(2**62), 7]


@pytest.fixture(scope="module")
def model():
    valid = validate_frame(generate_cohort(1500, seed=5)).valid
    y = valid["fracture"].to_numpy()
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    fitted = make_model("logistic_regression", cv=2).fit(X, y)
    return RiskModel(fitted)


def _rows(n: int) -> pd.DataFrame:
    return generate_cohort(n, seed=6).drop(columns=["patient_id"])


def test_big_integer_ids_with_a_gap_survive_parquet_scoring(model, tmp_path):
    df = _rows(len(BIG) + 1)
    ids = pa.array([*BIG, None], pa.int64())
    table = pa.Table.from_pandas(df, preserve_index=False).append_column(
        "patient_id", ids
    )
    pq.write_table(table, tmp_path / "in.parquet")
    out = score_cohort(model, tmp_path / "in.parquet", tmp_path / "out", progress=False)
    got = out.read().sort_values("row")["patient_id"].tolist()
    assert got[:-1] == [str(i) for i in BIG] and pd.isna(got[-1])
    assert len(set(got[:-1])) == len(BIG)  # no two patients collide


def test_big_integer_ids_with_a_gap_are_not_merged_by_ingest(tmp_path):
    extract = generate_cohort(40, style="registry", seed=8)
    # every row a distinct patient (drop the extract's planted duplicates)
    extract = extract.drop_duplicates("PatientID").head(6).reset_index(drop=True)
    table = pa.Table.from_pandas(
        extract.drop(columns=["PatientID"]), preserve_index=False
    ).append_column("PatientID", pa.array([*BIG, None], pa.int64()))
    pq.write_table(table, tmp_path / "extract.parquet")
    result = ingest(tmp_path / "extract.parquet")
    got = set(result.frame["patient_id"].dropna())
    assert {str(i) for i in BIG} <= got
    assert result.quality.duplicates["n_rows_removed"] == 0


def test_ids_as_text_leaves_text_and_floats_alone():
    t = pa.table({"patient_id": ["007", "x"], "v": [1.0, 2.0]})
    assert ids_as_text(t, "patient_id").equals(t)
    assert ids_as_text(t, None).equals(t)
    d = pa.table({"patient_id": pa.array([1, 2], pa.decimal128(20, 0))})
    assert ids_as_text(d, "patient_id").column(0).to_pylist() == ["1", "2"]


_ID = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.text(string.digits, min_size=1, max_size=20).map(lambda s: "0" + s),
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
    ).filter(lambda s: s.strip() == s and s.upper() not in {"NA", "NAN", "NULL"}),
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ids=st.lists(_ID, min_size=1, max_size=8, unique=True),
    kind=st.sampled_from(["csv", "parquet"]),
)
def test_any_id_round_trips_through_scoring(model, tmp_path_factory, ids, kind):
    tmp = tmp_path_factory.mktemp("ids")
    df = _rows(len(ids))
    df.insert(0, "patient_id", pd.array(ids, dtype=object))
    path = tmp / f"in.{kind}"
    if kind == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    out = score_cohort(model, path, tmp / "out", progress=False)
    scored = out.read().sort_values("row")
    rejects = out.read(rejects=True)
    seen = dict(zip(scored["row"], scored["patient_id"], strict=True))
    seen.update(zip(rejects["row"], rejects["patient_id"], strict=True))
    assert [seen[i] for i in range(len(ids))] == ids
    assert np.isin(np.arange(len(ids)), list(seen)).all()

"""Registry ingestion: flat extracts, OMOP round trips, quality report, bad input."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from plo_risk.cli import app
from plo_risk.data.catalog import load_catalog
from plo_risk.data.ingest import (
    MappingError,
    RegistryError,
    default_mapping_path,
    ingest,
    load_mapping,
)
from plo_risk.data.ingest.omop import default_concepts_path, load_concepts, read_omop
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort, load_params, to_omop
from plo_risk.model.zoo import make_model
from plo_risk.utils.atomic import TEMP_GLOB
from plo_risk.utils.config import ConfigError

CATALOG = load_catalog()
REG = load_params()["registry"]
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _tolerance(name: str) -> float:
    """Absolute tolerance of a field: half the registry's rounding step, converted."""
    feat = CATALOG[name]
    dec = REG["decimals"].get(name)
    if dec is None:
        return 1e-9
    if name in REG["column_units"]:
        factor = feat.unit_factor(REG["column_units"][name])
    elif name in REG["mixed_units"]:
        units = REG["mixed_units"][name]["by_hospital"].values()
        factor = max([1.0, *(feat.unit_factor(u) for u in units)])
    else:
        factor = 1.0
    return 0.5 * 10.0**-dec * factor * (1 + 1e-6) + 1e-9


def _compare(reference: pd.DataFrame, got: pd.DataFrame, tol=_tolerance):
    """Share of equal cells and the set of (patient_id, field) that differ."""
    ref = reference.set_index("patient_id")
    got = got.set_index("patient_id").reindex(ref.index)
    equal = total = 0
    differ: set[tuple[str, str]] = set()
    for feat in CATALOG:
        a, b = ref[feat.name], got[feat.name]
        if feat.dtype == "category":
            eq = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
            eq = eq.to_numpy()
        else:
            eq = np.isclose(
                a.to_numpy(dtype=float),
                b.to_numpy(dtype=float),
                rtol=1e-9,
                atol=tol(feat.name),
                equal_nan=True,
            )
        total += len(eq)
        equal += int(eq.sum())
        differ |= {(pid, feat.name) for pid in ref.index[~eq]}
    return equal / total, differ


def _source_missing(extract: pd.DataFrame) -> set[tuple[str, str]]:
    """Cells the extract itself does not hold (on every row of the patient)."""
    tokens = {"", "na", "unknown"}
    out = set()
    for name, col in REG["columns"].items():
        if name not in CATALOG:
            continue
        s = extract[col]
        miss = s.isna() | s.astype(str).str.strip().str.lower().isin(tokens)
        per_patient = miss.groupby(extract[REG["columns"]["patient_id"]]).all()
        out |= {(pid, name) for pid in per_patient.index[per_patient.to_numpy()]}
    return out


# ------------------------------------------------------------------ round trips


@pytest.fixture(scope="module")
def flat():
    clean = generate_cohort(4000, style="clean", seed=11)
    extract = generate_cohort(4000, style="registry", seed=11)
    return clean, extract


@pytest.mark.parametrize("fmt", ["frame", "csv", "parquet"])
def test_flat_round_trip_recovers_clean_cohort(flat, tmp_path, fmt):
    clean, extract = flat
    source = extract
    if fmt == "csv":
        source = tmp_path / "extract.csv"
        extract.to_csv(source, index=False)
    elif fmt == "parquet":
        source = tmp_path / "extract.parquet"
        extract.to_parquet(source, index=False)
    result = ingest(source, default_mapping_path())
    reference = validate_frame(clean).valid
    share, differ = _compare(reference, result.frame)
    assert share >= 0.99, share
    q = result.quality
    listed = set(zip(q.unrecovered["patient_id"], q.unrecovered["field"], strict=True))
    # Every cell not recovered, except those the extract never held, is listed.
    assert differ - _source_missing(extract) == listed
    assert q.duplicates["n_rows_removed"] == len(extract) - len(clean)
    assert q.duplicates["conflicts"].get("bmi", 0) > 0
    assert {c["field"] for c in q.unit_conversions} >= {"vitamin_d_25oh", "prolactin"}
    assert q.unmapped_columns == []
    assert len(result.frame) == len(clean)


def test_omop_round_trip_through_duckdb(tmp_path):
    clean = generate_cohort(3000, style="clean", seed=12)
    url = f"duckdb:///{tmp_path / 'omop.duckdb'}"
    counts = to_omop(clean, url)
    assert counts["person"] == 3000 and counts["measurement"] > 0
    result = ingest(url)
    reference = validate_frame(clean).valid
    share, differ = _compare(reference, result.frame, tol=lambda name: 1e-6)
    assert share >= 0.99, share
    got = result.frame.set_index("patient_id").reindex(reference["patient_id"])
    assert (got["fracture"].to_numpy() == reference["fracture"].to_numpy()).all()
    assert result.quality.n_rejected_rows == 0
    # read_omop gives the same cells, before validation.
    raw = read_omop(url)
    assert list(raw["patient_id"][:3]) == list(reference["patient_id"][:3])


def test_omop_round_trip_through_sqlite(tmp_path):
    clean = generate_cohort(300, style="clean", seed=13)
    url = f"sqlite:///{tmp_path / 'omop.db'}"
    to_omop(clean, url)
    share, _ = _compare(validate_frame(clean).valid, ingest(url).frame, lambda n: 1e-6)
    assert share >= 0.99


def test_model_on_ingested_registry_matches_clean(tmp_path):
    n = 20_000
    test = validate_frame(generate_cohort(n, style="clean", seed=102)).valid
    drop = ["patient_id", "fracture", "true_risk"]

    def auroc(frame: pd.DataFrame) -> float:
        X = frame.drop(columns=[c for c in drop if c in frame])
        model = make_model("xgboost", random_state=0).fit(X, frame["fracture"])
        risk = model.predict_proba(test.drop(columns=drop))[:, 1]
        return roc_auc_score(test["fracture"], risk)

    clean = validate_frame(generate_cohort(n, style="clean", seed=101)).valid
    ingested = ingest(generate_cohort(n, style="registry", seed=101)).frame
    a_clean, a_ingested = auroc(clean), auroc(ingested)
    assert abs(a_clean - a_ingested) <= 0.01, (a_clean, a_ingested)


# ------------------------------------------------------------- mapping format


def test_shipped_mapping_and_concepts_load_and_are_packaged():
    m = load_mapping()
    assert m.id == "PatientID" and m.duplicates == "merge"
    c = load_concepts()
    assert c.fields["vitamin_d_25oh"].concept_id == 3020149
    assert all(
        f.concept_id >= 2_000_000_000 or f.concept_id < 100_000_000
        for f in c.fields.values()
    )
    force = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"][
        "build"
    ]["targets"]["wheel"]["force-include"]
    for name in ("mapping.yaml", "omop_concepts.yaml"):
        assert force[f"registry/{name}"] == f"plo_risk/_data/registry/{name}"


BASE = {"columns": {"Age": "age_years", "Parity": "parity", "PP": "months_postpartum"}}


def _frame(**extra):
    n = len(next(iter(extra.values()))) if extra else 3
    return pd.DataFrame(
        {"Age": [30.0] * n, "Parity": [1] * n, "PP": [2.0] * n, **extra}
    )


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"columns": {**BASE["columns"], "D": "vitamin_d"}}, "vitamin_d.*did you mean"),
        (
            {
                "columns": {
                    **BASE["columns"],
                    "D": {"field": "vitamin_d_25oh", "unit": "nmol"},
                }
            },
            "unit='nmol'.*nmol/L",
        ),
        ({"columns": {**BASE["columns"], "Missing": "bmi"}}, "absent.*Missing"),
        ({"columns": {"Age": "age_years"}}, "required field.*parity"),
        ({**BASE, "invalid": "drop"}, "invalid='drop'"),
        ({**BASE, "colums": {}}, "unknown key.*colums"),
        (
            {
                "columns": {
                    **BASE["columns"],
                    "E": {"field": "ancestry", "recode": {"x": "martian"}},
                }
            },
            "recode.*martian",
        ),
        ({**BASE, "booleans": {"true": [True]}}, "quoted string"),
        ({**BASE, "dates": {"bmi": {"from": "A", "to": "B"}}}, "not a time unit"),
        (str(default_concepts_path()), "looks like an OMOP concept map"),
    ],
    ids=[
        "unknown-field",
        "unknown-unit",
        "absent-column",
        "required-not-mapped",
        "bad-invalid",
        "unknown-key",
        "bad-recode",
        "unquoted-token",
        "date-field-not-time",
        "omop-concept-map",
    ],
)
def test_wrong_mapping_is_a_clear_error(mapping, match):
    with pytest.raises(MappingError, match=match):
        ingest(_frame(), mapping)


# Nine mistakes in one mapping: every one is reported, each with its key path.
MANY_MISTAKES = {
    "duplicate": "keep",
    "invalid": "drop",
    "booleans": {"true": ["Y", "1"], "false": ["N", "1"]},
    "columns": {
        "Age": "age_years",
        "Parity": "parity",
        "D": {"field": "vitamin_d", "unit": "nmol/L"},
        "PRL": {"field": "prolactin", "unti": "ng/mL"},
        "E": {"field": "ancestry", "recode": {"x": "martian"}},
        "Age2": "age_years",
    },
    "dates": {"bmi": {"from": "A", "to": "B"}},
}
MANY_PROBLEMS = [
    ("typo-key", r"^unknown key 'duplicate' \(did you mean 'duplicates'\?\)"),
    ("bad-choice", r"^invalid='drop': input should be 'blank' or 'reject'"),
    ("token-both", r"^booleans: token\(s\) '1' are listed under both true and false"),
    (
        "unknown-field",
        r"^columns\.D\.field='vitamin_d': not a catalog field; "
        r"did you mean 'vitamin_d_25oh'\?",
    ),
    (
        "typo-column-key",
        r"^columns\.PRL: unknown key 'unti' \(did you mean 'unit'\?\)",
    ),
    ("bad-recode", r"^columns\.E\.recode: 'x': 'martian'.*european"),
    (
        "mapped-twice",
        r"^columns\.Age2\.field='age_years': already mapped from column 'Age'",
    ),
    ("date-not-time", r"^dates\.bmi: bmi is in kg/m2, not a time unit"),
    ("required", r"^required field\(s\) months_postpartum are not mapped"),
]


@pytest.mark.parametrize(
    "pattern", [p for _, p in MANY_PROBLEMS], ids=[i for i, _ in MANY_PROBLEMS]
)
def test_mapping_error_lists_every_problem_with_its_key_path(pattern):
    with pytest.raises(
        MappingError, match=rf"^mapping: {len(MANY_PROBLEMS)} problems:\n  - "
    ) as info:
        load_mapping(MANY_MISTAKES)
    err = info.value
    assert isinstance(err, ConfigError) and isinstance(err, RegistryError)
    assert len(err.problems) == len(MANY_PROBLEMS)
    assert sum(bool(re.search(pattern, p)) for p in err.problems) == 1, err.problems


def test_dates_give_months_postpartum_and_age():
    assess = pd.to_datetime(["2024-03-01", "2024-06-15"])
    df = pd.DataFrame(
        {
            "Parity": [1, 2],
            "Born": (
                assess - pd.to_timedelta([30.0 * 365.2425, 25.5 * 365.2425], unit="D")
            ).strftime("%Y-%m-%d"),
            "Delivered": (assess - pd.to_timedelta([61, -20], unit="D")).strftime(
                "%Y-%m-%d"
            ),
            "Seen": assess.strftime("%Y-%m-%d"),
        }
    )
    mapping = {
        "columns": {"Parity": "parity"},
        "dates": {
            "months_postpartum": {"from": "Delivered", "to": "Seen"},
            "age_years": {"from": "Born", "to": "Seen"},
        },
    }
    out = ingest(df, mapping).frame
    np.testing.assert_allclose(out["age_years"], [30.0, 25.5], atol=0.002)
    np.testing.assert_allclose(
        out["months_postpartum"], [61 / 30.436875, -20 / 30.436875], atol=1e-9
    )


def test_unreadable_date_is_reported_and_rejects_the_row():
    df = pd.DataFrame(
        {
            "Parity": [1, 1],
            "Age": [30, 31],
            "D": ["2024-01-01", "soon"],
            "S": ["2024-02-01"] * 2,
        }
    )
    mapping = {
        "columns": {"Parity": "parity", "Age": "age_years"},
        "dates": {"months_postpartum": {"from": "D", "to": "S"}},
    }
    result = ingest(df, mapping)
    assert len(result.frame) == 1
    assert result.rejects["message"].str.contains("'soon' is not a date").any()


def test_reject_mode_sends_bad_rows_to_rejects(flat):
    _, extract = flat
    doc = load_mapping_doc()
    doc["invalid"] = "reject"
    result = ingest(extract, doc)
    blank = ingest(extract)
    n_bad = len(blank.quality.unrecovered)
    assert n_bad > 0
    assert result.quality.n_rejected_rows == n_bad
    assert len(result.frame) == len(blank.frame) - n_bad
    assert set(result.rejects.columns) == {"row", "field", "value", "reason", "message"}
    assert (result.rejects["field"] == "ancestry").all()


def load_mapping_doc() -> dict:
    import yaml

    return yaml.safe_load(default_mapping_path().read_text())


def test_quality_report_outputs(flat, tmp_path):
    _, extract = flat
    q = ingest(extract.head(500)).quality
    data = json.loads(q.to_json(tmp_path / "q.json").read_text())
    assert data["n_source_rows"] == 500
    assert set(data["missingness"]) == set(CATALOG.names)
    html = q.to_html(tmp_path / "q.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert "src=" not in html and "href=" not in html  # self-contained
    text = str(q)
    assert "duplicates merged" in text and "vitamin_d_25oh" in text
    assert set(q.missing_by_site["ctx"]) == {"H1", "H2", "H3", "H4"}
    assert not list(tmp_path.glob(TEMP_GLOB))


# ----------------------------------------------------------------- garbage in


def _garbage(tmp_path: Path, kind: str) -> str:
    if kind == "empty-file":
        (tmp_path / "x.csv").write_text("")
        return str(tmp_path / "x.csv")
    if kind == "header-only":
        (tmp_path / "x.csv").write_text("PatientID,Age\n")
        return str(tmp_path / "x.csv")
    if kind == "no-mappable-columns":
        pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "x.csv", index=False)
        return str(tmp_path / "x.csv")
    if kind == "corrupt-parquet":
        (tmp_path / "x.parquet").write_bytes(b"PAR1 this is not parquet")
        return str(tmp_path / "x.parquet")
    if kind == "no-such-file":
        return str(tmp_path / "nope.csv")
    if kind == "db-not-answering":
        # A real PostgreSQL driver (test extras) against a port nobody listens on.
        return "postgresql+psycopg://user:secret@127.0.0.1:1/x"
    if kind == "db-driver-absent":
        return "mysql+nosuchdriver://127.0.0.1:1/x"
    if kind == "duckdb-absent":
        return f"duckdb:///{tmp_path / 'absent.duckdb'}"
    if kind == "sqlite-absent":
        return f"sqlite:///{tmp_path / 'absent.db'}"
    if kind == "omop-tables-missing":
        import duckdb

        con = duckdb.connect(str(tmp_path / "partial.duckdb"))
        con.execute("CREATE TABLE person (person_id BIGINT)")
        con.close()
        return f"duckdb:///{tmp_path / 'partial.duckdb'}"
    raise AssertionError(kind)


GARBAGE = [
    ("empty-file", "empty"),
    ("header-only", "no rows"),
    ("no-mappable-columns", "none of its columns is in the mapping"),
    ("corrupt-parquet", "not a readable Parquet file"),
    ("no-such-file", "no such file"),
    ("db-not-answering", "cannot connect to database postgresql.*does not answer"),
    ("db-driver-absent", "cannot connect to database mysql"),
    ("duckdb-absent", "cannot connect.*does not exist"),
    ("sqlite-absent", "cannot connect.*does not exist"),
    ("omop-tables-missing", "missing OMOP CDM table.*measurement"),
]


@pytest.mark.parametrize(("kind", "match"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_garbage_in_is_a_clear_error(tmp_path, kind, match):
    source = _garbage(tmp_path, kind)
    before = set(tmp_path.iterdir())
    with pytest.raises(RegistryError, match=match):
        ingest(source)
    assert set(tmp_path.iterdir()) == before  # nothing created, e.g. no empty DB


@pytest.mark.parametrize(("kind", "match"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_cli_garbage_in_exits_2_and_writes_nothing(tmp_path, kind, match):
    source = _garbage(tmp_path, kind)
    out = tmp_path / "cohort.parquet"
    result = runner.invoke(app, ["ingest", "--source", source, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(TEMP_GLOB))


def test_to_omop_refuses_to_overwrite(tmp_path):
    url = f"duckdb:///{tmp_path / 'o.duckdb'}"
    cohort = generate_cohort(20, seed=3)
    to_omop(cohort, url)
    with pytest.raises(RegistryError, match="already holds OMOP tables"):
        to_omop(cohort, url)
    assert to_omop(cohort, url, if_exists="replace")["person"] == 20


# ------------------------------------------------------------------ properties


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(st.text(max_size=8), st.none(), st.integers(-2, 3)),
        min_size=1,
        max_size=12,
    )
)
def test_boolean_cells_are_recoded_or_reported(values):
    df = _frame(Smoker=pd.Series(values, dtype=object))
    mapping = {
        "columns": {**BASE["columns"], "Smoker": "smoking"},
        "missing_values": ["", "NA", "unknown"],
        "booleans": {"true": ["Y", "yes"], "false": ["N", "no"]},
    }
    result = ingest(df, mapping)
    assert len(result.frame) == len(df)  # blank mode: no row lost
    got = result.frame["smoking"]
    assert got.isna().sum() + got.isin([0.0, 1.0]).sum() == len(df)
    blanked = set(result.quality.unrecovered["row"])
    for i, v in enumerate(values):
        if i in blanked:
            assert np.isnan(got.loc[i])
            assert (
                result.quality.unrecovered.query("row == @i")["reason"].str.len().min()
                > 0
            )
        elif isinstance(v, str) and v.strip().lower() in {"y", "yes", "true", "1", "t"}:
            assert got.loc[i] == 1.0


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=6),
        st.sampled_from(CATALOG["ancestry"].categories),
        max_size=4,
    )
)
def test_recode_mapping_loader_never_crashes(recode):
    mapping = {
        "columns": {**BASE["columns"], "E": {"field": "ancestry", "recode": recode}}
    }
    m = load_mapping(mapping)
    spec = next(s for s in m.columns if s.column == "E")
    for key in recode:
        assert spec.recode[key.strip().casefold()] in CATALOG["ancestry"].categories
    df = _frame(E=list(recode)[:3] or ["European"])
    result = ingest(df, mapping)
    assert len(result.frame) + result.quality.n_rejected_rows == len(df)


# ------------------------------------------------------------------------- CLI


def test_cli_ingest_writes_cohort_and_report(flat, tmp_path):
    _, extract = flat
    src = tmp_path / "extract.csv"
    extract.head(800).to_csv(src, index=False)
    out, report = tmp_path / "cohort.parquet", tmp_path / "quality.html"
    result = runner.invoke(
        app,
        [
            "ingest",
            "--source",
            str(src),
            "--mapping",
            str(default_mapping_path()),
            "--out",
            str(out),
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "data quality" in result.output
    cohort = pd.read_parquet(out)
    assert cohort["patient_id"].is_unique and "vitamin_d_25oh" in cohort
    assert report.read_text().startswith("<!DOCTYPE html>")
    quiet = runner.invoke(
        app,
        [
            "ingest",
            "--source",
            str(src),
            "--out",
            str(tmp_path / "c.csv"),
            "--quiet",
            "--report",
            str(tmp_path / "q.json"),
        ],
    )
    assert quiet.exit_code == 0 and quiet.output.strip() == ""
    assert json.loads((tmp_path / "q.json").read_text())["n_rows"] == len(cohort)


def test_cli_ingest_bad_mapping_names_the_key(tmp_path):
    src = tmp_path / "x.csv"
    _frame().to_csv(src, index=False)
    bad = tmp_path / "m.yaml"
    bad.write_text("columns:\n  Age: age\n  Parity: parity\n  PP: months_postpartum\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app, ["ingest", "--source", str(src), "--mapping", str(bad), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "columns.Age.field='age'" in result.output
    assert not out.exists()


# ------------------------------------------------------- malformed input (review)


def test_dates_are_iso_unless_a_format_is_given():
    df = pd.DataFrame(
        {
            "Parity": [1, 1, 1, 1],
            "Age": [30, 30, 30, 30],
            # day/month order is ambiguous: never guessed; 20240101 is a date, not
            # nanoseconds since 1970; a time zone is converted, not an error.
            "D": ["01/02/2024", 20240101, "2024-01-01T00:00:00+02:00", "2024-01-01"],
            "S": ["2024-03-01"] * 4,
        }
    )
    mapping = {
        "columns": {"Parity": "parity", "Age": "age_years"},
        "dates": {"months_postpartum": {"from": "D", "to": "S"}},
    }
    result = ingest(df, mapping)
    assert list(result.frame.index) == [1, 2, 3]
    assert result.rejects["message"].str.contains("'01/02/2024' is not a date").any()
    np.testing.assert_allclose(
        result.frame["months_postpartum"],
        np.array([60, 60 + 2 / 24, 60]) / 30.436875,
    )
    aware = df.assign(D=pd.to_datetime(["2024-01-01"] * 4).tz_localize("UTC"))
    assert len(ingest(aware, mapping).frame) == 4


def _malformed(tmp_path: Path, kind: str):
    df = _frame()
    if kind == "semicolons":
        df.to_csv(tmp_path / "x.csv", sep=";", index=False)
    elif kind == "bom":
        df.to_csv(tmp_path / "x.csv", index=False, encoding="utf-8-sig")
    elif kind == "two-sheets":
        with pd.ExcelWriter(tmp_path / "x.xlsx") as w:
            pd.DataFrame({"note": ["read me"]}).to_excel(w, sheet_name="notes")
            df.to_excel(w, sheet_name="data", index=False)
        return tmp_path / "x.xlsx"
    elif kind == "list-cells":
        return df.assign(Age=pd.Series([[30], {"a": 1}, 31], dtype=object))
    return tmp_path / "x.csv"


@pytest.mark.parametrize(
    ("kind", "n_valid"),
    [("semicolons", 3), ("bom", 3), ("two-sheets", 3), ("list-cells", 1)],
)
def test_malformed_sources_are_read_or_rejected_row_by_row(tmp_path, kind, n_valid):
    result = ingest(_malformed(tmp_path, kind), BASE)
    assert len(result.frame) == n_valid
    assert len(result.frame) + result.quality.n_rejected_rows == 3


@pytest.mark.parametrize(
    ("source", "mapping", "match"),
    [
        ("Age,Parity,PP\n30,1,2,\n31,1,2,\n", BASE, "more fields than the header"),
        ("Age,Parity,PP\n30,1,2\n", ["Age"], "must be a YAML file path or a dict"),
        (
            "Age,Parity,PP\n30,1,2\n",
            {
                "columns": {"Parity": "parity", "PP": "months_postpartum"},
                "dates": {"age_years": {"from": "A", "to": "B", "format": 1}},
            },
            "optional format",
        ),
    ],
    ids=["trailing-delimiter", "mapping-is-a-list", "date-format-not-text"],
)
def test_malformed_source_or_mapping_is_a_registry_error(
    tmp_path, source, mapping, match
):
    path = tmp_path / "x.csv"
    path.write_text(source)
    with pytest.raises(RegistryError, match=match):
        ingest(path, mapping)


def test_duplicate_merge_accounts_for_every_row():
    df = _frame(
        ID=["a", "a", "b", "b", None],
        Age=[30.0, np.nan, 200.0, 31.0, 32.0],
        BMI=[np.nan, 22.0, 23.0, 24.0, 99.0],
    )
    mapping = {"id": "ID", "columns": {**BASE["columns"], "BMI": "bmi"}}
    q = ingest(df, mapping).quality
    removed = q.duplicates["n_rows_removed"]
    assert q.n_rows + q.n_rejected_rows + removed == q.n_source_rows == 5


@pytest.fixture(scope="module")
def omop_url(tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('omop') / 'o.duckdb'}"
    to_omop(generate_cohort(20, seed=4), url)
    return url


def _concepts(**over):
    import yaml

    from plo_risk.data.ingest.omop import default_concepts_path

    return {**yaml.safe_load(default_concepts_path().read_text()), **over}


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"schema": "main.person; DROP TABLE measurement; --"}, "missing OMOP CDM"),
        ({"schema": 5}, "schema=5"),
        ({"window_months": ["a", 3]}, "window_months"),
        ({"lookback_days": "x"}, "lookback_days"),
        ({"person": [1]}, "person"),
        ({"person": {"ancestry": {"european": 5}}}, "person.ancestry.european"),
    ],
    ids=[
        "sql-in-schema",
        "schema-int",
        "window-text",
        "lookback-text",
        "person",
        "anc",
    ],
)
def test_bad_concept_map_is_a_registry_error(omop_url, over, match):
    with pytest.raises(RegistryError, match=match):
        ingest(omop_url, _concepts(**over))
    assert len(ingest(omop_url).frame) == 20  # nothing dropped by the attempt


def test_per_row_units_convert_and_unknown_or_missing_units_are_rejected():
    doc = {
        "id": "pid",
        "invalid": "reject",
        "columns": {
            "age": "age_years",
            "par": "parity",
            "pp": "months_postpartum",
            # No default unit: a row without a unit cannot be read.
            "PRL": {"field": "prolactin", "unit_column": "PRL_unit"},
        },
    }
    extract = pd.DataFrame(
        {
            "pid": ["a", "b", "c", "d"],
            "age": [30, 31, 32, 33],
            "par": [1, 1, 2, 1],
            "pp": [2, 3, 4, 5],
            "PRL": [42.4, 20.0, 30.0, 40.0],
            "PRL_unit": ["mIU/L", "ng/mL", "furlongs", None],
        }
    )
    result = ingest(extract, doc)
    factor = CATALOG["prolactin"].unit_factor("mIU/L")
    got = result.frame.set_index("patient_id")["prolactin"]
    assert got["a"] == pytest.approx(42.4 * factor) and got["b"] == 20.0
    rejects = result.rejects.set_index("row")
    assert rejects.loc[2, "reason"].startswith("unit 'furlongs' in column PRL_unit")
    assert rejects.loc[3, "reason"].startswith("unit missing in column PRL_unit")
    assert "ng/mL" in rejects.loc[3, "reason"]
    assert len(result.frame) + result.quality.n_rejected_rows == 4


def test_exact_decimals_are_numbers_and_decimal_commas_read_when_the_mapping_says(
    tmp_path,
):
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    ages = [decimal.Decimal("30.5"), decimal.Decimal("31"), decimal.Decimal("29.25")]
    frame = _frame(Age=ages)
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "d.parquet")
    assert pq.read_schema(tmp_path / "d.parquet").field("Age").type == pa.decimal128(
        4, 2
    )
    for source in (frame, tmp_path / "d.parquet"):
        result = ingest(source, BASE)
        assert result.frame["age_years"].tolist() == [30.5, 31.0, 29.25]

    (tmp_path / "c.csv").write_text("Age;Parity;PP\n30,5;1;2,5\n31;2;3\n-0,5;1;1\n")
    plain = ingest(tmp_path / "c.csv", BASE)
    assert len(plain.frame) == 1  # "30,5" is not a number with a decimal point
    comma = ingest(tmp_path / "c.csv", {**BASE, "decimal": ","})
    assert comma.frame["age_years"].tolist() == [30.5, 31.0]
    assert comma.frame["months_postpartum"].tolist() == [2.5, 3.0]
    assert len(comma.frame) + comma.quality.n_rejected_rows == 3  # age -0.5 rejected
    with pytest.raises(MappingError, match=r"decimal=';': input should be"):
        ingest(tmp_path / "c.csv", {**BASE, "decimal": ";"})

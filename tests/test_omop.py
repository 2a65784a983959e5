"""OMOP CDM v5.4 writer and reader: vocabulary tables, concept rows, DDL types,
records under concepts the map does not read, ancestry from race and ethnicity."""

from __future__ import annotations

import copy

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from plo_risk.data.ingest import (
    MappingError,
    RegistryError,
    UnmappedConceptWarning,
    default_concepts_path,
    ingest,
    load_concepts,
    read_omop,
    to_omop,
)
from plo_risk.data.synthetic import generate_cohort

LOCAL = 2_000_000_000
FEMALE = (8532, "FEMALE", "Gender", "Gender", "Gender", "F")


def _url(tmp_path, backend: str) -> str:
    name = "omop.duckdb" if backend == "duckdb" else "omop.db"
    return f"{backend}:///{tmp_path / name}"


def _sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for s in statements:
                conn.execute(sa.text(s))
    finally:
        engine.dispose()


def _query(url: str, statement: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(sa.text(statement), conn)
    finally:
        engine.dispose()


def _concept_insert(cid, name, domain, vocab, cls, code, start="1970-01-01") -> str:
    """An Athena-like standard concept row."""
    return (
        "INSERT INTO concept VALUES "
        f"({cid}, '{name}', '{domain}', '{vocab}', '{cls}', 'S', '{code}', "
        f"'{start}', '2099-12-31', NULL)"
    )


ROW = ["concept_id", "concept_name", "domain_id", "vocabulary_id"]
ROW += ["concept_class_id", "concept_code"]


# ---------------------------------------------------------- vocabulary tables


@pytest.mark.parametrize("backend", ["duckdb", "sqlite"])
def test_replace_never_drops_vocabulary_rows(tmp_path, backend):
    url = _url(tmp_path, backend)
    cohort = generate_cohort(40, seed=21)
    to_omop(cohort, url)
    _sql(
        url,
        _concept_insert(*FEMALE),
        "CREATE TABLE concept_ancestor (ancestor_concept_id INTEGER NOT NULL, "
        "descendant_concept_id INTEGER NOT NULL, min_levels_of_separation INTEGER "
        "NOT NULL, max_levels_of_separation INTEGER NOT NULL)",
        "INSERT INTO concept_ancestor VALUES (8532, 8532, 0, 0)",
    )
    before = _query(url, "SELECT * FROM concept ORDER BY concept_id")
    counts = to_omop(cohort, url, if_exists="replace")
    after = _query(url, "SELECT * FROM concept ORDER BY concept_id")
    female = after.loc[after["concept_id"] == 8532, ROW]
    assert [tuple(r) for r in female.itertuples(index=False)] == [FEMALE]
    assert len(_query(url, "SELECT * FROM concept_ancestor")) == 1
    pd.testing.assert_frame_equal(before, after)  # every row kept as it was
    assert counts["person"] == 40 and counts["concept"] == 0  # nothing missing


def test_missing_concept_rows_are_added_to_an_existing_vocabulary(tmp_path):
    url = _url(tmp_path, "duckdb")
    # A database holding only Athena's vocabulary (here: two of its rows), with
    # the osteocalcin row as Athena has it.
    _sql(
        url,
        "CREATE TABLE concept (concept_id INTEGER NOT NULL, concept_name "
        "VARCHAR(255) NOT NULL, domain_id VARCHAR(20) NOT NULL, vocabulary_id "
        "VARCHAR(20) NOT NULL, concept_class_id VARCHAR(20) NOT NULL, "
        "standard_concept VARCHAR(1), concept_code VARCHAR(50) NOT NULL, "
        "valid_start_date DATE NOT NULL, valid_end_date DATE NOT NULL, "
        "invalid_reason VARCHAR(1))",
        _concept_insert(*FEMALE),
        _concept_insert(
            3028772,
            "Osteocalcin [Mass/volume] in Serum or Plasma",
            "Measurement",
            "LOINC",
            "Lab Test",
            "2697-1",
            start="2005-01-01",
        ),
    )
    n_map = len(_concept_ids())
    counts = to_omop(generate_cohort(30, seed=22), url)  # if_exists="fail"
    concept = _query(url, "SELECT * FROM concept")
    assert counts["concept"] == n_map - 1  # all but osteocalcin
    assert concept["concept_id"].is_unique
    assert len(concept) == n_map + 1  # the map's concepts and FEMALE
    oc = concept.set_index("concept_id").loc[3028772]
    assert str(oc["valid_start_date"])[:10] == "2005-01-01"  # kept, not rewritten


def _concept_ids() -> set[int]:
    c = load_concepts()
    ids = {c.assessment["concept_id"], c.outcome["concept_id"], *c.events}
    return ids | {f.concept_id for f in c.fields.values()}


# ----------------------------------------------------------------- concept rows


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('omop') / 'o.duckdb'}"
    to_omop(generate_cohort(60, seed=23), url)
    return url


@pytest.mark.parametrize(
    ("concept_id", "row"),
    [
        (
            3028772,
            (
                "Osteocalcin [Mass/volume] in Serum or Plasma",
                "Measurement",
                "LOINC",
                "Lab Test",
                "S",
                "2697-1",
            ),
        ),
        (
            3020149,
            (
                "25-hydroxyvitamin D3 [Mass/volume] in Serum or Plasma",
                "Measurement",
                "LOINC",
                "Lab Test",
                "S",
                "1989-3",
            ),
        ),
        (
            46236075,
            (
                "Procollagen type I.N-terminal propeptide [Mass/volume] in Serum or "
                "Plasma by Immunoassay",
                "Measurement",
                "LOINC",
                "Lab Test",
                "S",
                "77370-5",
            ),
        ),
        (
            2000000001,
            (
                "PLO bone-risk assessment",
                "Observation",
                "PLO",
                "Undefined",
                None,
                "PLO-ASSESSMENT",
            ),
        ),
        (
            2000000202,
            ("Single live birth", "Condition", "PLO", "Undefined", None, "Z37.0"),
        ),
    ],
    ids=["osteocalcin", "vitamin-d", "p1np", "local-assessment", "local-delivery"],
)
def test_concept_rows_carry_name_vocabulary_and_bare_code(written, concept_id, row):
    concept = _query(written, "SELECT * FROM concept").set_index("concept_id")
    got = concept.loc[
        concept_id,
        [
            "concept_name",
            "domain_id",
            "vocabulary_id",
            "concept_class_id",
            "standard_concept",
            "concept_code",
        ],
    ]
    assert tuple(None if pd.isna(v) else v for v in got) == row


def test_no_concept_row_has_a_made_up_vocabulary_or_prefixed_code(written):
    concept = _query(written, "SELECT * FROM concept")
    assert not concept["vocabulary_id"].isin(["None", "PLO local"]).any()
    assert not concept["concept_code"].str.contains(":").any()
    local = concept["concept_id"] >= LOCAL
    assert (concept.loc[local, "vocabulary_id"] == "PLO").all()
    assert concept.loc[local, "standard_concept"].isna().all()
    assert (concept.loc[~local, "standard_concept"] == "S").all()
    vocabulary = _query(written, "SELECT * FROM vocabulary")
    assert vocabulary["vocabulary_id"].tolist() == ["PLO"]


def test_standard_concept_without_vocabulary_is_a_mapping_error():
    doc = yaml.safe_load(default_concepts_path().read_text())
    doc = copy.deepcopy(doc)
    del doc["fields"]["osteocalcin"]["vocabulary"]
    with pytest.raises(
        MappingError, match=r"fields\.osteocalcin: standard concept 3028772 needs"
    ):
        load_concepts(doc)


# -------------------------------------------------------------------- DDL types


@pytest.mark.parametrize(
    ("table", "column", "sql_type"),
    [
        ("person", "person_id", "INTEGER"),
        ("measurement", "measurement_id", "INTEGER"),
        ("person", "person_source_value", "VARCHAR(50)"),
        ("measurement", "measurement_time", "VARCHAR(10)"),
        ("observation", "value_as_string", "VARCHAR(60)"),
        ("condition_occurrence", "stop_reason", "VARCHAR(20)"),
        ("drug_exposure", "sig", "TEXT"),
        ("concept", "domain_id", "VARCHAR(20)"),
        ("concept", "standard_concept", "VARCHAR(1)"),
        ("concept", "concept_code", "VARCHAR(50)"),
        ("concept", "concept_name", "VARCHAR(255)"),
        ("measurement", "measurement_date", "DATE"),
        ("measurement", "measurement_datetime", "TIMESTAMP"),
        ("measurement", "value_as_number", "DOUBLE"),
    ],
)
def test_sqlite_column_types_follow_the_v54_ddl(tmp_path, table, column, sql_type):
    url = _url(tmp_path, "sqlite")
    to_omop(generate_cohort(10, seed=24), url)
    engine = sa.create_engine(url)
    try:
        types = {
            c["name"]: str(c["type"]) for c in sa.inspect(engine).get_columns(table)
        }
    finally:
        engine.dispose()
    assert types[column] == sql_type


@pytest.mark.parametrize(
    ("table", "column", "sql_type"),
    [
        ("person", "person_id", "INTEGER"),
        ("observation", "observation_id", "INTEGER"),
        ("measurement", "value_as_number", "DOUBLE"),  # not DECIMAL(18,3)
        ("person", "birth_datetime", "TIMESTAMP"),
    ],
)
def test_duckdb_column_types_follow_the_v54_ddl(written, table, column, sql_type):
    con = duckdb.connect(written.removeprefix("duckdb:///"), read_only=True)
    try:
        (got,) = con.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = ? AND column_name = ?",
            [table, column],
        ).fetchone()
    finally:
        con.close()
    assert got == sql_type


def test_text_longer_than_its_omop_column_is_refused(tmp_path):
    cohort = generate_cohort(5, seed=25)
    cohort["patient_id"] = cohort["patient_id"] + "-" + "x" * 50
    url = _url(tmp_path, "duckdb")
    with pytest.raises(RegistryError, match=r"person\.person_source_value is varchar"):
        to_omop(cohort, url)
    assert not list(tmp_path.iterdir())  # nothing written


# ---------------------------------------------- records under unknown concepts

FRACTURE_ID = 4_000_001  # not in the map


@pytest.fixture(scope="module")
def recoded(tmp_path_factory):
    """A database whose fractures are under an unknown concept (with its concept
    row) and whose first 5 delivery procedures have concept 0 and an ICD-10
    source code."""
    url = f"duckdb:///{tmp_path_factory.mktemp('omop') / 'recoded.duckdb'}"
    cohort = generate_cohort(300, seed=26)
    to_omop(cohort, url)
    outcome = load_concepts().outcome["concept_id"]
    _sql(
        url,
        f"UPDATE condition_occurrence SET condition_concept_id = {FRACTURE_ID}, "
        f"condition_source_value = 'S32.0' WHERE condition_concept_id = {outcome}",
        _concept_insert(
            FRACTURE_ID,
            "Closed fracture of lumbar vertebra",
            "Condition",
            "SNOMED",
            "Clinical Finding",
            "123",
        ),
        "UPDATE procedure_occurrence SET procedure_concept_id = 0, "
        "procedure_source_value = 'O80' WHERE person_id <= 5",
    )
    return url, int(cohort["fracture"].sum())


def test_fracture_and_delivery_under_unknown_concepts_are_reported(recoded):
    url, n_fractures = recoded
    assert n_fractures > 0
    with pytest.warns(
        UnmappedConceptWarning, match=f"condition_occurrence:{FRACTURE_ID}"
    ):
        result = ingest(url)
    got = {(u["table"], u["concept_id"]): u for u in result.quality.unmapped_concepts}
    assert got.keys() == {
        ("condition_occurrence", FRACTURE_ID),
        ("procedure_occurrence", 0),
    }
    fracture = got[("condition_occurrence", FRACTURE_ID)]
    assert fracture["concept_name"] == "Closed fracture of lumbar vertebra"
    assert fracture["looks_like"] == "fracture"
    assert fracture["n_records"] == fracture["n_persons"] == n_fractures
    delivery = got[("procedure_occurrence", 0)]
    assert (delivery["source_value"], delivery["looks_like"]) == ("O80", "delivery")
    assert delivery["n_records"] == delivery["n_persons"] == 5
    assert result.frame["fracture"].sum() == 0  # not read as outcomes


def test_unmapped_concepts_are_in_every_report_output(recoded, tmp_path):
    url, _ = recoded
    with pytest.warns(UnmappedConceptWarning):
        q = ingest(url).quality
    assert q.to_dict()["unmapped_concepts"] == q.unmapped_concepts
    html = q.to_html(tmp_path / "q.html").read_text()
    assert str(FRACTURE_ID) in html and "Closed fracture of lumbar vertebra" in html
    text = str(q)
    assert "records under unmapped concepts" in text and str(FRACTURE_ID) in text


def test_outcome_also_reads_a_site_fracture_concept(recoded):
    url, n_fractures = recoded
    doc = yaml.safe_load(default_concepts_path().read_text())
    doc["outcome"]["also"] = [FRACTURE_ID]
    with pytest.warns(UnmappedConceptWarning) as record:
        result = ingest(url, doc)
    assert result.frame["fracture"].sum() == n_fractures
    assert [u["concept_id"] for u in result.quality.unmapped_concepts] == [0]
    assert str(FRACTURE_ID) not in str(record[0].message)


# --------------------------------------------------------------------- ancestry

# (race_concept_id, ethnicity_concept_id) -> ancestry, without race_source_value.
ANCESTRY = [
    (8527, 38003564, "european"),  # White, Not Hispanic
    (8515, 38003564, "east_asian"),  # Asian: the first category with 8515
    (8516, 38003564, "african"),
    (0, 38003563, "hispanic"),
    (8527, 38003563, "hispanic"),  # Hispanic ethnicity, any race
    (0, 38003564, None),  # race unknown: missing, never "other"
    (0, 0, None),
]


@pytest.fixture(scope="module")
def ancestry_read(tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('omop') / 'race.duckdb'}"
    to_omop(generate_cohort(len(ANCESTRY), seed=27), url)
    _sql(
        url,
        "UPDATE person SET race_source_value = NULL",
        *(
            f"UPDATE person SET race_concept_id = {race}, ethnicity_concept_id = "
            f"{eth} WHERE person_id = {i + 1}"
            for i, (race, eth, _) in enumerate(ANCESTRY)
        ),
    )
    return read_omop(url)


@pytest.mark.parametrize(
    ("i", "expected"),
    [(i, a[2]) for i, a in enumerate(ANCESTRY)],
    ids=[f"race{r}-eth{e}" for r, e, _ in ANCESTRY],
)
def test_ancestry_from_race_and_ethnicity_concepts(ancestry_read, i, expected):
    got = ancestry_read["ancestry"].iloc[i]
    if expected is None:
        assert got is None or (isinstance(got, float) and np.isnan(got))
    else:
        assert got == expected

"""Validation of records and frames: messages, units, derivations, agreement."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plo_risk import ValidationError, validate_frame, validate_record
from plo_risk.data.catalog import load_catalog
from tests.forge import deep_list

CAT = load_catalog()
BASE = {"age_years": 31, "parity": 2, "months_postpartum": 3}


def _problem_fields(exc: ValidationError) -> list[str]:
    return [p.field for p in exc.problems]


# ----------------------------------------------------------------- records


def test_minimal_record_fills_every_field():
    rec = validate_record(BASE)
    assert set(rec) == set(CAT.names)
    assert rec["parity"] == 2 and isinstance(rec["parity"], int)
    assert rec["lactation_months"] is None


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        (
            "lactation_months",
            -3,
            r"lactation_months=-3: must be a number between 0 and 60",
        ),
        ("parity", 2.5, r"parity=2\.5: must be a whole number"),
        ("age_years", "old", r"age_years='old': must be a finite number"),
        (
            "vitamin_d_25oh",
            float("inf"),
            r"vitamin_d_25oh=inf: must be a finite number",
        ),
        ("smoking", "maybe", r"smoking='maybe': must be true or false"),
        ("ancestry", "europian", r"did you mean 'european'"),
        ("heparin", 2, r"heparin=2: must be true or false"),
        ("bmi", True, r"bmi=True: must be a finite number"),
        ("age_years", None, r"age_years=missing: is required"),
        ("months_postpartum", "", r"months_postpartum=missing: is required"),
    ],
    ids=[
        "negative-months",
        "fractional-parity",
        "string-in-number",
        "inf",
        "bad-bool-word",
        "category-typo",
        "bool-out-of-range",
        "bool-as-number",
        "required-none",
        "required-empty-string",
    ],
)
def test_bad_value_message_names_field_value_and_allowed(field, value, match):
    with pytest.raises(ValidationError, match=match) as info:
        validate_record({**BASE, field: value})
    assert _problem_fields(info.value) == [field]


def test_every_bad_field_is_listed_at_once():
    with pytest.raises(ValidationError) as info:
        validate_record(
            {
                "age_years": "x",
                "parity": 0,
                "lactation_months": -1,
                "smoking": "sometimes",
            }
        )
    assert set(_problem_fields(info.value)) == {
        "age_years",
        "parity",
        "months_postpartum",
        "lactation_months",
        "smoking",
    }
    assert str(info.value).startswith("5 invalid fields")


def test_unknown_field_suggests_closest_name():
    with pytest.raises(
        ValidationError,
        match=r"lactation_month=4: unknown field; "
        r"did you mean 'lactation_months'\?",
    ):
        validate_record({**BASE, "lactation_month": 4})


@pytest.mark.parametrize(
    "record", [None, [], "age_years=31", 3], ids=["none", "list", "string", "int"]
)
def test_not_a_mapping(record):
    with pytest.raises(ValidationError, match=r"record=.*must be a mapping"):
        validate_record(record)


def test_empty_record_lists_required_fields():
    with pytest.raises(ValidationError) as info:
        validate_record({})
    assert _problem_fields(info.value) == CAT.required


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("yes", True),
        ("No", False),
        (" TRUE ", True),
        (1, True),
        (0.0, False),
        ("0", False),
        (np.bool_(True), True),
    ],
)
def test_bool_words(raw, expected):
    assert validate_record({**BASE, "smoking": raw})["smoking"] is expected


def test_category_is_normalised():
    assert (
        validate_record({**BASE, "ancestry": " East Asian "})["ancestry"]
        == "east_asian"
    )


def test_patient_id_and_outcome_pass_through():
    rec = validate_record({**BASE, "patient_id": "A-1", "fracture": "1"})
    assert rec["patient_id"] == "A-1" and rec["fracture"] == 1
    with pytest.raises(ValidationError, match="fracture=2: must be 0 or 1"):
        validate_record({**BASE, "fracture": 2})


# ------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("field", "value", "unit", "canonical"),
    [
        # params sheet G: 25(OH)D ng/mL x 2.496 = nmol/L
        ("vitamin_d_25oh", 50.0, "nmol/L", 50.0 / 2.496),
        ("vitamin_d_25oh", 75.0, "nmol/L", 75.0 / 2.496),
        # PTH pg/mL x 0.106 = pmol/L
        ("pth", 3.0, "pmol/L", 3.0 / 0.106),
        ("pth", 40.0, "ng/L", 40.0),
        # CTX ng/mL x 1000 = pg/mL
        ("ctx", 450.0, "pg/mL", 0.45),
        ("ctx", 0.45, "ug/L", 0.45),
        ("calcium_intake_mg_day", 1.2, "g/day", 1200.0),
        ("calcium_intake_mg_day", 25.0, "mmol/day", 1002.0),
        ("bmd_lumbar_spine", 852.0, "mg/cm2", 0.852),
        ("estradiol", 367.1, "pmol/L", 100.0),
        ("prolactin", 212.0, "mIU/L", 10.0),
        ("months_postpartum", 13.0, "weeks", 13 * 7 / 30.4167),
    ],
    ids=lambda v: str(v),
)
def test_unit_conversion(field, value, unit, canonical):
    rec = validate_record({**BASE, field: value}, units={field: unit})
    assert rec[field] == pytest.approx(canonical, rel=2e-3)


def test_conversion_round_trip_both_directions():
    # ng/mL -> nmol/L -> ng/mL is the identity.
    ng = 23.0
    nmol = ng * 2.496
    back = validate_record(
        {**BASE, "vitamin_d_25oh": nmol}, units={"vitamin_d_25oh": "nmol/L"}
    )["vitamin_d_25oh"]
    assert back == pytest.approx(ng, rel=1e-4)


def test_range_is_checked_after_conversion_and_message_shows_both_units():
    with pytest.raises(
        ValidationError,
        match=r"vitamin_d_25oh=600 nmol/L: must be a "
        r"number between 0 and 200 ng/mL \(0 to 499\.2 nmol/L\)",
    ):
        validate_record(
            {**BASE, "vitamin_d_25oh": 600}, units={"vitamin_d_25oh": "nmol/L"}
        )


@pytest.mark.parametrize(
    ("units", "match"),
    [
        ({"vitamin_d_25oh": "nmol/l"}, r"did you mean 'nmol/L'"),
        ({"vitamin_d": "nmol/L"}, r"vitamin_d: unknown field in units=; did you mean"),
        ({"smoking": "packs"}, r"smoking='packs': has no unit"),
        ("nmol/L", r"units='nmol/L': must be a mapping"),
    ],
    ids=["unit-typo", "unknown-field", "unit-on-bool", "not-a-mapping"],
)
def test_bad_units(units, match):
    with pytest.raises(ValidationError, match=match):
        validate_record(BASE, units=units)
    with pytest.raises(ValidationError, match=match):
        validate_frame(pd.DataFrame([BASE]), units=units)


# ---------------------------------------------------------------- BMD <-> T/Z


@pytest.mark.parametrize("site", [f.name for f in CAT.bmd_sites])
def test_scores_derived_from_bmd(site):
    mean, sd = CAT[site].bmd_reference
    bmd = round(mean - 2.5 * sd, 3)
    rec = validate_record({**BASE, site: bmd})
    for score in CAT.scores_of(site):
        assert rec[score.name] == pytest.approx((bmd - mean) / sd)


@pytest.mark.parametrize("score", ["t", "z"])
@pytest.mark.parametrize("site", [f.name for f in CAT.bmd_sites])
def test_bmd_derived_from_a_score(site, score):
    mean, sd = CAT[site].bmd_reference
    name = next(f.name for f in CAT.scores_of(site) if f.score == score)
    rec = validate_record({**BASE, name: -3.0})
    assert rec[site] == pytest.approx(mean - 3.0 * sd)
    other = next(f.name for f in CAT.scores_of(site) if f.score != score)
    assert rec[other] == pytest.approx(-3.0)


def test_given_values_are_not_overwritten():
    rec = validate_record({**BASE, "bmd_lumbar_spine": 0.9, "z_lumbar_spine": -1.0})
    assert rec["z_lumbar_spine"] == -1.0
    assert rec["t_lumbar_spine"] == pytest.approx((0.9 - 1.064) / 0.106)


def test_score_implying_impossible_bmd_is_refused():
    with pytest.raises(
        ValidationError,
        match=r"t_femoral_neck=-6\.9: implies "
        r"bmd_femoral_neck outside",
    ):
        validate_record({**BASE, "t_femoral_neck": -6.9})


def test_seed_table3_row9_case():
    # seed Table 3 row 9: lumbar 0.687 g/cm2, Z -3.7 (another device reference);
    # the given Z is kept, T is derived from the BMD.
    rec = validate_record(
        {
            "age_years": 35,
            "parity": 3,
            "months_postpartum": 2,
            "bmd_lumbar_spine": 0.687,
            "z_lumbar_spine": -3.7,
            "bmd_total_hip": 0.815,
        }
    )
    assert rec["z_lumbar_spine"] == -3.7
    assert rec["t_lumbar_spine"] == pytest.approx((0.687 - 1.064) / 0.106)
    assert rec["z_total_hip"] == pytest.approx((0.815 - 0.971) / 0.114)


# ------------------------------------------------------------------ frames


def test_frame_rejects_bad_rows_with_reasons_and_keeps_the_rest():
    df = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c", "d"],
            "age_years": [31, "x", 29, None],
            "parity": [1, 2, 2.5, 1],
            "months_postpartum": [2, 3, 4, 5],
            "vitamin_d_25oh": [45, 600, np.nan, 50],
        },
        index=[10, 11, 12, 13],
    )
    res = validate_frame(df, units={"vitamin_d_25oh": "nmol/L"})
    assert list(res.valid.index) == [10]
    assert list(res.rejected_rows) == [11, 12, 13]
    assert len(res.valid) + res.n_rejected == res.n_input == 4
    got = {(r.row, r.field) for r in res.rejects.itertuples()}
    assert got == {
        (11, "age_years"),
        (11, "vitamin_d_25oh"),
        (12, "parity"),
        (13, "age_years"),
    }
    msg = res.rejects.set_index(["row", "field"]).loc[(11, "vitamin_d_25oh"), "message"]
    assert msg.startswith(
        "vitamin_d_25oh=600 nmol/L: must be a number between 0 and 200"
    )
    assert res.valid.loc[10, "vitamin_d_25oh"] == pytest.approx(45 / 2.496, rel=1e-4)
    assert res.valid.columns[0] == "patient_id"


def test_object_columns_of_numpy_scalars_and_pd_na():
    # What MLflow's schema enforcement hands over: object columns of numpy scalars.
    df = pd.DataFrame(
        {
            "age_years": pd.Series([np.float64(31), np.int64(29), pd.NA], dtype=object),
            "parity": pd.Series([np.int64(1), np.float64(2.0), 1], dtype=object),
            "months_postpartum": [2, 3, 4],
            "smoking": pd.Series([pd.NA, np.False_, np.True_], dtype=object),
        }
    )
    res = validate_frame(df)
    assert list(res.valid.index) == [0, 1]
    assert res.valid["smoking"].isna().tolist() == [True, False]
    assert res.valid.loc[1, "smoking"] == 0.0
    assert list(res.rejects["message"]) == [
        "age_years=missing: is required (Age at assessment)"
    ]


def test_frame_output_dtypes():
    df = pd.DataFrame([{**BASE, "smoking": "yes", "ancestry": "african"}])
    valid = validate_frame(df).valid
    assert valid["smoking"].dtype == "float64" and valid.loc[0, "smoking"] == 1.0
    assert isinstance(valid["ancestry"].dtype, pd.CategoricalDtype)
    assert list(valid["ancestry"].cat.categories) == list(CAT["ancestry"].categories)
    assert list(valid.columns) == CAT.names


def test_frame_unknown_columns():
    df = pd.DataFrame([{**BASE, "vit_d": 3}])
    with pytest.raises(ValidationError, match=r"vit_d: unknown column"):
        validate_frame(df)
    assert "vit_d" not in validate_frame(df, unknown="ignore").valid.columns
    with pytest.raises(ValueError, match="The 'unknown' parameter of validate_frame"):
        validate_frame(df, unknown="drop")


def test_frame_missing_required_column():
    with pytest.raises(ValidationError, match=r"parity: required column is absent"):
        validate_frame(pd.DataFrame({"age_years": [30], "months_postpartum": [1]}))


def test_frame_not_a_frame():
    with pytest.raises(ValidationError, match="must be a pandas DataFrame"):
        validate_frame([BASE])


def test_empty_frame():
    res = validate_frame(pd.DataFrame({k: pd.Series([], dtype=float) for k in BASE}))
    assert len(res.valid) == 0 and len(res.rejects) == 0 and res.n_input == 0


def test_validation_is_idempotent():
    df = pd.DataFrame(
        [{**BASE, "bmd_lumbar_spine": 0.8, "ancestry": "other", "smoking": "no"}]
    )
    once = validate_frame(df).valid
    twice = validate_frame(once).valid
    pd.testing.assert_frame_equal(once, twice)


# ------------------------------------------------------- property tests

_names = st.sampled_from(CAT.names)
_junk_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["", " ", "nan", "inf", "-1", "1e400", "yes", "NO", "3,5", "0x10"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(float("nan")),
    st.just(pd.NA),
    st.just(object()),
)
_keys = st.one_of(
    _names,
    _names.map(lambda n: n[:-1]),
    _names.map(str.upper),
    st.text(max_size=10),
    st.integers(),
)
_units = st.one_of(
    st.none(),
    st.dictionaries(
        _names,
        st.one_of(
            st.sampled_from(
                [
                    "nmol/L",
                    "nmol/l",
                    "ng/mL",
                    "pg/mL",
                    "pmol/L",
                    "g/day",
                    "mg/cm2",
                    "kg",
                ]
            ),
            st.text(max_size=5),
            st.integers(),
        ),
        max_size=3,
    ),
)


@settings(
    max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    record=st.one_of(
        st.none(),
        st.dictionaries(_keys, _junk_values, max_size=8),
        st.lists(st.integers(), max_size=2),
    ),
    units=_units,
)
def test_malformed_records_raise_only_validation_error_naming_fields(record, units):
    try:
        out = validate_record(record, units=units)
    except ValidationError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.field and problem.field in str(exc)
            assert problem.message.startswith(problem.field)
        return
    assert set(CAT.names) <= set(out)


# Values that are plausible-to-bad for each dtype, to compare the two paths.
def _value_for(feat):
    if feat.dtype == "category":
        return st.one_of(
            st.sampled_from(list(feat.categories)),
            st.sampled_from(["European", "africa", "", " other "]),
            st.none(),
            st.integers(0, 3),
        )
    if feat.dtype == "bool":
        return st.one_of(
            st.booleans(),
            st.sampled_from(["yes", "no", "1", "x", ""]),
            st.sampled_from([0, 1, 2, 0.0, 1.0, 0.5]),
            st.none(),
        )
    lo, hi = feat.range
    span = hi - lo
    return st.one_of(
        st.floats(lo - 0.2 * span, hi + 0.2 * span, allow_nan=False),
        st.integers(int(lo) - 2, int(hi) + 2),
        st.sampled_from([float("nan"), float("inf"), "abc", "", "12"]),
        st.booleans(),
        st.none(),
    )


_optional = [f for f in CAT if f.missing]
_record_strategy = st.fixed_dictionaries(
    {f.name: _value_for(f) for f in CAT if not f.missing},
    optional={f.name: _value_for(f) for f in _optional},
)


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    if isinstance(a, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(_record_strategy, min_size=1, max_size=6),
    vitd_unit=st.sampled_from([None, "nmol/L"]),
)
def test_record_and_frame_give_the_same_verdict(records, vitd_unit):
    units = {"vitamin_d_25oh": vitd_unit} if vitd_unit else None
    frame = pd.DataFrame(records)
    res = validate_frame(frame, units=units)
    for i, record in enumerate(records):
        try:
            out = validate_record(record, units=units)
        except ValidationError as exc:
            assert i in set(res.rejected_rows)
            rejects = res.rejects[res.rejects["row"] == i]
            assert list(rejects["message"]) == [p.message for p in exc.problems]
            continue
        assert i in res.valid.index, res.rejects[res.rejects["row"] == i]
        row = res.valid.loc[i]
        for name in CAT.names:
            got = row[name]
            if CAT[name].dtype == "bool" and out[name] is not None:
                assert got == float(out[name]), name
            else:
                assert _same(out[name], got), (name, out[name], got)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 300), share=st.floats(0, 0.5), seed=st.integers(0, 10**6))
def test_frame_loses_no_row(n, share, seed):
    rng = np.random.default_rng(seed)
    months = rng.uniform(-3, 18, n)
    df = pd.DataFrame(
        {
            "age_years": rng.uniform(14, 55, n),
            "parity": rng.integers(1, 6, n).astype(float),
            "months_postpartum": months,
            # No longer than the time since delivery (a catalog rule).
            "lactation_months": rng.uniform(0, 1, n) * np.maximum(months, 0),
        }
    )
    bad = rng.random(n) < share
    df.loc[bad, "lactation_months"] = -1.0
    res = validate_frame(df)
    assert len(res.valid) + res.n_rejected == n
    assert set(res.rejected_rows) == set(np.flatnonzero(bad))
    assert set(res.rejects["field"]) <= {"lactation_months"}


def test_million_rows_with_one_percent_bad_lose_nothing():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_validate import make_frame

    df, bad = make_frame(1_000_000, 0.01, seed=3)
    res = validate_frame(df)
    assert len(res.valid) + res.n_rejected == len(df)
    assert set(res.rejected_rows) == set(df.index[bad])
    assert res.rejects["reason"].str.len().min() > 10
    assert set(res.rejects["row"]) == set(res.rejected_rows)


@pytest.mark.parametrize("text", ["3_3", "1_000", "_5", "2_"])
def test_underscores_in_numbers_are_refused_on_both_paths(text):
    record = {"age_years": text, "parity": 1, "months_postpartum": 2}
    with pytest.raises(ValidationError, match="age_years"):
        validate_record(record)
    frame = validate_frame(pd.DataFrame({k: [v] for k, v in record.items()}))
    assert len(frame.valid) == 0
    assert frame.rejects["field"].tolist() == ["age_years"]


# ------------------------------------------- hostile cells: only our own errors


class _HostileReal(float):
    """A number whose conversion and repr fail (any ``numbers.Real`` may do so)."""

    def __float__(self):
        raise RuntimeError("no float")

    def __repr__(self):
        raise RuntimeError("no repr")


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]


_HOSTILE = {
    "list": [1, 2],
    "dict": {"value": 3},
    "set": {1, 2},
    "tuple": (1, 2),
    "tuple_of_lists": ([1], [2]),
    "bytes": b"12",
    "bytearray": bytearray(b"12"),
    "object": _Unhashable(),
    "nested": {"a": [{"b": {1, 2}}]},
    "deep_list": deep_list(100_000),
    "huge_int": 10**5000,
    "hostile_real": _HostileReal(1.0),
    "array": np.array([1.0, 2.0]),
}
_KINDS = {
    "numeric": "lactation_months",
    "yes/no": "smoking",
    "category": "ancestry",
    "required": "age_years",
}
_GOOD = {"numeric": 2, "yes/no": "yes", "category": "european", "required": 30}


def _object_column(values: list) -> pd.Series:
    cells = np.empty(len(values), dtype=object)
    cells[:] = [None] * len(values)
    for i, v in enumerate(values):
        cells[i] = v
    return pd.Series(cells)


@pytest.mark.parametrize("kind", list(_KINDS))
@pytest.mark.parametrize("value", list(_HOSTILE.values()), ids=list(_HOSTILE))
def test_hostile_cells_are_row_errors_on_both_paths(kind, value):
    field = _KINDS[kind]
    record = {**BASE, field: value}
    with pytest.raises(ValidationError) as exc:
        validate_record(record)
    assert exc.value.fields == [field]
    message = exc.value.problems[0].message
    assert message.startswith(f"{field}=") and len(message) < 400

    df = pd.DataFrame({k: [v, v] for k, v in BASE.items()})
    df[field] = _object_column([value, _GOOD[kind]])
    res = validate_frame(df)
    assert list(res.valid.index) == [1]  # the other row is unaffected
    assert res.rejects["field"].tolist() == [field]
    assert res.rejects["message"].tolist() == [message]
    assert len(res.rejects.loc[0, "value"]) <= 60  # shown truncated


_hostile_cells = st.one_of(
    st.recursive(
        st.one_of(st.integers(), st.text(max_size=3), st.none()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.text(max_size=2), inner, max_size=2),
            st.tuples(inner, inner),
        ),
        max_leaves=6,
    ),
    st.frozensets(st.integers(), max_size=3).map(set),
    st.binary(max_size=4),
    st.binary(max_size=4).map(bytearray),
    st.sampled_from(list(_HOSTILE.values())),
    st.integers(-(10**40), 10**40),
    st.floats(),
    st.sampled_from(["", "nan", "1e400", "yes", "european", "3"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(list(_KINDS.values())), _hostile_cells),
        min_size=1,
        max_size=4,
    )
)
def test_hostile_cells_raise_only_our_errors_and_paths_agree(rows):
    records = [{**BASE, **row} for row in rows]
    names = sorted({k for r in records for k in r})
    res = validate_frame(
        pd.DataFrame({k: _object_column([r.get(k) for r in records]) for k in names})
    )
    assert len(res.valid) + res.n_rejected == len(records)
    for i, record in enumerate(records):
        try:
            validate_record({k: record.get(k) for k in names})
        except ValidationError as exc:
            rejects = res.rejects[res.rejects["row"] == i]
            assert list(rejects["message"]) == [p.message for p in exc.problems]
        else:
            assert i in res.valid.index


# ------------------------------------------------ null tokens: one rule, every path

_NULL_TOKENS = ["NaN", "nan", "NULL", "null", "N/A", "NA", "n/a", "None", "", "  "]
_TEXT_BASE = {"age_years": "31", "parity": "2", "months_postpartum": "3"}


def _record_verdict(record: dict) -> list[str]:
    try:
        validate_record(record)
    except ValidationError as exc:
        return [p.message for p in exc.problems]
    return []


@pytest.mark.parametrize("kind", list(_KINDS))
@pytest.mark.parametrize("token", _NULL_TOKENS, ids=repr)
def test_null_tokens_mean_missing_on_record_and_text_frame(kind, token):
    field = _KINDS[kind]
    record = {**_TEXT_BASE, field: token}
    expected = (
        [f"{field}=missing: is required ({CAT[field].label})"]
        if kind == "required"
        else []
    )
    assert _record_verdict(record) == expected
    # A CSV is read as text: the frame path sees the token as a string cell.
    frame = pd.DataFrame({k: [v] for k, v in record.items()}, dtype="string")
    res = validate_frame(frame)
    assert list(res.rejects["message"]) == expected
    assert len(res.valid) == (0 if expected else 1)


@pytest.mark.parametrize("word", ["na", " N/a ", "#N/A", "<NA>", "NONE", "Null"])
def test_missing_words_ignore_case_and_spaces(word):
    from plo_risk.data.schema import is_missing

    assert is_missing(word)
    assert validate_record({**BASE, "smoking": word})["smoking"] is None


@pytest.mark.parametrize("text", ["-NaN", "inf", "?", "n", "none of it"])
def test_other_text_is_not_missing(text):
    from plo_risk.data.schema import is_missing

    assert not is_missing(text)


# ------------------------------------------------------------ resource limits


def test_many_unknown_keys_name_the_first_and_count_the_rest():
    from plo_risk.data.schema import MAX_UNKNOWN_NAMED

    record = {**BASE, **{f"junk_{i}": i for i in range(200_000)}}
    record["smokng"] = "yes"  # past the cap: counted, not named
    with pytest.raises(ValidationError, match=r"\.\.\.: and 199,981 more unknown"):
        validate_record(record)
    exc = pytest.raises(ValidationError, validate_record, record).value
    assert len(exc.problems) == MAX_UNKNOWN_NAMED + 1
    assert len(str(exc)) < 100 * (MAX_UNKNOWN_NAMED + 1)

    df = pd.DataFrame(np.zeros((1, 5_000)), columns=[f"junk_{i}" for i in range(5_000)])
    with pytest.raises(ValidationError, match="and 4,980 more unknown columns") as exc:
        validate_frame(df.assign(**BASE))
    assert len(str(exc.value)) < 100 * (MAX_UNKNOWN_NAMED + 1)


def test_a_misspelling_within_the_cap_still_gets_its_suggestion():
    record = {**BASE, "smokng": "yes", **{f"junk_{i}": i for i in range(100)}}
    with pytest.raises(ValidationError, match="did you mean 'smoking'"):
        validate_record(record)


@pytest.mark.parametrize("where", ["key", "units"])
def test_a_huge_unknown_name_is_shown_cut_short(where):
    name = "x" * 10_000_000
    with pytest.raises(ValidationError) as exc:
        if where == "key":
            validate_record({**BASE, name: 1})
        else:
            validate_record(BASE, units={name: "nmol/L"})
    assert len(str(exc.value)) < 200


@pytest.mark.parametrize(
    "value",
    ["x" * 257, "x" * 50_000_000, 10**300, 10**5000, [1], {"a": 1}, b"12", True],
    ids=[
        "257 chars",
        "50 MB",
        "301 digits",
        "5001 digits",
        "list",
        "dict",
        "bytes",
        "bool",
    ],
)
def test_bad_patient_id_is_refused_on_both_paths(value):
    from plo_risk.data.schema import MAX_ID_LENGTH

    assert MAX_ID_LENGTH == 256
    with pytest.raises(ValidationError, match="patient_id=.*at most 256") as exc:
        validate_record({**BASE, "patient_id": value})
    assert exc.value.fields == ["patient_id"] and len(str(exc.value)) < 200

    df = pd.DataFrame({k: [v, v] for k, v in BASE.items()})
    df["patient_id"] = _object_column([value, "p2"])
    res = validate_frame(df)
    assert list(res.valid["patient_id"]) == ["p2"]
    assert res.rejects["field"].tolist() == ["patient_id"]
    assert res.rejects["message"].tolist() == [exc.value.problems[0].message]


@pytest.mark.parametrize(
    "value", ["x" * 256, "0012", "", 12345678901234567, 10**255, float("nan"), None]
)
def test_good_patient_ids_pass(value):
    validate_record({**BASE, "patient_id": value})
    df = pd.DataFrame({k: [v] for k, v in BASE.items()})
    df["patient_id"] = _object_column([value])
    assert len(validate_frame(df).valid) == 1


def test_long_patient_ids_in_a_text_column_are_checked_per_cell():
    ids = pd.Series(["a" * 300, "b", None, "c" * 256], dtype="string")
    df = pd.DataFrame({k: [v] * 4 for k, v in BASE.items()}).assign(patient_id=ids)
    res = validate_frame(df)
    assert list(res.rejected_rows) == [0]

"""Tests of plo_risk.features: the feature pipeline and its transformers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from plo_risk.data.catalog import default_catalog_path, load_catalog
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.features import (
    CALCIUM_RECOMMENDED_MG_DAY,
    CTX_UPPER_REFERENCE_NG_ML,
    ENGINEERED_FEATURES,
    P1NP_UPPER_REFERENCE_NG_ML,
    VITAMIN_D_BAND_EDGES_NG_ML,
    Bands,
    CatalogEncoder,
    MedianImputer,
    Product,
    Ratio,
    RowMin,
    Sum,
    build_pipeline,
    feature_sources,
    monotone_constraints,
    pipeline_from_dict,
    pipeline_to_dict,
    transform_numpy,
)

CAT = load_catalog()
NAN = math.nan
Z_FIELDS = [f.name for f in CAT if f.score == "z"]
T_FIELDS = [f.name for f in CAT if f.score == "t"]


def make_frame(
    n: int, seed: int = 0, *, missing: float = 0.3, extra: bool = True
) -> pd.DataFrame:
    """A canonical frame: every catalog field with random in-range values.

    Fields that may be missing are NaN with probability ``missing``; ``extra`` adds
    the non-catalog columns a cohort carries (patient_id, fracture, true_risk).
    """
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    if extra:
        data["patient_id"] = [f"p{seed}-{i}" for i in range(n)]
    for f in CAT:
        gone = rng.random(n) < missing if f.missing else np.zeros(n, dtype=bool)
        if f.dtype == "category":
            values = rng.choice(list(f.categories), size=n).astype(object)
            values[gone] = None
            data[f.name] = pd.Categorical(values, categories=list(f.categories))
            continue
        if f.dtype == "bool":
            values = rng.integers(0, 2, size=n).astype(float)
        elif f.dtype == "int":
            lo, hi = f.range
            values = rng.integers(int(lo), int(hi) + 1, size=n).astype(float)
        else:
            lo, hi = f.range
            values = rng.uniform(lo, hi, size=n)
        values[gone] = np.nan
        data[f.name] = values
    if extra:
        data["fracture"] = rng.integers(0, 2, size=n).astype(float)
        data["true_risk"] = rng.random(n)
    return pd.DataFrame(data)


def one_row(**values: float | str | None) -> pd.DataFrame:
    """A one-row canonical frame: mid-range values, overridden by ``values``."""
    row: dict[str, object] = {}
    for f in CAT:
        if f.dtype == "category":
            row[f.name] = f.categories[0]
        elif f.dtype == "bool":
            row[f.name] = 0.0
        else:
            row[f.name] = float(sum(f.range) / 2)
    row.update(values)
    frame = pd.DataFrame({k: [v] for k, v in row.items()})
    frame["ancestry"] = pd.Categorical(
        frame["ancestry"], categories=list(CAT["ancestry"].categories)
    )
    for f in CAT:
        if f.dtype != "category":
            frame[f.name] = frame[f.name].astype("float64")
    return frame


def expected_names(catalog=CAT) -> list[str]:
    names = []
    for f in catalog:
        if f.dtype == "category":
            names += [f"{f.name}={c}" for c in f.categories]
        else:
            names.append(f.name)
    return names + list(ENGINEERED_FEATURES)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_frame(300, seed=0)


@pytest.fixture(scope="module")
def fitted(train):
    return build_pipeline(CAT).fit(train)


@pytest.fixture(scope="module")
def fitted_imputed(train):
    return build_pipeline(CAT, impute=True).fit(train)


# ------------------------------------------------------------------ output shape


def test_output_names(fitted, train):
    out = fitted.transform(train)
    assert list(out.columns) == expected_names()
    assert fitted.get_feature_names_out().tolist() == expected_names()


def test_engineered_features_table_matches_pipeline(fitted):
    names = fitted.get_feature_names_out().tolist()
    assert names[-len(ENGINEERED_FEATURES) :] == list(ENGINEERED_FEATURES)


def test_output_is_float_frame_with_input_index(fitted):
    frame = make_frame(7, seed=3)
    frame.index = pd.Index([10, 11, 12, 20, 21, 22, 30], name="episode")
    out = fitted.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(frame.index)
    assert set(out.dtypes) == {np.dtype("float64")}


def test_default_keeps_nan_and_impute_removes_it(fitted, fitted_imputed, train):
    assert fitted.transform(train).isna().to_numpy().any()
    out = fitted_imputed.transform(train)
    assert np.isfinite(out.to_numpy()).all()
    indicators = [c for c in out.columns if c.endswith("_missing")]
    assert "z_lumbar_spine_missing" in indicators
    assert "parity_missing" not in indicators  # parity is never missing
    assert list(out.columns) == expected_names() + indicators


def test_imputed_values_are_training_medians(fitted_imputed, train):
    row = one_row(bmi=NAN)
    out = fitted_imputed.transform(row)
    encoded = fitted_imputed[:-1].transform(train)
    assert out.loc[0, "bmi"] == pytest.approx(encoded["bmi"].median())
    assert out.loc[0, "bmi_missing"] == 1.0


def test_not_fitted(train):
    with pytest.raises(NotFittedError):
        build_pipeline(CAT).transform(train)


# ------------------------------------------------------ engineered feature values

LN2 = math.log(2.0)
CASES = {
    "cumulative/both": (
        dict(prior_lactation_months=12, lactation_months=6, parity=2),
        "cumulative_lactation_months",
        18.0,
    ),
    "cumulative/first-birth-prior-missing": (
        dict(prior_lactation_months=NAN, lactation_months=6, parity=1),
        "cumulative_lactation_months",
        6.0,
    ),
    "cumulative/later-birth-prior-missing": (
        dict(prior_lactation_months=NAN, lactation_months=6, parity=2),
        "cumulative_lactation_months",
        NAN,
    ),
    "cumulative/current-missing": (
        dict(prior_lactation_months=12, lactation_months=NAN, parity=3),
        "cumulative_lactation_months",
        NAN,
    ),
    "cumulative/first-birth-both-missing": (
        dict(prior_lactation_months=NAN, lactation_months=NAN, parity=1),
        "cumulative_lactation_months",
        NAN,
    ),
    "lactation_x_parity": (
        dict(lactation_months=6, parity=3),
        "lactation_x_parity",
        18.0,
    ),
    "lactation_x_parity/missing": (
        dict(lactation_months=NAN, parity=3),
        "lactation_x_parity",
        NAN,
    ),
    "calcium/half": (dict(calcium_intake_mg_day=750), "calcium_adequacy", 0.5),
    "calcium/target": (dict(calcium_intake_mg_day=1500), "calcium_adequacy", 1.0),
    "calcium/none": (dict(calcium_intake_mg_day=0), "calcium_adequacy", 0.0),
    "calcium/missing": (dict(calcium_intake_mg_day=NAN), "calcium_adequacy", NAN),
    **{
        f"vitamin_d/{value}": (dict(vitamin_d_25oh=value), "vitamin_d_band", band)
        for value, band in [
            (0.0, 0.0),
            (11.99, 0.0),
            (12.0, 1.0),
            (19.99, 1.0),
            (20.0, 2.0),
            (29.99, 2.0),
            (30.0, 3.0),
            (120.0, 3.0),
            (NAN, NAN),
        ]
    },
    "lowest_z/all": (
        dict(zip(Z_FIELDS, [-1.0, -2.5, 0.3], strict=True)),
        "lowest_z",
        -2.5,
    ),
    "lowest_z/one": (
        dict(zip(Z_FIELDS, [NAN, -1.0, NAN], strict=True)),
        "lowest_z",
        -1.0,
    ),
    "lowest_z/none": (dict(zip(Z_FIELDS, [NAN] * 3, strict=True)), "lowest_z", NAN),
    "lowest_t/all": (
        dict(zip(T_FIELDS, [0.5, -3.1, -2.0], strict=True)),
        "lowest_t",
        -3.1,
    ),
    "lowest_t/none": (dict(zip(T_FIELDS, [NAN] * 3, strict=True)), "lowest_t", NAN),
    "ctx_ratio/at-limit": (dict(ctx=0.791), "ctx_ratio", 1.0),
    "ctx_ratio/double": (dict(ctx=1.582), "ctx_ratio", 2.0),
    "ctx_ratio/missing": (dict(ctx=NAN), "ctx_ratio", NAN),
    "p1np_ratio/at-limit": (dict(p1np=83.4), "p1np_ratio", 1.0),
    "uncoupling/resorption": (dict(ctx=1.582, p1np=83.4), "turnover_uncoupling", LN2),
    "uncoupling/formation": (dict(ctx=0.791, p1np=166.8), "turnover_uncoupling", -LN2),
    "uncoupling/balanced": (dict(ctx=0.3955, p1np=41.7), "turnover_uncoupling", 0.0),
    "uncoupling/p1np-missing": (dict(p1np=NAN), "turnover_uncoupling", NAN),
    "passthrough/bool": (dict(smoking=1.0), "smoking", 1.0),
    "passthrough/missing": (dict(bmi=NAN), "bmi", NAN),
}


@pytest.mark.parametrize(
    ("values", "column", "expected"), list(CASES.values()), ids=list(CASES)
)
def test_engineered_value(fitted, values, column, expected):
    out = fitted.transform(one_row(**values))
    got = out.loc[0, column]
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_constants_have_the_cited_values():
    assert CALCIUM_RECOMMENDED_MG_DAY == 1500.0  # seed Prevention / Table 2
    assert VITAMIN_D_BAND_EDGES_NG_ML == (12.0, 20.0, 30.0)  # params sheet F
    assert CTX_UPPER_REFERENCE_NG_ML == 0.791  # params sheet F, Glover 2012
    assert P1NP_UPPER_REFERENCE_NG_ML == 83.4  # params sheet F, Glover 2012


@pytest.mark.parametrize(
    ("ancestry", "hot"),
    [("east_asian", "ancestry=east_asian"), ("other", "ancestry=other"), (None, None)],
    ids=["east_asian", "other", "missing"],
)
def test_ancestry_one_hot(fitted, ancestry, hot):
    out = fitted.transform(one_row(ancestry=ancestry))
    onehot = out.filter(like="ancestry=")
    assert list(onehot.columns) == [f"ancestry={c}" for c in CAT["ancestry"].categories]
    expected = {c: float(c == hot) for c in onehot.columns}
    assert onehot.iloc[0].to_dict() == expected  # missing: all zero, never NaN


@pytest.mark.parametrize(
    "column",
    [
        pd.array([True, False, None], dtype="boolean"),
        np.array([True, False, np.nan], dtype=object),
        np.array([1.0, 0.0, np.nan]),
    ],
    ids=["nullable-boolean", "object", "float"],
)
def test_booleans_become_zero_one(column):
    frame = pd.DataFrame({"smoking": column})
    enc = CatalogEncoder(columns=["smoking"]).fit(frame)
    np.testing.assert_array_equal(enc.transform(frame)[:, 0], [1.0, 0.0, np.nan])


# --------------------------------------------------------------- input handling


def test_extra_columns_are_ignored(fitted):
    frame = make_frame(20, seed=5)
    bare = frame.drop(columns=["patient_id", "fracture", "true_risk"])
    out = fitted.transform(frame)
    pd.testing.assert_frame_equal(out, fitted.transform(bare))
    assert not {"patient_id", "fracture", "true_risk"} & set(out.columns)


def test_column_order_does_not_matter(fitted):
    frame = make_frame(20, seed=6)
    shuffled = frame[frame.columns[::-1]]
    pd.testing.assert_frame_equal(fitted.transform(frame), fitted.transform(shuffled))


MISSING_COLUMN = (
    r"The input frame has no column 'parity' \(a catalog field\); "
    r"pass the output of plo_risk\.validate_frame"
)


def test_missing_column_at_fit():
    frame = make_frame(10).drop(columns=["parity"])
    with pytest.raises(ValueError, match=MISSING_COLUMN):
        build_pipeline(CAT).fit(frame)


def test_missing_column_at_transform(fitted):
    frame = make_frame(10).drop(columns=["parity"])
    with pytest.raises(ValueError, match=MISSING_COLUMN):
        fitted.transform(frame)


def test_several_missing_columns_are_counted(fitted):
    frame = make_frame(10).drop(columns=["parity", "bmi", "ctx"])
    with pytest.raises(ValueError, match=r"no column 'parity'.*2 more missing"):
        fitted.transform(frame)


def test_unknown_category(fitted):
    frame = make_frame(3, seed=1)
    frame["ancestry"] = ["european", "martian", None]
    with pytest.raises(ValueError, match=r"'ancestry' has the value 'martian'"):
        fitted.transform(frame)


@pytest.mark.parametrize(
    ("value", "match"),
    [("six", r"'lactation_months' must be numeric"), (np.inf, r"infinity")],
    ids=["text", "inf"],
)
def test_bad_numeric_column(fitted, value, match):
    frame = make_frame(3, seed=1)
    frame["lactation_months"] = frame["lactation_months"].astype(object)
    frame.loc[1, "lactation_months"] = value
    with pytest.raises(ValueError, match=match):
        fitted.transform(frame)


def test_ndarray_is_refused_by_catalog_encoder(train):
    with pytest.raises(ValueError, match="reads a DataFrame by column name"):
        CatalogEncoder.from_catalog(CAT).fit(train.to_numpy())


def test_default_output_loses_names_with_a_clear_error(train):
    pipe = build_pipeline(CAT).set_output(transform="default")
    with pytest.raises(ValueError, match=r"X has no column names.*set_output"):
        pipe.fit(train)


# --------------------------------------------------------- generic transformers


@pytest.mark.parametrize(
    ("transformer", "expected"),
    [
        (RowMin(columns=[0, 2]), [1.0, 4.0]),  # NaN skipped
        (RowMin(), [1.0, 2.0]),
        (Sum(columns=[1, 2]), [5.0, NAN]),
        (Sum(columns=[1, 2], nan_as_zero_when=[(2, 0, 4.0)]), [5.0, 2.0]),
        (Product(columns=[0, 1]), [2.0, 8.0]),
        (Ratio(numerator=1, denominator=0), [2.0, 0.5]),
        (Ratio(numerator=2, reference=2.0), [1.5, NAN]),
        (Ratio(numerator=0, denominator=1, log=True), [math.log(0.5), LN2]),
        (Bands(column=1, edges=(1.5, 2.5)), [1.0, 1.0]),
    ],
    ids=repr,
)
def test_generic_transformers_by_position(transformer, expected):
    X = np.array([[1.0, 2.0, 3.0], [4.0, 2.0, NAN]])
    out = transformer.fit_transform(X)
    np.testing.assert_array_equal(out[:, :-1], X)
    np.testing.assert_allclose(out[:, -1], expected)


def test_generic_transformers_by_name():
    X = pd.DataFrame({"a": [1.0, 4.0], "b": [2.0, 2.0]})
    pipe = make_pipeline(
        Product(columns=["a", "b"], name="ab"),
        Ratio(numerator="ab", denominator="a", name="back_to_b"),
    ).set_output(transform="pandas")
    out = pipe.fit_transform(X)
    assert list(out.columns) == ["a", "b", "ab", "back_to_b"]
    np.testing.assert_allclose(out["back_to_b"], X["b"])


@pytest.mark.parametrize(
    ("transformer", "X", "error", "match"),
    [
        (RowMin(columns=["a"]), np.ones((2, 2)), ValueError, "X has no column names"),
        (
            RowMin(columns=["zz"]),
            pd.DataFrame({"a": [1.0]}),
            ValueError,
            r"names the column 'zz', but X has no such column",
        ),
        (RowMin(columns=[5]), np.ones((2, 2)), ValueError, r"columns=5 is out of"),
        (RowMin(columns=[]), np.ones((2, 2)), ValueError, "at least one column"),
        (
            RowMin(columns="a"),
            np.ones((2, 2)),
            InvalidParameterError,
            r"'columns' parameter of RowMin must be None or an array-like",
        ),
        (
            RowMin(name="a"),
            pd.DataFrame({"a": [1.0]}),
            ValueError,
            r"name='a' is already a column",
        ),
        (Bands(edges=(2.0, 1.0)), np.ones((2, 2)), ValueError, "strictly increasing"),
        (Bands(edges=()), np.ones((2, 2)), ValueError, "non-empty"),
        (
            Sum(columns=[0], nan_as_zero_when=[(1, 0, 1.0)]),
            np.ones((2, 2)),
            ValueError,
            "not one of the summed columns",
        ),
        (
            Sum(nan_as_zero_when=[(0, 1)]),
            np.ones((2, 2)),
            ValueError,
            r"must be \(term, column, value\)",
        ),
        (
            CatalogEncoder(columns=["a"], categories={"b": ["x"]}),
            pd.DataFrame({"a": [1.0], "b": ["x"]}),
            ValueError,
            r"categories given for \['b'\]",
        ),
    ],
    ids=lambda v: repr(v) if not isinstance(v, (np.ndarray, pd.DataFrame)) else "",
)
def test_transformer_errors(transformer, X, error, match):
    with pytest.raises(error, match=match):
        transformer.fit(X)


def test_median_imputer_all_missing_column_is_zero():
    X = np.array([[1.0, NAN], [3.0, NAN]])
    imp = MedianImputer().fit(X)
    assert imp.medians_ == [2.0, 0.0]
    assert imp.get_feature_names_out().tolist() == ["x0", "x1", "x1_missing"]
    np.testing.assert_array_equal(imp.transform(X), [[1.0, 0.0, 1.0], [3.0, 0.0, 1.0]])


# ----------------------------------------------------------------- JSON state


@pytest.mark.parametrize("impute", [False, True], ids=["nan", "impute"])
def test_json_round_trip(train, impute):
    pipe = build_pipeline(CAT, impute=impute).fit(train)
    d = pipeline_to_dict(pipe)
    text = json.dumps(d, allow_nan=False)
    rebuilt = pipeline_from_dict(json.loads(text), CAT)
    frame = make_frame(50, seed=11)
    pd.testing.assert_frame_equal(rebuilt.transform(frame), pipe.transform(frame))
    assert rebuilt.get_feature_names_out().tolist() == (
        pipe.get_feature_names_out().tolist()
    )
    assert pipeline_to_dict(rebuilt) == json.loads(text)
    assert feature_sources(rebuilt) == feature_sources(pipe)


def test_json_round_trip_of_an_unfitted_pipeline():
    d = pipeline_to_dict(build_pipeline(CAT))
    rebuilt = pipeline_from_dict(json.loads(json.dumps(d)))
    with pytest.raises(NotFittedError):
        rebuilt.transform(make_frame(2))


def test_json_refuses_foreign_steps(train):
    pipe = make_pipeline(CatalogEncoder(columns=["bmi"]), StandardScaler())
    with pytest.raises(TypeError, match="StandardScaler is not a plo_risk.features"):
        pipeline_to_dict(pipe.fit(train))


def test_json_refuses_unknown_classes(fitted):
    d = json.loads(json.dumps(pipeline_to_dict(fitted)))
    d["pipeline"]["steps"][1][1]["class"] = "os.system"
    with pytest.raises(ValueError, match=r"class 'os.system' is not a plo_risk"):
        pipeline_from_dict(d)


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"format": "pickle"}, "Not a plo_risk feature pipeline"),
        (
            {"format": "plo_risk.features.pipeline", "format_version": 99},
            "format_version=99",
        ),
    ],
    ids=["format", "version"],
)
def test_json_refuses_other_formats(d, match):
    with pytest.raises(ValueError, match=match):
        pipeline_from_dict(d)


def _edited_catalog(tmp_path, edit):
    doc = yaml.safe_load(default_catalog_path().read_text())
    doc["fields"] = edit(doc["fields"])
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_catalog(path)


def test_json_refuses_a_catalog_with_other_categories(tmp_path, fitted):
    def drop_other(fields):
        for f in fields:
            if f["name"] == "ancestry":
                f["categories"] = f["categories"][:-1]
        return fields

    catalog = _edited_catalog(tmp_path, drop_other)
    with pytest.raises(ValueError, match=r"encodes 'ancestry' with categories"):
        pipeline_from_dict(pipeline_to_dict(fitted), catalog)


def test_json_refuses_a_catalog_without_a_field(tmp_path, fitted):
    catalog = _edited_catalog(
        tmp_path, lambda fields: [f for f in fields if f["name"] != "bmi"]
    )
    with pytest.raises(ValueError, match=r"reads the field 'bmi', which is not in"):
        pipeline_from_dict(pipeline_to_dict(fitted), catalog)


def test_catalog_without_markers_drops_their_features(tmp_path):
    catalog = _edited_catalog(
        tmp_path, lambda fields: [f for f in fields if f["name"] not in ("ctx",)]
    )
    names = (
        build_pipeline(catalog)
        .fit(make_frame(20).drop(columns=["ctx"]))
        .get_feature_names_out()
        .tolist()
    )
    assert "p1np_ratio" in names
    assert not {"ctx", "ctx_ratio", "turnover_uncoupling"} & set(names)


# ----------------------------------------------------- provenance and monotone


def test_feature_sources_cover_every_output_with_catalog_fields(fitted_imputed):
    sources = feature_sources(fitted_imputed)
    assert list(sources) == fitted_imputed.get_feature_names_out().tolist()
    for column, fields in sources.items():
        assert fields, column
        assert set(fields) <= set(CAT.names), column


@pytest.mark.parametrize(
    ("column", "fields"),
    [
        ("parity", ["parity"]),
        ("ancestry=east_asian", ["ancestry"]),
        ("lactation_x_parity", ["parity", "lactation_months"]),
        (
            "cumulative_lactation_months",
            ["parity", "lactation_months", "prior_lactation_months"],
        ),
        ("calcium_adequacy", ["calcium_intake_mg_day"]),
        ("vitamin_d_band", ["vitamin_d_25oh"]),
        ("lowest_z", Z_FIELDS),
        ("lowest_t", T_FIELDS),
        ("ctx_ratio", ["ctx"]),
        ("turnover_uncoupling", ["ctx", "p1np"]),
        ("z_lumbar_spine_missing", ["z_lumbar_spine"]),
        ("bmi_missing", ["bmi"]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_feature_sources(fitted_imputed, column, fields):
    assert feature_sources(fitted_imputed)[column] == fields


def test_feature_sources_needs_a_fitted_pipeline():
    with pytest.raises(NotFittedError):
        feature_sources(build_pipeline(CAT))


def test_feature_sources_refuses_foreign_steps(train):
    pipe = make_pipeline(CatalogEncoder(columns=["bmi"]), StandardScaler())
    with pytest.raises(TypeError, match="StandardScaler does not report"):
        feature_sources(pipe.fit(train))


@pytest.mark.parametrize(
    ("column", "sign"),
    [
        ("lowest_z", -1),
        ("lowest_t", -1),
        ("calcium_adequacy", -1),
        ("vitamin_d_band", -1),
        ("ctx_ratio", 1),
        ("lactation_x_parity", 1),
        # prior_lactation_months has no direction: lactation_months decides
        ("cumulative_lactation_months", 1),
        ("p1np_ratio", 0),
        ("turnover_uncoupling", 1),  # p1np has no direction: ctx decides
        ("ancestry=european", 0),
        ("z_lumbar_spine_missing", 0),
        ("bmi_missing", 0),
        ("bmi", -1),
        ("smoking", 1),
        ("age_years", 0),
    ],
)
def test_monotone_constraint(fitted_imputed, column, sign):
    assert monotone_constraints(fitted_imputed, CAT)[column] == sign


def test_monotone_constraints_follow_catalog_for_every_field(fitted):
    cons = monotone_constraints(fitted)
    assert list(cons) == fitted.get_feature_names_out().tolist()
    for f in CAT:
        if f.dtype != "category":
            assert cons[f.name] == f.monotone, f.name


def test_monotone_constraints_are_the_champions(fitted):
    # One definition: the xgboost champion is fitted with exactly the non-zero
    # constraints this function gives (the first wave's two definitions differed
    # on cumulative_lactation_months and turnover_uncoupling).
    from plo_risk.model import make_model

    champion = make_model("xgboost").estimator[-1].get_params()["monotone_constraints"]
    ours = {c: s for c, s in monotone_constraints(fitted, CAT).items() if s}
    assert ours == champion
    assert ours["cumulative_lactation_months"] == 1
    assert ours["turnover_uncoupling"] == 1


def test_monotone_rule_uses_the_sign_of_the_dependence():
    X = pd.DataFrame({"bmi": [20.0], "smoking": [1.0], "alcohol_units_day": [2.0]})
    pipe = make_pipeline(
        CatalogEncoder(columns=list(X.columns)),
        Ratio(numerator="smoking", denominator="bmi", name="smoke_per_bmi"),
        Ratio(numerator="bmi", denominator="smoking", name="bmi_per_smoke"),
        Sum(columns=["smoking", "alcohol_units_day"], name="habits"),
        Sum(columns=["smoking", "bmi"], name="mixed"),
    ).set_output(transform="pandas")
    cons = monotone_constraints(pipe.fit(X), CAT)
    # smoking (+) over bmi (-): both raise risk as the ratio grows
    assert cons["smoke_per_bmi"] == 1
    assert cons["bmi_per_smoke"] == -1
    assert cons["habits"] == 1
    assert cons["mixed"] == 0  # the sources disagree


# ------------------------------------------------------------------ properties

frames = st.builds(
    make_frame,
    n=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    missing=st.sampled_from([0.0, 0.3, 0.9]),
)


@settings(max_examples=20, deadline=None)
@given(frame=frames)
def test_transform_is_row_wise(fitted, frame):
    out = fitted.transform(frame)
    for i in range(len(frame)):
        pd.testing.assert_frame_equal(fitted.transform(frame.iloc[[i]]), out.iloc[[i]])


@settings(max_examples=20, deadline=None)
@given(frame=frames, data=st.data())
def test_permuting_rows_permutes_output(fitted, frame, data):
    perm = data.draw(st.permutations(range(len(frame))))
    out = fitted.transform(frame)
    pd.testing.assert_frame_equal(fitted.transform(frame.iloc[perm]), out.iloc[perm])


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_output_finite_where_inputs_finite(fitted, n, seed):
    frame = make_frame(n, seed, missing=0.0)
    assert np.isfinite(fitted.transform(frame).to_numpy()).all()


@settings(max_examples=20, deadline=None)
@given(frame=frames)
def test_imputed_output_is_always_finite(fitted_imputed, frame):
    assert np.isfinite(fitted_imputed.transform(frame).to_numpy()).all()


# ------------------------------------------------ numpy path (transform_numpy)


def _bits(a) -> np.ndarray:
    # Bit patterns: equal means the same float64 values, NaN and -0.0 included.
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


def _assert_same_bits(a, b) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(_bits(a), _bits(b))


def _record_frame(record: dict) -> pd.DataFrame:
    # The one-row frame of a canonical record, as RiskModel._frame builds it.
    row = {}
    for f in CAT:
        v = record.get(f.name)
        if f.dtype == "category":
            row[f.name] = pd.Categorical([v], categories=list(f.categories))
        else:
            row[f.name] = [np.nan if v is None else float(v)]
    return pd.DataFrame(row)


def _outcome(fn):
    """The matrix, or the ValueError message when the input is refused."""
    try:
        out = fn()
    except ValueError as exc:
        return str(exc)
    return out.to_numpy() if isinstance(out, pd.DataFrame) else out


def _field_value(f):
    if f.dtype == "category":
        return st.none() | st.sampled_from(list(f.categories))
    if f.dtype == "bool":
        return st.none() | st.booleans()
    lo, hi = f.range
    return (
        st.none()
        | st.floats(min_value=lo, max_value=hi)
        | st.integers(int(math.ceil(lo)), int(hi))
        # Outside the range and NaN too: 0, negatives, huge values (overflow).
        | st.floats(allow_infinity=False)
    )


records = st.fixed_dictionaries({f.name: _field_value(f) for f in CAT})


@settings(max_examples=150, deadline=None)
@given(record=records)
def test_numpy_path_equals_transform_on_a_record(fitted, record):
    frame = _record_frame(record)
    expected = _outcome(lambda: fitted.transform(frame))
    from_record = _outcome(lambda: transform_numpy(fitted, record)[0])
    from_frame = _outcome(lambda: transform_numpy(fitted, frame)[0])
    if isinstance(expected, str):  # refused (e.g. a product that overflows)
        assert from_record == from_frame == expected
    else:
        _assert_same_bits(from_record, expected)
        _assert_same_bits(from_frame, expected)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(records, min_size=1, max_size=8))
def test_numpy_path_equals_transform_on_frames(fitted, fitted_imputed, rows):
    frame = pd.concat([_record_frame(r) for r in rows], ignore_index=True)
    for pipe in (fitted, fitted_imputed):
        expected = _outcome(lambda pipe=pipe: pipe.transform(frame))
        got = _outcome(lambda pipe=pipe: transform_numpy(pipe, frame)[0])
        if isinstance(expected, str):
            assert got == expected
        else:
            _assert_same_bits(got, expected)


@pytest.mark.parametrize("impute", [False, True])
def test_numpy_path_equals_transform_on_a_cohort(impute):
    cohort = validate_frame(generate_cohort(3000, seed=4)).valid
    pipe = build_pipeline(CAT, impute=impute).fit(cohort.iloc[:1500])
    expected = pipe.transform(cohort)
    matrix, names = transform_numpy(pipe, cohort)
    assert names == expected.columns.tolist()
    assert matrix.dtype == np.float64
    _assert_same_bits(matrix, expected.to_numpy())
    for i in range(0, len(cohort), 97):  # records as validate_frame's rows
        record = {
            k: None if pd.isna(v) else v for k, v in cohort.iloc[i].to_dict().items()
        }
        _assert_same_bits(transform_numpy(pipe, record)[0], expected.to_numpy()[[i]])


def test_numpy_path_refuses_what_transform_refuses(fitted):
    frame = make_frame(3).drop(columns=["parity"])
    with pytest.raises(ValueError, match=MISSING_COLUMN):
        transform_numpy(fitted, frame)
    record = {"ancestry": "martian"}
    with pytest.raises(ValueError, match="not one of its categories"):
        transform_numpy(fitted, record)
    with pytest.raises(ValueError, match="contains infinity"):
        transform_numpy(fitted, {"parity": math.inf})
    with pytest.raises(ValueError, match="must be numeric or boolean"):
        transform_numpy(fitted, {"parity": "two"})
    overflow = {"lactation_months": 1e200, "parity": 1e200}  # product is inf
    empty = make_frame(3).iloc[:0]
    for bad, match in (
        (_record_frame(overflow), "Input X contains infinity"),
        (empty, "Found array with 0 sample"),
    ):
        for run in (fitted.transform, lambda X: transform_numpy(fitted, X)):
            with pytest.raises(ValueError, match=match):
                run(bad)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        transform_numpy(fitted, overflow)
    with pytest.raises(TypeError, match="DataFrame or a record"):
        transform_numpy(fitted, np.zeros((1, 3)))
    scaled = make_pipeline(CatalogEncoder.from_catalog(CAT), StandardScaler())
    scaled = scaled.set_output(transform="pandas").fit(make_frame(5))
    with pytest.raises(TypeError, match="no array path"):
        transform_numpy(scaled, make_frame(2))
    with pytest.raises(NotFittedError):
        transform_numpy(build_pipeline(CAT), make_frame(2))

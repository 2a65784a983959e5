"""Explanations: additive contributions in calibrated log-odds, per input field.

:func:`contributions` splits each patient's calibrated log-odds of fracture
(``model.decision_function(X)``, the logit of the risk) into a base value and one
contribution per model-matrix column or per catalog field, so that::

    base + contributions.sum(axis=1) == decision_function(X)

up to floating-point rounding (< 1e-5). Every model of :mod:`plo_risk.models` is a
:class:`~plo_risk.models.PlattCalibratedClassifier` whose calibrated log-odds are
``intercept_ + slope_ * margin``, so contributions to the margin times ``slope_``
are contributions to the calibrated log-odds, and the base is
``intercept_ + slope_ * (base of the margin)``. The margin is decomposed

``xgboost``
    by exact TreeSHAP: ``Booster.predict(..., pred_contribs=True)`` (path-dependent
    TreeSHAP, the same values as ``shap.TreeExplainer(booster)``); the base is the
    bias column. xgboost computes in float32; we continue in float64 and fold
    its rounding (about 1e-5) into the base, so the sum is exact.
``hist_gradient_boosting``
    by ``shap.TreeExplainer`` (exact path-dependent TreeSHAP); the base is its
    expected value.
``logistic_regression``
    exactly, as it is linear in its standardized design: column ``j`` contributes
    ``coef_j * x_j``, i.e. ``coef_j * (value_j - training mean_j) / scale_j``; the
    base is the model's intercept, the log-odds of a patient at the training mean.
``clinical_rule``
    relative to the rule's ``"unknown"`` group (no Z-score): the base is that
    group's log-odds and the whole difference to the row's group goes to the
    rule's column (``lowest_z``). A patient without DXA has all contributions 0.

Grouping to fields (``by="field"``, the default) sums the columns back to the
catalog fields a clinician typed, through
:func:`plo_risk.features.feature_sources`:

- a column from one field (the field itself, its one-hot columns
  ``ancestry=<category>``, spline columns, ``<field>_missing`` indicators) goes
  wholly to that field;
- a row-minimum column (:class:`~plo_risk.features.RowMin`: ``lowest_z``,
  ``lowest_t``, with their spline columns in the logistic model) goes, in each
  row, wholly to the field that attains the minimum (the first such field on a
  tie); in a row where every source is missing (no DXA) it is split equally among
  the sources, as no site is "the lowest" (a missing value is not a zero
  contribution in trees, nor once imputed);
- any other column computed from several fields (``lactation_x_parity``,
  ``cumulative_lactation_months``, ``turnover_uncoupling``, the ``_missing``
  indicator of ``lowest_z``) is split equally among its source fields.

Each column's contribution is shared out in full (weights summing to 1), so the
grouped contributions stay exactly additive. Every field read by the model is a
column of the result, in catalog order, with zeros where nothing is attributed.

:func:`global_importance`, :func:`explain_cohort`, :func:`plot_beeswarm` and
:func:`plot_waterfall` build on :func:`contributions`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from plo_risk.data.catalog import Catalog, load_catalog
from plo_risk.model.calibration import PlattCalibratedClassifier, margin
from plo_risk.model.families import family_of
from plo_risk.model.features import (
    ArrayPipeline,
    CatalogEncoder,
    RowMin,
    feature_sources,
)
from plo_risk.model.horizon import TIME_FIELDS
from plo_risk.utils.sklearn_compat import Interval, StrOptions, validate_params

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Explainer",
    "Explanation",
    "contributions",
    "explain_cohort",
    "explainer_for",
    "fold_contributions",
    "global_importance",
    "horizon_contributions",
    "plot_beeswarm",
    "plot_waterfall",
    "value_text",
]

#: The column of :func:`fold_contributions` that holds every input not given.
NOT_KNOWN = "not_known"

# Largest |decision_function - (base + sum)| accepted before the rounding residual
# is folded into the base; more means the decomposition does not describe the
# model (a bug or an unsupported library version), which must not pass silently.
_ADDITIVITY_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class Explanation:
    """Additive contributions to the calibrated log-odds of each row.

    Attributes
    ----------
    values : pandas.DataFrame of shape (n_samples, n_columns)
        Contributions in calibrated log-odds, one column per catalog field
        (``by="field"``) or model-matrix column (``by="column"``), indexed like X.
    base : numpy.ndarray of shape (n_samples,)
        Calibrated log-odds of the base value (the same in every row, up to the
        float32 rounding of xgboost, which is folded into it).
    by : {"field", "column"}
        How the columns of ``values`` are defined.
    """

    values: pd.DataFrame
    base: np.ndarray
    by: str = "field"

    @property
    def logit(self) -> np.ndarray:
        """``base + values.sum(axis=1)``: the calibrated log-odds (logit of risk)."""
        return self.base + self.values.to_numpy().sum(axis=1)


# --------------------------------------------------------------------------------
# Decomposition of the margin: the model's family knows how


def _decompose(clf: Any, Xt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Contributions to the margin of ``clf`` on its input ``Xt``, and the base."""
    return family_of(clf).contributions(clf, Xt)


# --------------------------------------------------------------------------------
# From model-matrix columns back to fields


def _leaves(est: Any) -> list[Any]:
    if isinstance(est, Pipeline):
        return [leaf for _, step in est.steps for leaf in _leaves(step)]
    if est is None or (isinstance(est, str) and est == "passthrough"):
        return []
    return [est]


def _output_inputs(step: Any) -> dict[str, list[str]]:
    """Output column -> the input columns it is computed from, for one step."""
    names_in = [str(n) for n in step.feature_names_in_]
    names_out = [str(n) for n in step.get_feature_names_out()]
    if not isinstance(step, ColumnTransformer):
        if len(names_out) == len(names_in):  # column-wise (e.g. StandardScaler)
            return {o: [i] for o, i in zip(names_out, names_in, strict=True)}
        raise ValueError(
            f"contributions cannot map the {len(names_out)} output columns of "
            f"{type(step).__name__} to its {len(names_in)} input columns"
        )
    result: dict[str, list[str]] = {}
    for name, transformer, columns in step.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        cols = [
            names_in[c] if isinstance(c, Integral) else str(c)
            for c in np.atleast_1d(np.asarray(columns, dtype=object))
        ]
        outputs = names_out[step.output_indices_[name]]
        if isinstance(transformer, str) and transformer == "passthrough":
            result.update({o: [c] for o, c in zip(outputs, cols, strict=True)})
            continue
        for out in outputs:
            if len(cols) == 1:
                result[out] = cols
            elif out in cols:
                result[out] = [out]
            else:  # e.g. SplineTransformer: "<input>_sp_<k>"; else all inputs
                prefixes = [c for c in cols if out.startswith(f"{c}_")]
                result[out] = [max(prefixes, key=len)] if prefixes else cols
    return result


def _share_matrix(
    rows: list[str],
    cols: list[str],
    sources: dict[str, list[str]],
    skip: Collection[str] = (),
) -> np.ndarray:
    """Matrix (len(rows), len(cols)) sharing each row equally among its sources.

    Rows in ``skip`` are left at zero (attributed elsewhere).
    """
    position = {c: j for j, c in enumerate(cols)}
    out = np.zeros((len(rows), len(cols)), dtype=np.float64)
    for i, row in enumerate(rows):
        if row in skip:
            continue
        srcs = sources.get(row, [])
        if not srcs:
            raise ValueError(
                f"contributions: the model column {row!r} has no source field, so "
                "its contribution could not be attributed"
            )
        for s in srcs:
            out[i, position[s]] += 1.0 / len(srcs)
    return out


@dataclass
class _Trace:
    """What one pass of X through the model's transformers leaves behind."""

    # Input of the final classifier (model matrix): a float32 array on the array
    # path of an xgboost model, else a DataFrame.
    design: Any
    design_columns: list[str]
    features_columns: list[str]  # output columns of the feature pipeline
    # RowMin name -> (the RowMin, its input, the leaves before it)
    rowmin_inputs: dict[str, tuple[RowMin, Any, list[Any]]]


def _middle_leaves(estimator: Pipeline) -> list[Any]:
    """The transformers between the feature pipeline and the classifier."""
    return [leaf for _, step in estimator.steps[1:-1] for leaf in _leaves(step)]


def _as_frame(Z: Any, leaf: Any, index: pd.Index) -> pd.DataFrame:
    # A step rebuilt without set_output gives an array; the names are needed.
    if isinstance(Z, pd.DataFrame):
        return Z
    names = [str(n) for n in leaf.get_feature_names_out()]
    return pd.DataFrame(Z, columns=names, index=index)


@dataclass
class _Grouping:
    """What summing columns back to fields needs, computed once per model."""

    fields: list[str]
    share: np.ndarray | None  # design columns -> feature-pipeline columns
    static: np.ndarray  # feature-pipeline columns -> fields, except row minima
    # (position in the feature columns, RowMin name, the RowMin, its inputs ->
    # fields)
    rowmins: list[tuple[int, str, RowMin, np.ndarray]]


class Explainer:
    """:func:`contributions` for one fitted model.

    What does not depend on X (the checks, the array form of the feature pipeline,
    the matrices that sum columns back to fields) is prepared once, so a caller
    explaining one patient at a time (:class:`plo_risk.assess.RiskModel`) can keep
    it. The model must not be refitted while an instance is kept.
    """

    @classmethod
    def of_features(cls, features_pipe: Pipeline) -> Explainer:
        """An explainer of a feature pipeline alone: it traces records to the
        pipeline's columns and sums column contributions back to fields (for the
        horizon model, whose learner reads those columns and the course ahead)."""
        self = cls.__new__(cls)
        self.model = None
        self.estimator = None
        self.features_pipe = features_pipe
        self.leaves = _leaves(features_pipe)
        self.middle = []
        self.clf = None
        try:
            self.arrays = ArrayPipeline(features_pipe)
        except TypeError:
            self.arrays = None
        self.xgboost_arrays = self.arrays is not None
        self._grouping = None
        return self

    def __init__(self, model: PlattCalibratedClassifier, estimator: Pipeline):
        self.model = model
        self.estimator = estimator
        self.features_pipe = estimator[0]
        self.leaves = _leaves(self.features_pipe)
        self.middle = _middle_leaves(estimator)
        self.clf = estimator[-1]
        try:
            self.arrays: ArrayPipeline | None = ArrayPipeline(self.features_pipe)
        except TypeError:
            self.arrays = None
        # xgboost without steps in between reads the feature matrix directly:
        # keep it a float32 array, as xgboost computes in float32 anyway.
        self.xgboost_arrays = (
            self.arrays is not None
            and not self.middle
            and family_of(self.clf).reads_arrays(self.clf, self.arrays.names)
        )
        self._grouping: _Grouping | None = None

    # ------------------------------------------------------------------ trace
    def trace(self, X: pd.DataFrame | Mapping[str, Any]) -> _Trace:
        if self.arrays is None:
            return self._trace_frames(X)
        features, inputs = self.arrays(X)
        names = self.arrays.names
        taps: dict[str, tuple[RowMin, Any, list[Any]]] = {}
        for k, leaf in enumerate(self.leaves[1:], start=1):
            if isinstance(leaf, RowMin):
                taps[leaf.name] = (leaf, inputs[k - 1], self.leaves[:k])
        if self.xgboost_arrays:
            design = np.ascontiguousarray(features, dtype=np.float32)
            return _Trace(design, list(names), list(names), taps)
        index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(1)
        Z = pd.DataFrame(features, columns=list(names), index=index)
        for leaf in self.middle:
            Z = _as_frame(leaf.transform(Z), leaf, index)
        return _Trace(Z, [str(c) for c in Z.columns], list(names), taps)

    def _trace_frames(self, X: pd.DataFrame) -> _Trace:
        Z = X
        taps: dict[str, tuple[RowMin, Any, list[Any]]] = {}
        for k, leaf in enumerate(self.leaves):
            if isinstance(leaf, RowMin):
                taps[leaf.name] = (leaf, Z, self.leaves[:k])
            Z = _as_frame(leaf.transform(Z), leaf, X.index)
        features = [str(c) for c in Z.columns]
        for leaf in self.middle:
            Z = _as_frame(leaf.transform(Z), leaf, X.index)
        return _Trace(Z, [str(c) for c in Z.columns], features, taps)

    # -------------------------------------------------------------- explain
    def explain(
        self, X: pd.DataFrame | Mapping[str, Any], by: str
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(values, base, column names) of :func:`contributions`."""
        trace = self.trace(X)
        clf = self.clf
        values, base = _decompose(clf, trace.design)
        slope, intercept = float(self.model.slope_), float(self.model.intercept_)
        values = values * slope
        base = intercept + slope * base
        # The same float operations as model.decision_function(X).
        expected = intercept + slope * margin(clf, trace.design)
        residual = expected - (base + values.sum(axis=1))
        worst = float(np.max(np.abs(residual), initial=0.0))
        if not worst <= _ADDITIVITY_TOLERANCE:
            raise RuntimeError(
                f"contributions of {type(clf).__name__} miss its log-odds by up to "
                f"{worst:.3g} (more than {_ADDITIVITY_TOLERANCE}); the explainer and "
                "the model disagree, please report this with your library versions"
            )
        base = base + residual  # float32 rounding of xgboost, <= ~1e-5
        if by == "column":
            return values, base, list(trace.design_columns)
        values, fields = self._group(values, trace)
        return values, base, fields

    # ------------------------------------------------------------- grouping
    def grouping(self, trace: _Trace) -> _Grouping:
        if self._grouping is None:
            self._grouping = self._make_grouping(trace)
        return self._grouping

    def _make_grouping(self, trace: _Trace) -> _Grouping:
        encoder = self.leaves[0]
        fields = [str(n) for n in encoder.feature_names_in_]
        feature_cols = trace.features_columns

        # Design columns -> feature-pipeline columns, through the steps in between.
        share = None
        for leaf in self.middle:
            m = _share_matrix(
                [str(n) for n in leaf.get_feature_names_out()],
                [str(n) for n in leaf.feature_names_in_],
                _output_inputs(leaf),
            )
            share = m if share is None else m @ share

        # Feature-pipeline columns -> fields: equal shares, except row minima.
        rowmins = [c for c in feature_cols if c in trace.rowmin_inputs]
        static = _share_matrix(
            feature_cols, fields, feature_sources(self.features_pipe), skip=rowmins
        )
        minima = []
        for c in rowmins:
            leaf, _, before = trace.rowmin_inputs[c]
            names_in = [str(n) for n in leaf.feature_names_in_]
            inputs = [names_in[j] for j in leaf.columns_]
            if before:
                upstream = feature_sources(
                    Pipeline([(str(i), s) for i, s in enumerate(before)])
                )
            else:
                upstream = {n: [n] for n in names_in}
            minima.append(
                (
                    feature_cols.index(c),
                    c,
                    leaf,
                    _share_matrix(inputs, fields, upstream),
                )
            )
        return _Grouping(fields, share, static, minima)

    def _group(self, values: np.ndarray, trace: _Trace) -> tuple[np.ndarray, list]:
        """Sum column contributions (n, design columns) back to catalog fields."""
        g = self.grouping(trace)
        by_feature = values if g.share is None else values @ g.share
        out = by_feature @ g.static
        for position, name, leaf, to_fields in g.rowmins:
            Z = trace.rowmin_inputs[name][1]
            contrib = by_feature[:, position]
            vals = np.asarray(Z, dtype=np.float64)[:, leaf.columns_]
            missing = np.isnan(vals)
            winner = np.argmin(np.where(missing, np.inf, vals), axis=1)
            pick = np.zeros_like(vals)
            pick[np.arange(len(vals)), winner] = 1.0
            none = missing.all(axis=1)
            pick[none] = 1.0 / vals.shape[1]
            out += (pick * contrib[:, None]) @ to_fields
        return out, list(g.fields)


# --------------------------------------------------------------------------------
# Public API


def _check(model: Any, X: Any) -> Pipeline:
    _check_model(model)
    if not isinstance(X, pd.DataFrame):
        raise ValueError(
            "contributions reads the canonical frame by column name: X must be a "
            f"pandas DataFrame (the output of plo_risk.validate_frame); got "
            f"{type(X).__name__}"
        )
    return _check_estimator(model)


def _check_model(model: Any) -> None:
    if not isinstance(model, PlattCalibratedClassifier):
        raise TypeError(
            "contributions explains a plo_risk model (a PlattCalibratedClassifier "
            f"from plo_risk.models.make_model); got {type(model).__name__}"
        )
    check_is_fitted(model)


def horizon_contributions(
    horizon_model: Any,
    X: pd.DataFrame,
    horizon: Any,
    *,
    changes: Mapping[str, Any] | None = None,
) -> Explanation:
    """Field contributions to the calibrated log-odds of a horizon risk.

    The hazard model's exact TreeSHAP values (:meth:`HazardModel.explain
    <plo_risk.model.horizon.HazardModel.explain>`: what they add up to is
    :data:`~plo_risk.model.horizon.EXPLANATION_MEANING`), its feature-pipeline
    columns summed back to the fields as :func:`contributions` sums them, and each
    column of the course ahead given to the fields it is computed from
    (:data:`~plo_risk.model.horizon.TIME_FIELDS`).

    Returns
    -------
    Explanation
        ``values`` (one column per field, catalog order) plus ``base`` equal the
        horizon's calibrated log-odds, row by row.
    """
    expl = horizon_model.explain(X, horizon, changes)
    explainer = _features_explainer(horizon_model)
    trace = explainer.trace(X)
    n_base = len(trace.features_columns)
    by_field, fields = explainer._group(expl.values[:, :n_base], trace)
    position = {f: j for j, f in enumerate(fields)}
    for j, column in enumerate(expl.columns[n_base:], start=n_base):
        owners = [f for f in TIME_FIELDS.get(column, ()) if f in position]
        if not owners:
            owners = ["months_postpartum"]
        for f in owners:
            by_field[:, position[f]] += expl.values[:, j] / len(owners)
    return Explanation(
        pd.DataFrame(by_field, columns=fields, index=X.index),
        expl.base,
    )


def _features_explainer(horizon_model: Any) -> Explainer:
    cached = getattr(horizon_model, "_explainer_cache", None)
    if cached is None or cached.features_pipe is not horizon_model.features_:
        cached = Explainer.of_features(horizon_model.features_)
        horizon_model._explainer_cache = cached
    return cached


def explainer_for(model: Any) -> Explainer:
    """An :class:`Explainer` of ``model``, after the checks of :func:`contributions`."""
    _check_model(model)
    return Explainer(model, _check_estimator(model))


def _check_estimator(model: PlattCalibratedClassifier) -> Pipeline:
    estimator = model.estimator_
    if (
        not isinstance(estimator, Pipeline)
        or len(estimator) < 2
        or not isinstance(estimator[0], Pipeline)
        or not isinstance(_leaves(estimator[0])[0], CatalogEncoder)
    ):
        raise ValueError(
            "contributions needs a model whose estimator_ is Pipeline([('features', "
            "<feature pipeline of plo_risk.features.build_pipeline>), ..., "
            "('model', <classifier>)]), as plo_risk.models.make_model builds"
        )
    return estimator


@validate_params(
    {
        "model": "no_validation",
        "X": "no_validation",
        "by": [StrOptions({"field", "column"})],
    },
    prefer_skip_nested_validation=True,
)
def contributions(
    model: PlattCalibratedClassifier, X: pd.DataFrame, *, by: str = "field"
) -> Explanation:
    """Additive contributions of each field (or column) to the calibrated log-odds.

    See the module docstring for the method of each model kind and how columns
    computed from several fields are shared among them.

    Parameters
    ----------
    model : PlattCalibratedClassifier
        A fitted model of :func:`plo_risk.models.make_model`.
    X : pandas.DataFrame of shape (n_samples, n_fields)
        The canonical frame (``validate_frame(...).valid``); columns that are not
        catalog fields (``patient_id``, ``fracture``) are ignored.
    by : {"field", "column"}, default="field"
        ``"field"``: one column per catalog field read by the model, in catalog
        order. ``"column"``: one column per model-matrix column (one-hot,
        engineered, spline and indicator columns as the classifier sees them).

    Returns
    -------
    Explanation
        ``values`` (DataFrame indexed like X) and ``base``, with
        ``base + values.sum(axis=1) == model.decision_function(X)`` (< 1e-5).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the model is not fitted (a ValueError).
    ValueError
        If X lacks a catalog field (the feature pipeline's message names it) or
        the model's classifier is not one this module can explain.
    TypeError
        If ``model`` is not a :class:`~plo_risk.models.PlattCalibratedClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.explain import contributions
    >>> from plo_risk.model.zoo import make_model
    >>> from plo_risk.data.schema import validate_frame
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> cohort = validate_frame(generate_cohort(300, seed=0)).valid
    >>> model = make_model("xgboost", params={"n_estimators": 10, "n_jobs": 1}, cv=2)
    >>> model = model.fit(cohort, cohort["fracture"].astype(int))
    >>> expl = contributions(model, cohort.head(5))
    >>> expl.values.columns[:3].tolist()
    ['age_years', 'ancestry', 'parity']
    >>> bool(np.allclose(expl.logit, model.decision_function(cohort.head(5))))
    True
    """
    estimator = _check(model, X)
    values, base, columns = Explainer(model, estimator).explain(X, by)
    return Explanation(
        values=pd.DataFrame(values, index=X.index, columns=columns),
        base=base,
        by=by,
    )


@validate_params(
    {
        "model": "no_validation",
        "X": "no_validation",
        "by": [StrOptions({"field", "column"})],
    },
    prefer_skip_nested_validation=True,
)
def global_importance(
    model: PlattCalibratedClassifier, X: pd.DataFrame, *, by: str = "field"
) -> pd.Series:
    """Mean absolute contribution of each field over the rows of X.

    Parameters
    ----------
    model : PlattCalibratedClassifier
        A fitted model of :func:`plo_risk.models.make_model`.
    X : pandas.DataFrame
        The canonical frame.
    by : {"field", "column"}, default="field"
        As in :func:`contributions`.

    Returns
    -------
    pandas.Series
        Mean |contribution| in calibrated log-odds, indexed by field, largest
        first (ties in catalog order).

    Examples
    --------
    >>> from plo_risk.explain import global_importance
    >>> from plo_risk.model.zoo import make_model
    >>> from plo_risk.data.schema import validate_frame
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> cohort = validate_frame(generate_cohort(300, seed=0)).valid
    >>> model = make_model("clinical_rule", cv=2)
    >>> model = model.fit(cohort, cohort["fracture"].astype(int))
    >>> importance = global_importance(model, cohort)
    >>> importance.index[0].startswith("z_")
    True
    >>> float(importance["age_years"])
    0.0
    """
    values = contributions(model, X, by=by).values
    importance = values.abs().mean(axis=0)
    importance.name = "mean_abs_contribution"
    return importance.sort_values(ascending=False, kind="stable")


def fold_contributions(
    values: pd.DataFrame,
    frame: pd.DataFrame,
    *,
    catalog: Catalog | None = None,
    derived: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Field contributions as a clinician reads them: one per value she gave,
    and one for everything not known.

    The one rule behind every explanation shown (the assessment's factors, its
    waterfall plot, the top factors of batch scoring):

    - a value that was not given but derived from another (a T- or Z-score from
      the BMD, or the BMD from a score) is not a factor of its own: its
      contribution goes to the value it came from, the site's first given field
      of BMD, T-score, Z-score;
    - every field not given (missing) is not a finding: all their contributions
      go together to one column, :data:`NOT_KNOWN`.

    Each row's sum is unchanged, so the folded contributions stay additive.

    Parameters
    ----------
    values : pandas.DataFrame
        Field contributions (``contributions(model, frame, by="field").values``).
    frame : pandas.DataFrame
        The canonical rows they explain (NaN = not given).
    catalog : Catalog, default=None
        The BMD sites and their scores (default: the shipped catalog).
    derived : pandas.DataFrame, default=None
        Bool per BMD/T/Z field and row: derived, not given
        (:attr:`plo_risk.ValidatedFrame.derived`). None: every value was given.

    Returns
    -------
    pandas.DataFrame
        The columns of ``values``, then :data:`NOT_KNOWN`.

    Examples
    --------
    >>> import pandas as pd
    >>> from plo_risk.explain import fold_contributions
    >>> v = pd.DataFrame({"bmd_lumbar_spine": [0.3], "t_lumbar_spine": [0.2],
    ...                   "z_lumbar_spine": [0.1], "heparin": [0.05]})
    >>> x = pd.DataFrame({"bmd_lumbar_spine": [0.8], "t_lumbar_spine": [-2.5],
    ...                   "z_lumbar_spine": [-2.5], "heparin": [float("nan")]})
    >>> d = pd.DataFrame({"bmd_lumbar_spine": [False], "t_lumbar_spine": [True],
    ...                   "z_lumbar_spine": [True]})
    >>> fold_contributions(v, x, derived=d).round(2).iloc[0].to_dict()
    {'bmd_lumbar_spine': 0.6, 't_lumbar_spine': 0.0, 'z_lumbar_spine': 0.0, \
'heparin': 0.0, 'not_known': 0.05}
    """
    cat = catalog if catalog is not None else load_catalog()
    cols = list(values.columns)
    A = values.to_numpy(dtype=np.float64, copy=True)
    present = (
        np.column_stack([frame[c].notna().to_numpy() for c in cols])
        if cols
        else np.zeros((len(values), 0), dtype=bool)
    )
    not_known = np.where(present, 0.0, A).sum(axis=1)
    A[~present] = 0.0
    pos = {c: j for j, c in enumerate(cols)}
    if derived is not None:
        for site in cat.bmd_sites:
            scores = sorted(cat.scores_of(site.name), key=lambda f: f.score != "t")
            group = [f for f in [site.name, *(f.name for f in scores)] if f in pos]
            if len(group) < 2:
                continue
            idx = [pos[f] for f in group]
            der = np.column_stack(
                [
                    derived[f].to_numpy(dtype=bool)
                    if f in derived.columns
                    else np.zeros(len(A), dtype=bool)
                    for f in group
                ]
            )
            der &= present[:, idx]
            given = present[:, idx] & ~der
            rows = given.any(axis=1) & der.any(axis=1)
            if not rows.any():
                continue
            block = A[:, idx]
            moved = np.where(der, block, 0.0).sum(axis=1)
            block[der & rows[:, None]] = 0.0
            source = np.argmax(given, axis=1)
            r = np.flatnonzero(rows)
            block[r, source[r]] += moved[r]
            A[:, idx] = block
    out = pd.DataFrame(A, index=values.index, columns=cols)
    out[NOT_KNOWN] = not_known
    return out


def value_text(value: Any, field: str, catalog: Catalog | None = None) -> str:
    """A field's value as a clinician reads it: ``yes``/``no``, a category's
    words, a number with its unit, ``not known`` when missing.

    Examples
    --------
    >>> from plo_risk.explain import value_text
    >>> value_text(1.0, "breastfeeding_now"), value_text("east_asian", "ancestry")
    ('yes', 'east asian')
    >>> value_text(0.8523, "bmd_lumbar_spine"), value_text(None, "heparin")
    ('0.852 g/cm2', 'not known')
    """
    cat = catalog if catalog is not None else load_catalog()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "not known"
    if value is pd.NA:
        return "not known"
    feat = cat[field] if field in cat else None
    if feat is not None and feat.dtype == "bool":
        return "yes" if bool(value) else "no"
    if feat is not None and feat.dtype == "category":
        return str(value).replace("_", " ")
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, float, np.number)):
        x = float(value)
        if feat is not None and feat.dtype == "int":
            text = f"{x:.0f}"
        else:
            text = f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
        unit = feat.unit if feat is not None else ""
        return f"{text} {unit}".strip() if unit and unit != "1" else text
    return str(value)


@validate_params(
    {
        "model": "no_validation",
        "frame": "no_validation",
        "top_k": [Interval(Integral, 1, None, closed="left")],
        "derived": "no_validation",
        "catalog": [Catalog, None],
    },
    prefer_skip_nested_validation=True,
)
def explain_cohort(
    model: PlattCalibratedClassifier,
    frame: pd.DataFrame,
    *,
    top_k: int = 3,
    derived: pd.DataFrame | None = None,
    catalog: Catalog | None = None,
    horizon: Any = None,
) -> pd.DataFrame:
    """The ``top_k`` factors that move each patient's risk most, with their share.

    Factors follow :func:`fold_contributions`: the fields given (a derived T/Z or
    BMD folded into the value it came from), and :data:`NOT_KNOWN` for every
    input not given together.

    Parameters
    ----------
    model : PlattCalibratedClassifier
        A fitted model of :func:`plo_risk.models.make_model`.
    frame : pandas.DataFrame
        The canonical frame (it is not validated again).
    top_k : int, default=3
        Number of fields per row (at most the number of fields).
    derived : pandas.DataFrame, default=None
        Which BMD/T/Z values were derived, not given
        (:attr:`plo_risk.ValidatedFrame.derived`), row for row with ``frame``;
        None: all were given.
    catalog : Catalog, default=None
    horizon : float or "end", default=None
        Explain the risk at this horizon of the model's horizon model
        (:func:`horizon_contributions`) instead of the model's own risk; ignored
        for a model without one.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``frame``, with columns ``factor_1, contribution_1, ...,
        factor_k, contribution_k``: field names (or ``"not_known"``) by
        decreasing |contribution| (calibrated log-odds; ties in catalog order).
        Where fewer than ``k`` factors contribute, the remaining ones are None
        with contribution 0.

    Examples
    --------
    >>> from plo_risk.explain import explain_cohort
    >>> from plo_risk.model.zoo import make_model
    >>> from plo_risk.data.schema import validate_frame
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> cohort = validate_frame(generate_cohort(300, seed=0)).valid
    >>> model = make_model("xgboost", params={"n_estimators": 10, "n_jobs": 1}, cv=2)
    >>> model = model.fit(cohort, cohort["fracture"].astype(int))
    >>> explain_cohort(model, cohort.head(3), top_k=2).columns.tolist()
    ['factor_1', 'contribution_1', 'factor_2', 'contribution_2']
    """
    hm = getattr(model, "horizon_", None)
    if horizon is not None and hm is not None:
        raw = horizon_contributions(hm, frame, horizon).values
    else:
        raw = contributions(model, frame, by="field").values
    values = fold_contributions(raw, frame, catalog=catalog, derived=derived)
    A = values.to_numpy()
    names = np.asarray(values.columns, dtype=object)
    if top_k > A.shape[1] - 1:
        raise ValueError(
            f"The 'top_k' parameter of explain_cohort must be at most the number of "
            f"fields ({A.shape[1] - 1}). Got {top_k} instead."
        )
    order = np.argsort(-np.abs(A), axis=1, kind="stable")[:, :top_k]
    top = np.take_along_axis(A, order, axis=1)
    factors = names[order]
    factors[top == 0.0] = None
    out: dict[str, Any] = {}
    for k in range(top_k):
        # object dtype: the same None for "no factor" under pandas 2 and 3.
        out[f"factor_{k + 1}"] = pd.Series(
            factors[:, k], index=values.index, dtype=object
        )
        out[f"contribution_{k + 1}"] = pd.Series(top[:, k], index=values.index)
    return pd.DataFrame(out, index=values.index)


# --------------------------------------------------------------------------------
# Plots


def _labels(fields: list[str], catalog: Catalog | None) -> list[str]:
    cat = catalog if catalog is not None else load_catalog()
    return [cat[f].label if f in cat else f for f in fields]


def _field_numbers(X: pd.DataFrame, fields: list[str]) -> np.ndarray:
    """Field values as numbers for colouring (categories as their codes)."""
    out = np.full((len(X), len(fields)), np.nan)
    for j, f in enumerate(fields):
        s = X[f]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = s.cat.codes.to_numpy().astype(np.float64)
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    return out


@validate_params(
    {
        "model": "no_validation",
        "X": "no_validation",
        "max_display": [Interval(Integral, 1, None, closed="left")],
        "catalog": [Catalog, None],
        "explanation": [Explanation, None],
    },
    prefer_skip_nested_validation=True,
)
def plot_beeswarm(
    model: PlattCalibratedClassifier,
    X: pd.DataFrame,
    *,
    max_display: int = 15,
    catalog: Catalog | None = None,
    explanation: Explanation | None = None,
) -> Figure:
    """Beeswarm of the field contributions over the rows of X (``shap`` plot).

    Each dot is a patient; its position is the field's contribution to the
    calibrated log-odds, its colour the field's value (categories by their code).

    Parameters
    ----------
    model : PlattCalibratedClassifier
        A fitted model of :func:`plo_risk.models.make_model`.
    X : pandas.DataFrame
        The canonical frame.
    max_display : int, default=15
        Fields shown; the others are summed into one row.
    catalog : Catalog, default=None
        Source of the field labels (default: the shipped catalog).
    explanation : Explanation, default=None
        ``contributions(model, X, by="field")`` when already computed.

    Returns
    -------
    matplotlib.figure.Figure
        Not shown nor saved; close it with ``matplotlib.pyplot.close(fig)``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from plo_risk.explain import plot_beeswarm
    >>> from plo_risk.model.zoo import make_model
    >>> from plo_risk.data.schema import validate_frame
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> cohort = validate_frame(generate_cohort(300, seed=0)).valid
    >>> model = make_model("xgboost", params={"n_estimators": 10, "n_jobs": 1}, cv=2)
    >>> model = model.fit(cohort, cohort["fracture"].astype(int))
    >>> fig = plot_beeswarm(model, cohort, max_display=5)
    >>> len(fig.axes[0].get_yticklabels())
    5
    >>> plt.close(fig)
    """
    # optional heavy imports (matplotlib, shap with numba): plots only
    import matplotlib.pyplot as plt
    import shap

    expl = (
        explanation if explanation is not None else contributions(model, X, by="field")
    )
    fields = list(expl.values.columns)
    data = shap.Explanation(
        values=expl.values.to_numpy(),
        base_values=expl.base,
        data=_field_numbers(X, fields),
        feature_names=_labels(fields, catalog),
    )
    fig = plt.figure()
    shap.plots.beeswarm(data, max_display=max_display, show=False)
    fig.axes[0].set_xlabel("Contribution to the log-odds of fracture")
    return fig


@validate_params(
    {
        "model": "no_validation",
        "x_row": "no_validation",
        "max_display": [Interval(Integral, 1, None, closed="left")],
        "catalog": [Catalog, None],
    },
    prefer_skip_nested_validation=True,
)
def plot_waterfall(
    model: PlattCalibratedClassifier,
    x_row: pd.DataFrame | pd.Series,
    *,
    max_display: int = 10,
    catalog: Catalog | None = None,
    derived: pd.DataFrame | None = None,
) -> Figure:
    """Waterfall of one patient's field contributions (``shap`` plot).

    From the base log-odds at the bottom to the patient's calibrated log-odds at
    the top, each bar is one value she gave, labelled ``value = label`` in words
    (``yes = Breastfeeding at assessment``), and one bar ``not known`` for every
    input not given together: the rule of :func:`fold_contributions`, as in the
    assessment's text.

    Parameters
    ----------
    model : PlattCalibratedClassifier
        A fitted model of :func:`plo_risk.models.make_model`.
    x_row : pandas.DataFrame with one row, or pandas.Series
        One patient of the canonical frame.
    max_display : int, default=10
        Fields shown; the others are summed into one bar.
    catalog : Catalog, default=None
        Source of the field labels (default: the shipped catalog).
    derived : pandas.DataFrame, default=None
        The row's derived (not given) BMD/T/Z values, as
        :attr:`plo_risk.ValidatedFrame.derived`; None: all were given.

    Returns
    -------
    matplotlib.figure.Figure
        Not shown nor saved; close it with ``matplotlib.pyplot.close(fig)``.

    Raises
    ------
    ValueError
        If ``x_row`` has more or fewer than one row.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from plo_risk.explain import plot_waterfall
    >>> from plo_risk.model.zoo import make_model
    >>> from plo_risk.data.schema import validate_frame
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> cohort = validate_frame(generate_cohort(300, seed=0)).valid
    >>> model = make_model("xgboost", params={"n_estimators": 10, "n_jobs": 1}, cv=2)
    >>> model = model.fit(cohort, cohort["fracture"].astype(int))
    >>> fig = plot_waterfall(model, cohort.iloc[[0]], max_display=4)
    >>> labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    >>> labels[0].endswith("other features")
    True
    >>> plt.close(fig)
    >>> fig = plot_waterfall(model, cohort.iloc[[0]], max_display=60)  # every bar
    >>> labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    >>> int(cohort.iloc[0].isna().sum()) > 0, any("not known = " in t for t in labels)
    (True, True)
    >>> plt.close(fig)
    """
    # optional heavy imports (matplotlib, shap with numba): plots only
    import matplotlib.pyplot as plt
    import shap

    if isinstance(x_row, pd.Series):
        x_row = x_row.to_frame().T.infer_objects()
    if not isinstance(x_row, pd.DataFrame) or len(x_row) != 1:
        shape = getattr(x_row, "shape", None)
        raise ValueError(
            "plot_waterfall explains one patient: x_row must be a DataFrame with "
            f"one row or a Series; got {type(x_row).__name__} of shape {shape}. "
            "Use plot_beeswarm for several rows"
        )
    cat = catalog if catalog is not None else load_catalog()
    expl = contributions(model, x_row, by="field")
    folded = fold_contributions(expl.values, x_row, catalog=cat, derived=derived)
    row = folded.iloc[0]
    fields = [f for f in folded.columns if f != NOT_KNOWN and x_row[f].notna().iloc[0]]
    fields = [f for f in fields if row[f] != 0.0 or not _is_derived(derived, f)]
    names = _labels(fields, cat)
    shown = [value_text(x_row[f].iloc[0], f, cat) for f in fields]
    values = [float(row[f]) for f in fields]
    n_missing = int(x_row[list(expl.values.columns)].isna().iloc[0].sum())
    if n_missing:
        names.append(f"{n_missing} input{'s' if n_missing > 1 else ''}")
        shown.append("not known")
        values.append(float(row[NOT_KNOWN]))
    data = shap.Explanation(
        values=np.asarray(values),
        base_values=float(expl.base[0]),
        data=np.asarray(shown, dtype=object),
        feature_names=names,
    )
    fig = plt.figure()
    shap.plots.waterfall(data, max_display=max_display, show=False)
    return fig


def _is_derived(derived: pd.DataFrame | None, field: str) -> bool:
    return (
        derived is not None
        and field in derived.columns
        and bool(derived[field].to_numpy()[0])
    )

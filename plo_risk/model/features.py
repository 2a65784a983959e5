"""The feature pipeline: canonical frame in, numeric model matrix out.

:func:`build_pipeline` turns the canonical frame (the output of
``plo_risk.schema.validate_frame(...).valid``: one column per catalog field, in
canonical units) into a float64 matrix with readable column names. It is a plain
scikit-learn :class:`~sklearn.pipeline.Pipeline` of small, generic transformers:

``encode``
    :class:`CatalogEncoder` selects the catalog fields (other columns such as
    ``patient_id`` or ``fracture`` are dropped), casts booleans to 0/1 and one-hot
    encodes categories with the catalog's own categories.
one step per engineered feature
    :class:`Sum`, :class:`Product`, :class:`Ratio`, :class:`Bands` and
    :class:`RowMin` each append one column computed from named columns
    (see :data:`ENGINEERED_FEATURES` for the list with sources).
``impute`` (only with ``impute=True``)
    :class:`MedianImputer` fills missing values with training medians and adds
    ``<column>_missing`` indicators, for models that cannot take NaN.

Missing values stay NaN otherwise (xgboost routes them itself). A missing
``ancestry`` encodes as an all-zero row of its one-hot columns: no NaN in one-hot
columns, and the all-zero pattern is unique to "unknown" so models can still use it.

The fitted pipeline is plain numbers and strings: :func:`pipeline_to_dict` and
:func:`pipeline_from_dict` write and rebuild it as JSON without pickle.
:func:`feature_sources` maps every output column to the catalog fields it was
computed from (to sum explanations back to input fields) and
:func:`monotone_constraints` derives the champion's monotone constraints from the
catalog's ``direction``.
"""

from __future__ import annotations

import math
import reprlib
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_array,
    check_is_fitted,
    validate_data,
)

from plo_risk.data.catalog import Catalog, load_catalog

__all__ = [
    "ArrayPipeline",
    "CALCIUM_RECOMMENDED_MG_DAY",
    "CTX_UPPER_REFERENCE_NG_ML",
    "ENGINEERED_FEATURES",
    "P1NP_UPPER_REFERENCE_NG_ML",
    "VITAMIN_D_BAND_EDGES_NG_ML",
    "Bands",
    "CatalogEncoder",
    "MedianImputer",
    "Product",
    "Ratio",
    "RowMin",
    "Sum",
    "blank_frame",
    "build_pipeline",
    "feature_sources",
    "monotone_constraints",
    "pipeline_from_dict",
    "pipeline_to_dict",
    "transform_numpy",
]

# --------------------------------------------------------------------------------
# Constants of the engineered features, each with its source.
# Sources are cited by key; the keys are in docs/references/*.bib.

#: Recommended calcium intake in pregnancy and lactation, mg/day
#: [@mishra2024, Prevention and Table 2]: "regular intake of calcium (1500 mg per day)".
CALCIUM_RECOMMENDED_MG_DAY = 1500.0

#: 25(OH)D band edges in ng/mL: < 12 severe deficiency and 12 to < 20 deficiency
#: [@zhao2012], >= 20 sufficient [@iom2011], >= 30 sufficient [@holick2011]. Bands
#: are numbered 0 to 3.
VITAMIN_D_BAND_EDGES_NG_ML = (12.0, 20.0, 30.0)

#: Upper reference limit of serum CTX in young women, ng/mL
#: [@eastell2012, 0.111-0.791 ng/mL].
CTX_UPPER_REFERENCE_NG_ML = 0.791

#: Upper reference limit of serum P1NP in young women, ng/mL
#: [@eastell2012, 17.3-83.4 ng/mL].
P1NP_UPPER_REFERENCE_NG_ML = 83.4

#: The engineered features :func:`build_pipeline` appends, in output order, with
#: what they compute and where their constants come from. A feature is left out when
#: the catalog lacks one of the fields it needs.
ENGINEERED_FEATURES: dict[str, str] = {
    "cumulative_lactation_months": (
        "prior_lactation_months + lactation_months; a missing prior_lactation_months "
        "counts as 0 when parity == 1 (a first birth has no earlier lactation)"
    ),
    "lactation_x_parity": "lactation_months * parity",
    "calcium_adequacy": (
        "calcium_intake_mg_day / 1500 ([@mishra2024, Prevention and Table 2]: "
        "1500 mg/day)"
    ),
    "vitamin_d_band": (
        "vitamin_d_25oh band: 0 below 12, 1 for 12 to <20, 2 for 20 to <30, "
        "3 from 30 ng/mL (severe deficiency and deficiency [@zhao2012], sufficiency "
        "[@iom2011] and [@holick2011])"
    ),
    "lowest_z": "lowest Z-score over the DXA sites measured (NaN if none)",
    "lowest_t": "lowest T-score over the DXA sites measured (NaN if none)",
    "ctx_ratio": ("ctx / 0.791, the upper reference limit ([@eastell2012])"),
    "p1np_ratio": ("p1np / 83.4, the upper reference limit ([@eastell2012])"),
    "turnover_uncoupling": (
        "log(ctx_ratio) - log(p1np_ratio): resorption relative to formation, "
        "0 when both sit at the same fraction of their reference limit"
    ),
}


# --------------------------------------------------------------------------------
# Generic column-math transformers


def _is_dataframe(X: Any) -> bool:
    return isinstance(X, pd.DataFrame)


class _ColumnAppender(TransformerMixin, BaseEstimator, metaclass=ABCMeta):
    """Base of the transformers that append one computed column to their input.

    Subclasses resolve their column parameters to positions in ``_resolve`` (a
    string names a column of a DataFrame, an int is a position) and compute the new
    column in ``_compute``. The output is the input followed by the new column,
    named ``name``.
    """

    _parameter_constraints: dict = {"name": [str]}

    @abstractmethod
    def _resolve(self, index) -> None:
        """Set the fitted positions of the columns used, via ``index(spec, param)``."""

    @abstractmethod
    def _compute(self, X: np.ndarray) -> np.ndarray:
        """The new column for the validated float64 array ``X``."""

    @abstractmethod
    def _input_signs(self) -> list[tuple[int, int]]:
        """(position, sign) of every input used: the sign of the new column's
        change when that input grows (+1, -1, or 0 when not monotone)."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the input and resolve the columns used.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Numeric input; NaN allowed.
        y : None
            Ignored.

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        names = [str(n) for n in _check_feature_names_in(self, None)]
        if self.name in names:
            raise ValueError(
                f"{type(self).__name__}: name={self.name!r} is already a column of "
                "X; choose another name for the new column"
            )
        has_names = hasattr(self, "feature_names_in_")

        def index(spec, param: str) -> int:
            return _column_position(
                self, spec, param, names if has_names else None, X.shape[1]
            )

        self._resolve(index)
        return self

    def transform(self, X):
        """Append the new column.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features + 1)
            A DataFrame with ``set_output(transform="pandas")``.
        """
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan"
        )
        return self._transform_array(X)

    def _transform_array(self, X: np.ndarray) -> np.ndarray:
        # transform() after its input checks; X is a float64 array of the fitted
        # width without infinity.
        out = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float64)
        out[:, :-1] = X
        out[:, -1] = self._new_column(X)
        return out

    def _new_column(self, X: np.ndarray) -> np.ndarray:
        # The appended column (transform_numpy writes it in place).
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.asarray(self._compute(X), dtype=np.float64)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Input names followed by ``name``.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Must match ``feature_names_in_`` when given.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        return np.asarray([*names, self.name], dtype=object)

    def _output_sources(self) -> dict[str, list[tuple[str, int]]]:
        names = [str(n) for n in _check_feature_names_in(self, None)]
        sources = {n: [(n, 1)] for n in names}
        sources[self.name] = [(names[i], s) for i, s in self._input_signs()]
        return sources

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _column_position(
    est: BaseEstimator,
    spec: Any,
    param: str,
    names: list[str] | None,
    n_features: int,
) -> int:
    cls = type(est).__name__
    if isinstance(spec, str):
        if names is None:
            raise ValueError(
                f"{cls}: {param} names the column {spec!r}, but X has no column "
                "names; pass a DataFrame (in a Pipeline, set_output(transform="
                "'pandas') keeps the names between steps) or use a position"
            )
        if spec not in names:
            raise ValueError(
                f"{cls}: {param} names the column {spec!r}, but X has no such "
                f"column (it has {len(names)}: {_preview(names)})"
            )
        return names.index(spec)
    if isinstance(spec, Integral) and not isinstance(spec, bool):
        if not 0 <= spec < n_features:
            raise ValueError(
                f"{cls}: {param}={spec} is out of range for X with "
                f"{n_features} feature(s)"
            )
        return int(spec)
    raise TypeError(
        f"{cls}: {param}={spec!r}: a column is given by name (str) or position "
        f"(int), got {type(spec).__name__}"
    )


def _preview(names: Sequence[str], k: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (", ..." if len(names) > k else "")


def _resolve_columns(est: BaseEstimator, index) -> list[int]:
    """Positions of ``est.columns`` (every input column when it is None)."""
    if est.columns is None:
        return list(range(est.n_features_in_))
    return [index(c, "columns") for c in _column_list(est.columns, "columns", est)]


def _column_list(spec: Any, param: str, est: BaseEstimator) -> list:
    columns = list(spec)
    if not columns:
        raise ValueError(f"{type(est).__name__}: {param} must name at least one column")
    return columns


class RowMin(_ColumnAppender):
    """Append the row-wise minimum of some columns, ignoring missing values.

    The minimum is NaN only when all the columns are missing in that row.

    Parameters
    ----------
    columns : list of str or int, default=None
        Columns by name (DataFrame input) or position; ``None`` uses all columns.
    name : str, default="row_min"
        Name of the new column.

    Attributes
    ----------
    columns_ : list of int
        Positions of the columns used.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.model.features import RowMin
    >>> X = np.array([[-1.0, -2.5, 0.3], [np.nan, -1.0, np.nan],
    ...               [np.nan, np.nan, np.nan]])
    >>> RowMin(columns=[0, 1, 2], name="lowest_z").fit_transform(X)[:, -1]
    array([-2.5, -1. ,  nan])
    """

    _parameter_constraints: dict = {
        **_ColumnAppender._parameter_constraints,
        "columns": [None, "array-like"],
    }

    def __init__(self, *, columns=None, name: str = "row_min"):
        self.columns = columns
        self.name = name

    def _resolve(self, index) -> None:
        self.columns_ = _resolve_columns(self, index)

    def _compute(self, X: np.ndarray) -> np.ndarray:
        # fmin skips NaN and gives NaN only when every value is NaN, without the
        # "All-NaN slice" warning of nanmin.
        return np.fmin.reduce(X[:, self.columns_], axis=1)

    def _input_signs(self) -> list[tuple[int, int]]:
        return [(i, 1) for i in self.columns_]


class Sum(_ColumnAppender):
    """Append the row-wise sum of some columns (NaN if a term is missing).

    Parameters
    ----------
    columns : list of str or int, default=None
        Terms by name (DataFrame input) or position; ``None`` sums all columns.
    name : str, default="sum"
        Name of the new column.
    nan_as_zero_when : list of (term, column, value), default=None
        Structural zeros: in rows where ``column`` equals ``value``, a missing
        ``term`` counts as 0 instead of making the sum missing. For example
        ``[("prior_lactation_months", "parity", 1)]``: a first birth has no
        earlier lactation. ``column`` becomes one of the sources of the new column.

    Attributes
    ----------
    columns_ : list of int
        Positions of the terms.
    nan_as_zero_when_ : list of [int, int, float]
        Positions of term and column, and the value.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.model.features import Sum
    >>> X = np.array([[12.0, 6.0, 2.0], [np.nan, 6.0, 1.0], [np.nan, 6.0, 2.0]])
    >>> Sum(columns=[0, 1], nan_as_zero_when=[(0, 2, 1.0)]).fit_transform(X)[:, -1]
    array([18.,  6., nan])
    """

    _parameter_constraints: dict = {
        **_ColumnAppender._parameter_constraints,
        "columns": [None, "array-like"],
        "nan_as_zero_when": [None, list, tuple],
    }

    def __init__(self, *, columns=None, name: str = "sum", nan_as_zero_when=None):
        self.columns = columns
        self.name = name
        self.nan_as_zero_when = nan_as_zero_when

    def _resolve(self, index) -> None:
        self.columns_ = _resolve_columns(self, index)
        rules = []
        for rule in self.nan_as_zero_when or ():
            if (
                not isinstance(rule, Sequence)
                or isinstance(rule, str)
                or len(rule) != 3
                or not isinstance(rule[2], Real)
            ):
                raise ValueError(
                    f"Sum: nan_as_zero_when entry {rule!r}: must be "
                    "(term, column, value), e.g. ('prior_lactation_months', "
                    "'parity', 1)"
                )
            term = index(rule[0], "nan_as_zero_when")
            if term not in self.columns_:
                raise ValueError(
                    f"Sum: nan_as_zero_when entry {rule!r}: {rule[0]!r} is not one "
                    "of the summed columns"
                )
            rules.append([term, index(rule[1], "nan_as_zero_when"), float(rule[2])])
        self.nan_as_zero_when_ = rules

    def _compute(self, X: np.ndarray) -> np.ndarray:
        terms = X[:, self.columns_]
        if self.nan_as_zero_when_:
            terms = terms.copy()
            for term, column, value in self.nan_as_zero_when_:
                j = self.columns_.index(term)
                zero = np.isnan(terms[:, j]) & (X[:, column] == value)
                terms[zero, j] = 0.0
        return terms.sum(axis=1)

    def _input_signs(self) -> list[tuple[int, int]]:
        signs = [(i, 1) for i in self.columns_]
        # A condition column changes the sum only by turning NaN into 0: no sign.
        for _, column, _ in self.nan_as_zero_when_:
            if column not in self.columns_:
                signs.append((column, 0))
        return list(dict(signs).items())


class Product(_ColumnAppender):
    """Append the row-wise product of some columns (NaN if a factor is missing).

    For monotone constraints the product counts as increasing in each factor,
    which holds for nonnegative factors such as counts and durations.

    Parameters
    ----------
    columns : list of str or int, default=None
        Factors by name (DataFrame input) or position; ``None`` uses all columns.
    name : str, default="product"
        Name of the new column.

    Attributes
    ----------
    columns_ : list of int
        Positions of the factors.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.model.features import Product
    >>> X = np.array([[6.0, 3.0], [np.nan, 2.0]])
    >>> Product(name="lactation_x_parity").fit_transform(X)[:, -1]
    array([18., nan])
    """

    _parameter_constraints: dict = {
        **_ColumnAppender._parameter_constraints,
        "columns": [None, "array-like"],
    }

    def __init__(self, *, columns=None, name: str = "product"):
        self.columns = columns
        self.name = name

    def _resolve(self, index) -> None:
        self.columns_ = _resolve_columns(self, index)

    def _compute(self, X: np.ndarray) -> np.ndarray:
        return np.prod(X[:, self.columns_], axis=1)

    def _input_signs(self) -> list[tuple[int, int]]:
        return list(dict.fromkeys(self.columns_, 1).items())


class Ratio(_ColumnAppender):
    """Append ``numerator / denominator / reference``, optionally its logarithm.

    Undefined values (division by zero, log of a value that is not positive) and
    missing inputs give NaN. For monotone constraints the ratio counts as
    increasing in the numerator and decreasing in the denominator (positive
    denominators, as for concentrations).

    Parameters
    ----------
    numerator : str or int, default=None
        Column by name (DataFrame input) or position; ``None`` is the first column.
    denominator : str or int, default=None
        Column by name or position; ``None`` divides by ``reference`` only.
    reference : float, default=1.0
        A positive constant the ratio is divided by, e.g. an upper reference limit.
    log : bool, default=False
        Return the natural logarithm of the ratio.
    name : str, default="ratio"
        Name of the new column.

    Attributes
    ----------
    numerator_ : int
    denominator_ : int or None
        Positions of the columns used.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.model.features import Ratio
    >>> X = np.array([[750.0], [np.nan]])
    >>> Ratio(reference=1500.0, name="calcium_adequacy").fit_transform(X)[:, -1]
    array([0.5, nan])
    >>> X = np.array([[2.0, 1.0], [1.0, 0.0]])
    >>> Ratio(numerator=0, denominator=1, log=True).fit_transform(X)[:, -1]
    array([0.69314718,        nan])
    """

    _parameter_constraints: dict = {
        **_ColumnAppender._parameter_constraints,
        "numerator": [None, str, Interval(Integral, 0, None, closed="left")],
        "denominator": [None, str, Interval(Integral, 0, None, closed="left")],
        "reference": [Interval(Real, 0, None, closed="neither")],
        "log": ["boolean"],
    }

    def __init__(
        self,
        *,
        numerator=None,
        denominator=None,
        reference: float = 1.0,
        log: bool = False,
        name: str = "ratio",
    ):
        self.numerator = numerator
        self.denominator = denominator
        self.reference = reference
        self.log = log
        self.name = name

    def _resolve(self, index) -> None:
        if not math.isfinite(self.reference):
            raise ValueError(f"Ratio: reference={self.reference}: must be finite")
        self.numerator_ = (
            0 if self.numerator is None else index(self.numerator, "numerator")
        )
        self.denominator_ = (
            None if self.denominator is None else index(self.denominator, "denominator")
        )

    def _compute(self, X: np.ndarray) -> np.ndarray:
        value = X[:, self.numerator_] / float(self.reference)
        if self.denominator_ is not None:
            value = value / X[:, self.denominator_]
        if self.log:
            value = np.where(value > 0, np.log(value), np.nan)
        return np.where(np.isfinite(value), value, np.nan)

    def _input_signs(self) -> list[tuple[int, int]]:
        signs = {self.numerator_: 1}
        if self.denominator_ is not None:
            # The same column above and below the line: not monotone.
            signs[self.denominator_] = 0 if self.denominator_ in signs else -1
        return list(signs.items())


class Bands(_ColumnAppender):
    """Append the ordinal band of one column: how many ``edges`` are <= the value.

    With edges ``(12, 20, 30)``: below 12 is band 0, 12 to <20 band 1, 20 to <30
    band 2, 30 and above band 3. Missing stays NaN.

    Parameters
    ----------
    column : str or int, default=None
        Column by name (DataFrame input) or position; ``None`` is the first column.
    edges : sequence of float, default=(0.0,)
        Finite, strictly increasing band edges (each edge opens a band).
    name : str, default="band"
        Name of the new column.

    Attributes
    ----------
    column_ : int
        Position of the column used.
    edges_ : list of float
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.model.features import Bands
    >>> X = np.array([[11.9], [12.0], [25.0], [30.0], [np.nan]])
    >>> Bands(edges=(12, 20, 30), name="vitamin_d_band").fit_transform(X)[:, -1]
    array([ 0.,  1.,  2.,  3., nan])
    """

    _parameter_constraints: dict = {
        **_ColumnAppender._parameter_constraints,
        "column": [None, str, Interval(Integral, 0, None, closed="left")],
        "edges": ["array-like"],
    }

    def __init__(self, *, column=None, edges: Sequence[float] = (0.0,), name="band"):
        self.column = column
        self.edges = edges
        self.name = name

    def _resolve(self, index) -> None:
        edges = np.asarray(self.edges, dtype=np.float64)
        if (
            edges.ndim != 1
            or edges.size == 0
            or not np.isfinite(edges).all()
            or np.any(np.diff(edges) <= 0)
        ):
            raise ValueError(
                f"Bands: edges={list(np.ravel(self.edges))}: must be a non-empty, "
                "finite, strictly increasing sequence of numbers"
            )
        self.edges_ = [float(e) for e in edges]
        self.column_ = 0 if self.column is None else index(self.column, "column")

    def _compute(self, X: np.ndarray) -> np.ndarray:
        x = X[:, self.column_]
        band = np.searchsorted(np.asarray(self.edges_), x, side="right")
        return np.where(np.isnan(x), np.nan, band.astype(np.float64))

    def _input_signs(self) -> list[tuple[int, int]]:
        return [(self.column_, 1)]


# --------------------------------------------------------------------------------
# Catalog encoder and imputer


class CatalogEncoder(TransformerMixin, BaseEstimator):
    """Select the catalog fields of a frame and make them numeric.

    Numeric and boolean columns become float64 (True/False as 1/0, missing as
    NaN); categorical columns become one 0/1 column ``<field>=<category>`` per
    category, all zero when the value is missing. Columns not listed are ignored.
    Use :meth:`from_catalog` to configure it from the feature catalog.

    Parameters
    ----------
    columns : list of str, default=None
        The columns to read, in output order. ``None`` reads every column of the
        data seen in ``fit`` (then an ndarray is also accepted and passed through
        as float64).
    categories : dict of str to list, default=None
        Categories of the categorical columns (``{"ancestry": ["european", ...]}``).
        Columns with a pandas ``category`` dtype that are not listed are encoded
        with their dtype's categories, as seen in ``fit``.

    Attributes
    ----------
    categories_ : dict of str to list
        Categories of each one-hot encoded column.
    n_features_in_ : int
        Number of columns read.
    feature_names_in_ : ndarray of str
        The columns read (``columns`` when given).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from plo_risk.model.features import CatalogEncoder
    >>> frame = pd.DataFrame({
    ...     "parity": [1.0, 2.0],
    ...     "smoking": [True, np.nan],
    ...     "ancestry": pd.Categorical(["african", None],
    ...                                categories=["european", "african"]),
    ...     "patient_id": ["a", "b"],
    ... })
    >>> enc = CatalogEncoder(columns=["parity", "smoking", "ancestry"],
    ...                      categories={"ancestry": ["european", "african"]})
    >>> enc.fit_transform(frame)
    array([[ 1.,  1.,  0.,  1.],
           [ 2., nan,  0.,  0.]])
    >>> enc.get_feature_names_out().tolist()
    ['parity', 'smoking', 'ancestry=european', 'ancestry=african']
    """

    _parameter_constraints: dict = {
        "columns": [None, "array-like"],
        "categories": [None, dict],
    }

    def __init__(self, *, columns=None, categories=None):
        self.columns = columns
        self.categories = categories

    @classmethod
    def from_catalog(cls, catalog: Catalog | str | Path | None = None):
        """An encoder for every field of ``catalog`` (default: the shipped one).

        Parameters
        ----------
        catalog : Catalog, str or Path, default=None
            A loaded catalog or a catalog YAML file.

        Returns
        -------
        CatalogEncoder
        """
        cat = _as_catalog(catalog)
        return cls(
            columns=cat.names,
            categories={
                f.name: list(f.categories) for f in cat if f.dtype == "category"
            },
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the columns and record the categories.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, n_columns)
            The canonical frame (an ndarray only when ``columns`` is None).
        y : None
            Ignored.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If a column in ``columns`` is missing from ``X``, or a value cannot
            be encoded.
        """
        declared = dict(self.categories or {})
        if not _is_dataframe(X):
            if self.columns is not None or declared:
                raise ValueError(
                    "CatalogEncoder with columns or categories reads a DataFrame "
                    f"by column name; got {type(X).__name__}. Pass the output of "
                    "plo_risk.validate_frame"
                )
            validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
            self.categories_ = {}
            return self
        if self.columns is None:
            validate_data(self, X, skip_check_array=True)
            columns = list(X.columns)
        else:
            columns = _column_list(self.columns, "columns", self)
            bad = [c for c in columns if not isinstance(c, str)]
            if bad:
                raise TypeError(f"CatalogEncoder: columns must be names, got {bad!r}")
            dupes = sorted({c for c in columns if columns.count(c) > 1})
            if dupes:
                raise ValueError(f"CatalogEncoder: columns repeats {dupes!r}")
            _check_present(X, columns)
            self.feature_names_in_ = np.asarray(columns, dtype=object)
            self.n_features_in_ = len(columns)
        unknown = [c for c in declared if c not in columns]
        if unknown:
            raise ValueError(
                f"CatalogEncoder: categories given for {unknown!r}, which are not "
                "columns read"
            )
        categories: dict[str, list] = {}
        for col in columns:
            if col in declared:
                cats = list(declared[col])
                if not cats or len(set(cats)) != len(cats):
                    raise ValueError(
                        f"CatalogEncoder: categories[{col!r}]={cats!r}: must be a "
                        "non-empty list of distinct values"
                    )
                categories[col] = cats
            elif isinstance(X[col].dtype, pd.CategoricalDtype):
                categories[col] = [_plain(c) for c in X[col].cat.categories]
        self.categories_ = categories
        self._encode(X, columns)  # fail in fit, not later, on values it cannot encode
        return self

    def transform(self, X):
        """Encode the frame.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, n_columns)
            Must have every column read in ``fit``; other columns are ignored.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out)
            A DataFrame with ``set_output(transform="pandas")``.
        """
        check_is_fitted(self)
        if not _is_dataframe(X):
            if self.columns is not None or self.categories_:
                raise ValueError(
                    "CatalogEncoder reads a DataFrame by column name; got "
                    f"{type(X).__name__}. Pass the output of plo_risk.validate_frame"
                )
            return validate_data(
                self,
                X,
                reset=False,
                dtype=np.float64,
                ensure_all_finite="allow-nan",
                copy=True,
            )
        if self.columns is None:
            validate_data(self, X, skip_check_array=True, reset=False)
            columns = list(X.columns)
        else:
            columns = [str(c) for c in self.feature_names_in_]
            _check_present(X, columns)
        return self._encode(X, columns)

    def _encode(self, X: pd.DataFrame, columns: list) -> np.ndarray:
        widths = [len(self.categories_.get(c, ())) or 1 for c in columns]
        out = np.empty((len(X), sum(widths)), dtype=np.float64)
        start = 0
        for col, width in zip(columns, widths, strict=True):
            s = X[col]
            if col in self.categories_:
                out[:, start : start + width] = _one_hot(col, s, self.categories_[col])
            else:
                out[:, start] = _numeric(col, s)
            start += width
        return out

    def _encode_record(self, record: Mapping[str, Any]) -> np.ndarray:
        """One row like :meth:`_encode` on a one-row frame of ``record``.

        An absent key, None or NaN is missing; numbers and booleans become
        float64; a category is one-hot encoded (all zero when missing).
        """
        columns = [str(c) for c in self.feature_names_in_]
        widths = [len(self.categories_.get(c, ())) or 1 for c in columns]
        out = np.zeros((1, sum(widths)), dtype=np.float64)
        start = 0
        for col, width in zip(columns, widths, strict=True):
            v = record.get(col)
            number = isinstance(v, (Real, np.bool_))
            cats = self.categories_.get(col)
            if cats is not None:
                if not (v is None or v is pd.NA or (number and v != v)):
                    try:
                        out[0, start + cats.index(v)] = 1.0
                    except ValueError:
                        raise ValueError(
                            f"Column {col!r} has the value {v!r}, which is not one "
                            f"of its categories: {', '.join(map(str, cats))}"
                        ) from None
            elif v is None or v is pd.NA:
                out[0, start] = np.nan
            elif number:
                value = float(v)  # NaN stays NaN, as in a frame
                if math.isinf(value):
                    raise ValueError(
                        f"Column {col!r} contains infinity; missing values must be NaN"
                    )
                out[0, start] = value
            else:
                raise ValueError(
                    f"Column {col!r} must be numeric or boolean, got {v!r} "
                    f"({type(v).__name__}); pass the output of "
                    "plo_risk.validate_record"
                )
            start += width
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Numeric columns keep their name; categories become ``<field>=<category>``.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Must match ``feature_names_in_`` when given.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        out = []
        for name in names:
            cats = self.categories_.get(str(name))
            if cats is None:
                out.append(str(name))
            else:
                out.extend(f"{name}={c}" for c in cats)
        return np.asarray(out, dtype=object)

    def _output_sources(self) -> dict[str, list[tuple[str, int]]]:
        sources = {}
        for name in _check_feature_names_in(self, None):
            name = str(name)
            cats = self.categories_.get(name)
            if cats is None:
                sources[name] = [(name, 1)]
            else:
                for c in cats:
                    sources[f"{name}={c}"] = [(name, 0)]
        return sources

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_present(X: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in X.columns]
    if missing:
        more = (
            f"; {len(missing) - 1} more missing: {_preview(missing[1:])}"
            if len(missing) > 1
            else ""
        )
        raise ValueError(
            f"The input frame has no column {missing[0]!r} (a catalog field{more}); "
            "pass the output of plo_risk.validate_frame"
        )


def _numeric(col: str, s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        raise ValueError(
            f"Column {col!r} is categorical, but the encoder has no categories for "
            "it; declare them in categories= (CatalogEncoder.from_catalog does)"
        )
    try:
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Column {col!r} must be numeric or boolean, got dtype {s.dtype} "
            f"({exc}); pass the output of plo_risk.validate_frame"
        ) from None
    if np.isinf(values).any():
        raise ValueError(
            f"Column {col!r} contains infinity; missing values must be NaN"
        )
    return values


def _one_hot(col: str, s: pd.Series, cats: list) -> np.ndarray:
    codes = pd.Index(cats).get_indexer(s)  # -1 for missing and unknown values
    unknown = (codes < 0) & s.notna().to_numpy()
    if unknown.any():
        value = s[unknown].iloc[0]
        raise ValueError(
            f"Column {col!r} has the value {value!r}, which is not one of its "
            f"categories: {', '.join(map(str, cats))}"
        )
    return (codes[:, None] == np.arange(len(cats))).astype(np.float64)


class MedianImputer(TransformerMixin, BaseEstimator):
    """Fill missing values with training medians and flag often-missing columns.

    For models that cannot take NaN (logistic regression). A column whose share of
    missing values in the training data is at least ``indicator_min_fraction`` (and
    above zero) also gets an indicator column ``<column>_missing`` (1 when missing),
    appended after all the input columns. A column missing in every training row is
    filled with 0.

    Parameters
    ----------
    indicator_min_fraction : float, default=0.05
        Smallest share of missing values in ``fit`` that earns an indicator; 1.0
        keeps only columns never seen.

    Attributes
    ----------
    medians_ : list of float
        Fill value of each column.
    indicator_columns_ : list of int
        Positions of the columns with an indicator.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from plo_risk.model.features import MedianImputer
    >>> X = np.array([[1.0, 0.0], [3.0, np.nan], [np.nan, 2.0], [5.0, 4.0]])
    >>> imp = MedianImputer(indicator_min_fraction=0.5).fit(X)
    >>> imp.medians_
    [3.0, 2.0]
    >>> imp.transform([[np.nan, np.nan]])
    array([[3., 2.]])
    >>> MedianImputer().fit(X).get_feature_names_out().tolist()
    ['x0', 'x1', 'x0_missing', 'x1_missing']
    """

    _parameter_constraints: dict = {
        "indicator_min_fraction": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, *, indicator_min_fraction: float = 0.05):
        self.indicator_min_fraction = indicator_min_fraction

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the medians and which columns get an indicator.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        missing = np.isnan(X)
        fraction = missing.mean(axis=0)
        medians = np.zeros(X.shape[1])
        seen = fraction < 1.0
        if seen.any():
            medians[seen] = np.nanmedian(X[:, seen], axis=0)
        self.medians_ = [float(m) for m in medians]
        self.indicator_columns_ = [
            int(i)
            for i in np.flatnonzero(
                (fraction > 0) & (fraction >= self.indicator_min_fraction)
            )
        ]
        names = [str(n) for n in _check_feature_names_in(self, None)]
        clash = [f"{names[i]}_missing" for i in self.indicator_columns_]
        clash = [n for n in clash if n in names]
        if clash:
            raise ValueError(
                f"MedianImputer: indicator column {clash[0]!r} is already a column "
                "of X; rename that column"
            )
        return self

    def transform(self, X):
        """Fill missing values and append the indicators.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features + len(indicator_columns_))
        """
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan"
        )
        return self._transform_array(X)

    def _transform_array(self, X: np.ndarray) -> np.ndarray:
        # transform() after its input checks (see _ColumnAppender._transform_array).
        missing = np.isnan(X)
        out = np.empty((X.shape[0], X.shape[1] + len(self.indicator_columns_)))
        out[:, : X.shape[1]] = np.where(missing, np.asarray(self.medians_), X)
        out[:, X.shape[1] :] = missing[:, self.indicator_columns_]
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Input names, then ``<column>_missing`` for each indicator.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Must match ``feature_names_in_`` when given.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        names = [str(n) for n in _check_feature_names_in(self, input_features)]
        extra = [f"{names[i]}_missing" for i in self.indicator_columns_]
        return np.asarray(names + extra, dtype=object)

    def _output_sources(self) -> dict[str, list[tuple[str, int]]]:
        names = [str(n) for n in _check_feature_names_in(self, None)]
        sources = {n: [(n, 1)] for n in names}
        for i in self.indicator_columns_:
            sources[f"{names[i]}_missing"] = [(names[i], 0)]
        return sources

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _test_instances() -> list[BaseEstimator]:
    # Non-default settings for tests/test_common.py (the defaults are checked too).
    return [
        RowMin(columns=[0]),
        Sum(columns=[0], nan_as_zero_when=[(0, 0, 0.5)]),
        Ratio(numerator=0, denominator=0, log=True),
        Ratio(reference=1500.0),
        Bands(edges=(-1.0, 0.0, 0.5, 1.0)),
        MedianImputer(indicator_min_fraction=0.0),
    ]


# --------------------------------------------------------------------------------
# The pipeline


def _as_catalog(catalog: Catalog | str | Path | None) -> Catalog:
    if catalog is None:
        return load_catalog()
    if isinstance(catalog, Catalog):
        return catalog
    return load_catalog(catalog)


def _engineered_steps(cat: Catalog) -> list[tuple[str, _ColumnAppender]]:
    # One step per engineered feature, named like its output column; a feature is
    # left out when the catalog lacks a field it needs.
    steps: list[tuple[str, _ColumnAppender]] = []

    def add(step: _ColumnAppender, *needs: str) -> None:
        if all(n in cat for n in needs):
            steps.append((step.name, step))

    add(
        Sum(
            columns=["prior_lactation_months", "lactation_months"],
            nan_as_zero_when=[("prior_lactation_months", "parity", 1.0)],
            name="cumulative_lactation_months",
        ),
        "prior_lactation_months",
        "lactation_months",
        "parity",
    )
    add(
        Product(columns=["lactation_months", "parity"], name="lactation_x_parity"),
        "lactation_months",
        "parity",
    )
    add(
        Ratio(
            numerator="calcium_intake_mg_day",
            reference=CALCIUM_RECOMMENDED_MG_DAY,
            name="calcium_adequacy",
        ),
        "calcium_intake_mg_day",
    )
    add(
        Bands(
            column="vitamin_d_25oh",
            edges=VITAMIN_D_BAND_EDGES_NG_ML,
            name="vitamin_d_band",
        ),
        "vitamin_d_25oh",
    )
    for score in ("z", "t"):
        fields = [f.name for f in cat if f.score == score]
        if fields:
            add(RowMin(columns=fields, name=f"lowest_{score}"))
    add(
        Ratio(numerator="ctx", reference=CTX_UPPER_REFERENCE_NG_ML, name="ctx_ratio"),
        "ctx",
    )
    add(
        Ratio(
            numerator="p1np", reference=P1NP_UPPER_REFERENCE_NG_ML, name="p1np_ratio"
        ),
        "p1np",
    )
    add(
        Ratio(
            numerator="ctx_ratio",
            denominator="p1np_ratio",
            log=True,
            name="turnover_uncoupling",
        ),
        "ctx",
        "p1np",
    )
    return steps


def build_pipeline(
    catalog: Catalog | str | Path | None = None, *, impute: bool = False
) -> Pipeline:
    """The feature pipeline for a catalog: canonical frame in, model matrix out.

    Parameters
    ----------
    catalog : Catalog, str or Path, default=None
        The feature catalog (default: the one shipped with the package).
    impute : bool, default=False
        Append a :class:`MedianImputer` (medians plus ``<column>_missing``
        indicators for often-missing columns) for models that cannot take NaN.
        By default missing values stay NaN.

    Returns
    -------
    Pipeline
        Unfitted, with ``set_output(transform="pandas")``: a float64 DataFrame
        with one column per catalog field (categories one-hot as
        ``<field>=<category>``), then the engineered features of
        :data:`ENGINEERED_FEATURES` that the catalog has the fields for.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from plo_risk.data.catalog import load_catalog
    >>> from plo_risk.model.features import build_pipeline
    >>> cat = load_catalog()
    >>> frame = pd.DataFrame({f.name: [np.nan] for f in cat})
    >>> frame[["parity", "lactation_months", "prior_lactation_months"]] = [2, 6, 12]
    >>> frame[["vitamin_d_25oh", "z_lumbar_spine", "z_femoral_neck"]] = [15, -2.1, -1]
    >>> out = build_pipeline(cat).fit_transform(frame)
    >>> out.loc[0, ["cumulative_lactation_months", "lactation_x_parity",
    ...             "vitamin_d_band", "lowest_z"]].tolist()
    [18.0, 12.0, 1.0, -2.1]
    """
    cat = _as_catalog(catalog)
    steps: list[tuple[str, Any]] = [("encode", CatalogEncoder.from_catalog(cat))]
    steps += _engineered_steps(cat)
    if impute:
        steps.append(("impute", MedianImputer()))
    return Pipeline(steps).set_output(transform="pandas")


class ArrayPipeline:
    """A fitted feature pipeline run on numpy arrays.

    The same arithmetic as ``pipeline.transform`` (each step's own array code), but
    the sklearn input checks and pandas frames between the steps are done once
    here instead of on every call: for one patient that overhead is most of the
    time. Raises TypeError for a pipeline it cannot run (steps other than this
    module's transformers, or not fitted on named columns); use
    ``pipeline.transform`` then.
    """

    def __init__(self, pipeline: Any):
        leaves = _leaves(pipeline)
        for leaf in leaves:
            check_is_fitted(leaf)
        encoder, steps = leaves[0], leaves[1:]
        if (
            not isinstance(encoder, CatalogEncoder)
            or encoder.columns is None
            or not hasattr(encoder, "feature_names_in_")
        ):
            raise TypeError("the first step must be a CatalogEncoder with columns")
        names = [str(n) for n in encoder.get_feature_names_out()]
        for step in steps:
            if not isinstance(step, (_ColumnAppender, MedianImputer)):
                raise TypeError(f"{type(step).__name__} has no array path")
            fitted_on = getattr(step, "feature_names_in_", None)
            if fitted_on is None or [str(n) for n in fitted_on] != names:
                raise TypeError(f"{type(step).__name__} was fitted on other columns")
            names = [str(n) for n in step.get_feature_names_out()]
        self.encoder = encoder
        self.steps = steps
        self.columns = [str(c) for c in encoder.feature_names_in_]
        self.names = names

    def __call__(
        self, X: pd.DataFrame | Mapping[str, Any]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The output matrix and the input array of every step after the encoder.

        Consecutive column appenders write into one matrix allocated once (their
        inputs are views of it), rather than each copying its input.
        """
        if _is_dataframe(X):
            _check_present(X, self.columns)
            Z = self.encoder._encode(X, self.columns)
        elif isinstance(X, Mapping):
            Z = self.encoder._encode_record(X)
        else:
            raise TypeError(
                f"transform_numpy reads a DataFrame or a record; got {type(X).__name__}"
            )
        steps = self.steps
        if steps and Z.shape[0] == 0:
            self._refuse(Z, 0)
        inputs: list[np.ndarray] = []
        k = 0
        while k < len(steps):
            run = 0
            while k + run < len(steps) and isinstance(steps[k + run], _ColumnAppender):
                run += 1
            if not run:
                inputs.append(Z)
                Z = steps[k]._transform_array(Z)
                k += 1
                continue
            width = Z.shape[1]
            out = np.empty((Z.shape[0], width + run), dtype=np.float64)
            out[:, :width] = Z
            for step in steps[k : k + run]:
                view = out[:, :width]
                inputs.append(view)
                new = step._new_column(view)
                out[:, width] = new
                width += 1
                k += 1
                if k < len(steps) and np.isinf(new).any():
                    self._refuse(out[:, :width], k)
            Z = out
        return Z, inputs

    def _refuse(self, Z: np.ndarray, k: int) -> None:
        # The encoder refuses infinity, so only a computed column can bring it;
        # raise what the input check of step k raises in pipeline.transform.
        check_array(
            Z,
            dtype=np.float64,
            ensure_all_finite="allow-nan",
            estimator=self.steps[k],
            input_name="X",
        )
        raise AssertionError("check_array accepted what the step refuses")


def transform_numpy(
    pipeline: Pipeline, X: pd.DataFrame | Mapping[str, Any]
) -> tuple[np.ndarray, list[str]]:
    """Run a fitted feature pipeline on numpy arrays, without pandas between steps.

    The same values, bit for bit, as ``pipeline.transform(X)``, much faster for a
    few rows (one patient); for large frames both take about as long.

    Parameters
    ----------
    pipeline : Pipeline
        A fitted pipeline from :func:`build_pipeline` (or of this module's
        transformers, led by a :class:`CatalogEncoder` with ``columns``).
    X : DataFrame or Mapping
        The canonical frame, or one canonical record (field -> value, as
        :func:`plo_risk.validate_record` returns; absent or None is missing).

    Returns
    -------
    matrix : ndarray of shape (n_samples, n_features_out)
        float64.
    names : list of str
        The column names, ``pipeline.get_feature_names_out()``.

    Raises
    ------
    TypeError
        If a step is not one of this module's transformers or the pipeline was not
        fitted on a frame; use ``pipeline.transform``.
    ValueError
        For input the pipeline refuses (a missing column, a value it cannot encode).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from plo_risk.data.catalog import load_catalog
    >>> from plo_risk.model.features import build_pipeline, transform_numpy
    >>> cat = load_catalog()
    >>> frame = pd.DataFrame({f.name: [np.nan] for f in cat})
    >>> frame[["parity", "lactation_months", "prior_lactation_months"]] = [2, 6, 12]
    >>> pipe = build_pipeline(cat).fit(frame)
    >>> matrix, names = transform_numpy(pipe, {"parity": 2, "lactation_months": 6})
    >>> float(matrix[0, names.index("lactation_x_parity")])
    12.0
    >>> bool(np.array_equal(transform_numpy(pipe, frame)[0],
    ...                     pipe.transform(frame).to_numpy(), equal_nan=True))
    True
    """
    runner = ArrayPipeline(pipeline)
    return runner(X)[0], list(runner.names)


# --------------------------------------------------------------------------------
# Provenance and monotone constraints


def _leaves(est: Any) -> list[Any]:
    if isinstance(est, Pipeline):
        return [leaf for _, step in est.steps for leaf in _leaves(step)]
    return [est]


def _derivations(pipeline: Any) -> dict[str, dict[str, int]]:
    """For each output column: {input column of the first step: sign}."""
    check_is_fitted(pipeline)
    leaves = _leaves(pipeline)
    for leaf in leaves:
        if not hasattr(leaf, "_output_sources"):
            raise TypeError(
                f"{type(leaf).__name__} does not report the sources of its output "
                "columns; feature provenance needs plo_risk.features transformers"
            )
    first = leaves[0]
    current = {str(n): {str(n): 1} for n in _check_feature_names_in(first, None)}
    for leaf in leaves:
        new: dict[str, dict[str, int]] = {}
        for out, parts in leaf._output_sources().items():
            acc: dict[str, int] = {}
            for inp, sign in parts:
                for root, s in current[inp].items():
                    v = sign * s
                    # Two paths with different signs: not monotone in that root.
                    acc[root] = v if acc.get(root, v) == v else 0
            new[out] = acc
        current = new
    return current


def feature_sources(pipeline: Pipeline) -> dict[str, list[str]]:
    """Map every output column to the input fields it was computed from.

    Parameters
    ----------
    pipeline : Pipeline
        A fitted pipeline of ``plo_risk.features`` transformers, e.g. from
        :func:`build_pipeline`.

    Returns
    -------
    dict of str to list of str
        Output column -> catalog fields (the columns read by the first step), in
        input order. A one-hot column maps to its categorical field, an engineered
        column to every field it uses, a ``_missing`` indicator to its column's
        fields.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the pipeline is not fitted.
    TypeError
        If a step does not report its sources.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.pipeline import make_pipeline
    >>> from plo_risk.model.features import Product, RowMin, feature_sources
    >>> X = pd.DataFrame({"a": [1.0], "b": [2.0]})
    >>> pipe = make_pipeline(Product(columns=["a", "b"], name="ab"),
    ...                      RowMin(columns=["ab", "a"], name="m"))
    >>> feature_sources(pipe.set_output(transform="pandas").fit(X))
    {'a': ['a'], 'b': ['b'], 'ab': ['a', 'b'], 'm': ['a', 'b']}
    """
    derivations = _derivations(pipeline)
    first = _leaves(pipeline)[0]
    order = {str(n): i for i, n in enumerate(_check_feature_names_in(first, None))}
    return {
        out: sorted(roots, key=order.__getitem__) for out, roots in derivations.items()
    }


def monotone_constraints(
    pipeline: Pipeline, catalog: Catalog | str | Path | None = None
) -> dict[str, int]:
    """Monotone constraint (+1, -1 or 0) of every output column, from the catalog.

    The one definition of the constraints: the xgboost champion is fitted with
    the non-zero ones. A column gets the sign in which risk moves when it grows,
    from the catalog ``direction`` of its source fields: each source contributes
    its direction (+1 increases, -1 decreases, 0 none) times the sign of the
    column's change when that source grows (``lowest_z`` grows with each Z-score;
    a ratio falls when its denominator grows; a one-hot column or a ``_missing``
    indicator is not monotone in its field). Sources that contribute 0 are left
    out: if the others agree on one sign the column gets it, so the risk stays
    monotone in every field that has a direction. A column whose directed sources
    disagree, or that has none, gets 0 (free). So ``lowest_z`` is -1,
    ``lactation_x_parity`` +1, ``ctx_ratio`` +1, ``cumulative_lactation_months``
    +1 (``lactation_months`` increases the risk; ``prior_lactation_months`` has
    no direction), ``turnover_uncoupling`` +1 (it grows with ``ctx``), and
    one-hot columns and ``_missing`` indicators 0.

    Parameters
    ----------
    pipeline : Pipeline
        A fitted pipeline from :func:`build_pipeline`.
    catalog : Catalog, str or Path, default=None
        The catalog with the ``direction`` of each field.

    Returns
    -------
    dict of str to int
        In output column order.

    Raises
    ------
    ValueError
        If the pipeline reads a field the catalog does not have.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from plo_risk.data.catalog import load_catalog
    >>> from plo_risk.model.features import build_pipeline, monotone_constraints
    >>> cat = load_catalog()
    >>> frame = pd.DataFrame({f.name: [1.0] for f in cat if f.dtype != "category"})
    >>> frame["ancestry"] = "european"
    >>> pipe = build_pipeline(cat).fit(frame)
    >>> cons = monotone_constraints(pipe, cat)
    >>> [cons[c] for c in ("lowest_z", "calcium_adequacy", "ctx_ratio", "parity",
    ...                    "cumulative_lactation_months", "ancestry=european")]
    [-1, -1, 1, 0, 1, 0]
    """
    cat = _as_catalog(catalog)
    result = {}
    for out, roots in _derivations(pipeline).items():
        signs = set()
        for root, s in roots.items():
            if root not in cat:
                raise ValueError(
                    f"The pipeline reads {root!r}, which is not a field of the "
                    f"catalog {cat.path}"
                )
            signs.add(cat[root].monotone * s)
        signs.discard(0)
        result[out] = signs.pop() if len(signs) == 1 else 0
    return result


def blank_frame(catalog: Catalog | str | Path | None = None) -> pd.DataFrame:
    """One canonical row of the catalog, every optional field missing.

    The output columns of :func:`build_pipeline` depend only on the catalog, so a
    pipeline fitted on this row names them (as for :func:`monotone_constraints`).
    """
    cat = _as_catalog(catalog)
    data: dict[str, Any] = {}
    for f in cat:
        if f.dtype == "category":
            data[f.name] = pd.Categorical([None], categories=list(f.categories))
        else:
            data[f.name] = [np.nan if f.missing else 1.0]
    return pd.DataFrame(data)


# --------------------------------------------------------------------------------
# JSON state

_FORMAT = "plo_risk.features.pipeline"
_FORMAT_VERSION = 1
_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (CatalogEncoder, RowMin, Sum, Product, Ratio, Bands, MedianImputer)
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{value!r} ({type(value).__name__}) cannot be written as JSON")


def _node_to_dict(est: Any) -> dict:
    if isinstance(est, Pipeline):
        return {
            "class": "Pipeline",
            "steps": [[name, _node_to_dict(step)] for name, step in est.steps],
        }
    cls = type(est).__name__
    if _CLASSES.get(cls) is not type(est):
        raise TypeError(
            f"{cls} is not a plo_risk.features transformer; only "
            f"{', '.join(_CLASSES)} and Pipeline can be written as JSON"
        )
    fitted = {
        k: _jsonable(v)
        for k, v in vars(est).items()
        if k.endswith("_") and not k.startswith("_")
    }
    output = getattr(est, "_sklearn_output_config", {}).get("transform")
    return {
        "class": cls,
        "params": _jsonable(est.get_params(deep=False)),
        "fitted": fitted or None,
        "output": output,
    }


def pipeline_to_dict(pipeline: Pipeline) -> dict:
    """The pipeline's parameters and fitted state as plain JSON-able data.

    Parameters
    ----------
    pipeline : Pipeline
        A pipeline of ``plo_risk.features`` transformers (fitted or not).

    Returns
    -------
    dict
        ``json.dumps`` writes it (no NaN, no objects); :func:`pipeline_from_dict`
        rebuilds the pipeline from it.

    Raises
    ------
    TypeError
        If a step is not a ``plo_risk.features`` transformer.

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> from plo_risk.model.features import RowMin, pipeline_from_dict, pipeline_to_dict
    >>> from sklearn.pipeline import make_pipeline
    >>> pipe = make_pipeline(RowMin(columns=[0, 1])).fit(np.array([[1.0, 2.0]]))
    >>> text = json.dumps(pipeline_to_dict(pipe))
    >>> pipeline_from_dict(json.loads(text)).transform(np.array([[3.0, -1.0]]))
    array([[ 3., -1., -1.]])
    """
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "pipeline": _node_to_dict(pipeline),
    }


def _node_from_dict(node: Any, where: str) -> Any:
    # A forged file can hold any JSON here: every shape is checked, so what goes
    # wrong is a ValueError naming the node, never a KeyError or TypeError.
    if not isinstance(node, dict) or not isinstance(node.get("class"), str):
        raise ValueError(
            f"{where}: expected a mapping with a 'class' name, got {reprlib.repr(node)}"
        )
    name = node["class"]
    if name == "Pipeline":
        steps = node.get("steps")
        if not isinstance(steps, list) or not all(
            isinstance(step, list) and len(step) == 2 for step in steps
        ):
            raise ValueError(f"{where}.steps: must be a list of [name, step] pairs")
        return Pipeline(
            [
                (str(step_name), _node_from_dict(step, f"{where}.{step_name}"))
                for step_name, step in steps
            ]
        )
    cls = _CLASSES.get(name)
    if cls is None:
        raise ValueError(
            f"{where}: class {reprlib.repr(name)} is not a plo_risk.features "
            f"transformer ({', '.join(_CLASSES)} or Pipeline)"
        )
    params, fitted = node.get("params", {}), node.get("fitted") or {}
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise ValueError(f"{where}: 'params' and 'fitted' must be mappings")
    try:
        est = cls(**params)
    except TypeError as exc:
        raise ValueError(f"{where}: {name} does not take these params ({exc})") from exc
    for key, value in fitted.items():
        if not key.endswith("_") or key.startswith("_"):
            raise ValueError(f"{where}: {key!r} is not a fitted attribute")
        if key == "feature_names_in_":
            value = np.asarray(value, dtype=object)
        setattr(est, key, value)
    if node.get("output") is not None:
        est.set_output(transform=node["output"])
    return est


def pipeline_from_dict(
    d: dict, catalog: Catalog | str | Path | None = None
) -> Pipeline:
    """Rebuild a pipeline written by :func:`pipeline_to_dict`, without running code.

    Only the transformers of this module and ``Pipeline`` can be rebuilt.

    Parameters
    ----------
    d : dict
        The output of :func:`pipeline_to_dict` (e.g. after a JSON round trip).
    catalog : Catalog, str or Path, default=None
        The catalog the pipeline must agree with: every field a
        :class:`CatalogEncoder` reads must be in it, with the same categories.

    Returns
    -------
    Pipeline

    Raises
    ------
    ValueError
        If ``d`` is not a pipeline of this format, names an unknown class, or
        disagrees with the catalog.
    """
    if not isinstance(d, dict) or d.get("format") != _FORMAT:
        raise ValueError(f"Not a plo_risk feature pipeline (format {_FORMAT!r})")
    if d.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"Feature pipeline format_version={d.get('format_version')!r}: this "
            f"version of plo_risk reads version {_FORMAT_VERSION}"
        )
    pipeline = _node_from_dict(d.get("pipeline"), "pipeline")
    if not isinstance(pipeline, Pipeline):
        raise ValueError("The saved object is not a Pipeline")
    cat = _as_catalog(catalog)
    for leaf in _leaves(pipeline):
        if isinstance(leaf, CatalogEncoder) and leaf.columns is not None:
            _check_against_catalog(leaf, cat)
    return pipeline


def _check_against_catalog(encoder: CatalogEncoder, cat: Catalog) -> None:
    for name in encoder.columns:
        if name not in cat:
            raise ValueError(
                f"The saved pipeline reads the field {name!r}, which is not in the "
                f"catalog {cat.path}; use the catalog the model was trained with"
            )
        saved = list((encoder.categories or {}).get(name, []))
        expected = list(cat[name].categories)
        if saved != expected:
            raise ValueError(
                f"The saved pipeline encodes {name!r} with categories {saved}, but "
                f"the catalog {cat.path} has {expected}; use the catalog the model "
                "was trained with"
            )

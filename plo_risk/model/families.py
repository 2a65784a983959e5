"""The model families: everything that depends on which library fits a model.

A family is one adapter, declared once, that knows how its classifier

- is built from the catalog and its hyperparameters (``build``),
- gives its margin, the uncalibrated log-odds (``margin``, with a fast path
  straight from the feature matrix where the library has one),
- splits that margin into exact additive contributions (``contributions``),
- is written to and read from a bundle without executing code (``save``, ``load``),
- is fitted (``fit_context``: the threads it may use) and handles missing input.

:func:`family_of` is the only place that recognises a family from a fitted
estimator; everything else (calibration, explanations, bundles, training, the model
card) asks the family. A new family is a new subclass in :data:`FAMILIES`.

``xgboost``
    The champion: gradient-boosted trees with monotone constraints from the
    catalog's ``direction`` (lower BMD never lowers risk); exact TreeSHAP through
    ``Booster.predict(pred_contribs=True)``; xgboost's own JSON format.
``hist_gradient_boosting``
    scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier`;
    TreeSHAP through ``shap.TreeExplainer``; skops with an allowlist of types.
``logistic_regression``
    Median imputation with missing indicators, natural splines for the continuous
    predictors where a straight line is not plausible (Z-score, age, BMI,
    lactation, vitamin D, calcium), standardization, then a logistic regression;
    exact linear contributions; skops.
``clinical_rule``
    The ISCD definition the PLO cohorts use: a Z-score of -2.0 or lower at any
    site (Mishra et al. 2024, Table 3 row 4, ref 49); plain JSON.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Callable, Iterator, Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import skops.io as sio
from scipy.special import logit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits
from xgboost import DMatrix, XGBClassifier

from plo_risk.data.catalog import Catalog
from plo_risk.model.features import (
    ArrayPipeline,
    blank_frame,
    build_pipeline,
    monotone_constraints,
)
from plo_risk.model.rule import ISCD_Z_THRESHOLD, ClinicalRuleClassifier
from plo_risk.utils import strict_json
from plo_risk.utils.sklearn_compat import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = [
    "FAMILIES",
    "MODEL_NAMES",
    "BundleFormatError",
    "ModelFamily",
    "family_of",
    "get_family",
]


class BundleFormatError(ValueError):
    """A model file of a bundle that its family cannot read (names the file)."""


Steps = list[tuple[str, Any]]


class ModelFamily:
    """What one model family does differently; see the module docstring.

    The defaults serve any scikit-learn classifier (margin from
    ``decision_function`` or the logit of ``predict_proba``); a family overrides
    what its library does otherwise.
    """

    #: The family's name in experiment files, bundles and the leaderboard.
    name: ClassVar[str] = "generic"
    #: Hyperparameters and their defaults; an experiment overrides any of them.
    default_params: ClassVar[dict[str, Any]] = {}
    #: Further hyperparameters passed straight to the library.
    extra_params: ClassVar[frozenset[str]] = frozenset()
    #: How the family handles missing inputs (the model card says it).
    missing_values: ClassVar[str] = ""
    #: The extension of its model files in a bundle.
    file_suffix: ClassVar[str] = ""

    # ---------------------------------------------------------------- building
    def known_params(self) -> set[str]:
        """Every hyperparameter an experiment may set for this family."""
        return set(self.default_params) | set(self.extra_params)

    def param_constraints(self) -> dict[str, list]:
        """Allowed values of each hyperparameter (scikit-learn's constraint form)."""
        return {}

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        """Every problem of ``params``: unknown names and values out of range.

        Each message names the hyperparameter, the value and what is allowed (the
        library's own constraints where it declares them), e.g. "The 'max_depth'
        parameter of XGBClassifier must be an int in the range [0, inf). Got -5
        instead."
        """
        problems = []
        known = self.known_params()
        constraints = self.param_constraints()
        for name, value in params.items():
            if name not in known:
                problems.append(f"unknown hyperparameter {name!r} for {self.name}")
                continue
            if name not in constraints:
                continue
            try:
                validate_parameter_constraints(
                    {name: constraints[name]},
                    {name: value},
                    caller_name=self.estimator_name,
                )
            except InvalidParameterError as exc:
                problems.append(str(exc))
        return problems

    #: The estimator the constraints belong to (for messages).
    estimator_name: ClassVar[str] = "the model"

    def build(
        self, params: Mapping[str, Any], catalog: Catalog, random_state: int
    ) -> Steps:
        """The pipeline steps: ``[("features", ...), ..., ("model", classifier)]``.

        ``params`` are the defaults merged with the experiment's.
        """
        raise NotImplementedError(f"the {self.name} family cannot build a model")

    def owns(self, estimator: Any) -> bool:
        """Whether ``estimator`` (a final classifier) belongs to this family."""
        return False

    @contextlib.contextmanager
    def fit_context(self) -> Iterator[None]:
        """The context every fit of this family runs in (threads, ...)."""
        yield

    # ---------------------------------------------------------------- margins
    def margin(self, clf: Any, X: Any) -> np.ndarray:
        """Uncalibrated log-odds of the positive class, shape (n_samples,)."""
        if hasattr(clf, "decision_function"):
            return np.asarray(clf.decision_function(X), dtype=np.float64).reshape(-1)
        p = clf.predict_proba(X)[:, 1]
        return logit(np.clip(p, 1e-15, 1 - 1e-15))

    def array_margin(
        self, clf: Any, features: Any
    ) -> tuple[Callable[[pd.DataFrame], Any], Callable[[Any], np.ndarray]] | None:
        """A fast path from the canonical frame to the margin, or None.

        ``(matrix, predict)`` with ``predict(matrix(X))`` equal to
        ``margin(clf, features.transform(X))``: batch scoring builds the next
        chunk's matrix while this one is predicted.
        """
        return None

    def reads_arrays(self, clf: Any, names: list[str]) -> bool:
        """Whether ``clf`` reads exactly these columns as a plain float matrix."""
        return False

    # ---------------------------------------------------------- explanations
    def contributions(self, clf: Any, Xt: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact additive contributions to the margin of ``clf`` on its input.

        Returns ``(values of shape (n, columns), base of shape (n,))`` with
        ``base + values.sum(axis=1) == margin(clf, Xt)``.
        """
        raise ValueError(
            f"contributions cannot explain a {type(clf).__name__}; it explains the "
            "models of plo_risk.model.make_model: " + ", ".join(MODEL_NAMES)
        )

    # ----------------------------------------------------------------- files
    def save(self, steps: Steps, folder: Path, stem: str) -> str:
        """Write the steps after the feature pipeline; returns the file name."""
        raise BundleFormatError(f"the {self.name} family cannot be saved")

    def load(self, path: Path) -> Steps:
        """Read what :meth:`save` wrote, without executing code."""
        raise BundleFormatError(f"{path}: the {self.name} family cannot be loaded")

    def __repr__(self) -> str:
        return f"<model family {self.name!r}>"


# --------------------------------------------------------------------- xgboost


class XGBoostFamily(ModelFamily):
    name = "xgboost"
    default_params = {
        # 150 trees: 300 overfit 50k rows (~2,500 events) by ~0.004 AUROC (tuned
        # against the generator's oracle, tests/test_training.py).
        "n_estimators": 150,
        "max_depth": 4,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 2.0,
        "reg_lambda": 1.0,
        "monotone": True,
        "n_jobs": 2,
    }
    extra_params = frozenset(
        {
            "gamma",
            "max_bin",
            "reg_alpha",
            "min_split_loss",
            "max_delta_step",
            "colsample_bylevel",
            "tree_method",
            "scale_pos_weight",
        }
    )
    missing_values = (
        "Tree models take a missing value as information: each split learns "
        "the branch for missing values (xgboost's default direction), so no "
        "value is imputed."
    )
    file_suffix = ".json"
    estimator_name = "XGBClassifier"

    def param_constraints(self):
        # The ranges of XGBoost's parameter documentation ("XGBoost Parameters",
        # xgboost.readthedocs.io: eta [0,1], gamma, max_depth, min_child_weight,
        # max_delta_step, lambda, alpha [0,inf), subsample and colsample_* (0,1]);
        # at least one tree and one learning step.
        unit = [Interval(Real, 0, 1, closed="right")]
        nonneg = [Interval(Real, 0, None, closed="left")]
        return {
            "n_estimators": [Interval(Integral, 1, None, closed="left")],
            "max_depth": [Interval(Integral, 0, None, closed="left")],
            "learning_rate": unit,
            "subsample": unit,
            "colsample_bytree": unit,
            "colsample_bylevel": unit,
            "min_child_weight": nonneg,
            "reg_lambda": nonneg,
            "reg_alpha": nonneg,
            "gamma": nonneg,
            "min_split_loss": nonneg,
            "max_delta_step": nonneg,
            "max_bin": [Interval(Integral, 2, None, closed="left")],
            "scale_pos_weight": [Interval(Real, 0, None, closed="neither")],
            "monotone": ["boolean"],
            "n_jobs": [Interval(Integral, 1, None, closed="left"), None],
            "tree_method": [StrOptions({"auto", "exact", "approx", "hist"})],
        }

    def build(self, params, catalog, random_state):
        params = dict(params)
        monotone = params.pop("monotone")
        constraints = self.monotone_constraints(catalog) if monotone else None
        clf = XGBClassifier(
            objective="binary:logistic",
            tree_method=params.pop("tree_method", "hist"),
            random_state=random_state,
            monotone_constraints=constraints,
            eval_metric="logloss",
            **params,
        )
        return [("features", build_pipeline(catalog)), ("model", clf)]

    def owns(self, estimator):
        return isinstance(estimator, XGBClassifier)

    @staticmethod
    def monotone_constraints(catalog: Catalog) -> dict[str, int]:
        """The champion's constraints: the non-zero ones of
        :func:`plo_risk.model.features.monotone_constraints` (output columns
        depend only on the catalog, so the pipeline is fitted on one blank row)."""
        fitted = build_pipeline(catalog).fit(blank_frame(catalog))
        return {c: s for c, s in monotone_constraints(fitted, catalog).items() if s}

    def margin(self, clf, X):
        booster = clf.get_booster()
        validate = True
        if (
            isinstance(X, pd.DataFrame)
            and X.columns.tolist() == booster.feature_names
            and "c" not in (booster.feature_types or ())
            and all(dt in (np.float64, np.float32) for dt in X.dtypes)
        ):
            # A numeric frame with the booster's columns in order: a float32 array
            # gives the same margin as the frame (xgboost computes in float32)
            # without xgboost's per-call pandas conversion and name checks.
            X = np.ascontiguousarray(X.to_numpy(dtype=np.float32))
            validate = False
        out = booster.inplace_predict(
            X, predict_type="margin", validate_features=validate
        )
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def array_margin(self, clf, features):
        try:
            arrays = ArrayPipeline(features)
        except TypeError:  # not a pipeline of plo_risk.model.features
            return None
        booster = clf.get_booster()
        if not self.reads_arrays(clf, arrays.names):
            return None

        def matrix(X: pd.DataFrame) -> np.ndarray:
            return np.ascontiguousarray(arrays(X)[0], dtype=np.float32)

        def predict(m: np.ndarray) -> np.ndarray:
            out = booster.inplace_predict(
                m, predict_type="margin", validate_features=False
            )
            return np.asarray(out, dtype=np.float64).reshape(-1)

        return matrix, predict

    def reads_arrays(self, clf, names):
        booster = clf.get_booster()
        return booster.feature_names == names and "c" not in (
            booster.feature_types or ()
        )

    def contributions(self, clf, Xt):
        # Exact path-dependent TreeSHAP (the values of shap.TreeExplainer); the
        # last column is the bias.
        booster = clf.get_booster()
        if isinstance(Xt, np.ndarray):
            # The array path: columns already checked against the booster's
            # feature names, once; xgboost computes in float32 either way.
            dmatrix = DMatrix(Xt, missing=np.nan)
            raw = booster.predict(dmatrix, pred_contribs=True, validate_features=False)
        else:
            raw = booster.predict(DMatrix(Xt, missing=np.nan), pred_contribs=True)
        raw = np.asarray(raw, dtype=np.float64)
        return raw[:, :-1], raw[:, -1]

    def save(self, steps, folder, stem):
        if len(steps) != 1 or not self.owns(steps[0][1]):
            raise BundleFormatError(
                "an xgboost model is one XGBClassifier after the feature pipeline"
            )
        name = f"{stem}{self.file_suffix}"
        steps[0][1].get_booster().save_model(str(folder / name))
        return name

    def load(self, path):
        raw = Path(path).read_bytes()
        try:
            # xgboost's own parser crashes the process on deep nesting: only JSON
            # that Python read, within bounds, reaches it, as those very bytes.
            if not isinstance(strict_json.loads(raw), dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise BundleFormatError(
                f"{path}: not an xgboost JSON model ({exc})"
            ) from exc
        clf = XGBClassifier()
        try:
            clf.load_model(bytearray(raw))
        except Exception as exc:  # noqa: BLE001 - xgboost raises its own error types
            raise BundleFormatError(
                f"{path}: cannot be read by xgboost ({exc})"
            ) from exc
        return [("model", clf)]


# ------------------------------------------------------------ scikit-learn


#: Plain data types any skops file of ours may hold (containers, numbers,
#: arrays); everything else must be in the family's ``trusted_types``.
_SKOPS_BASE_TYPES = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.NoneType",
        "builtins.slice",
        "collections.OrderedDict",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        "numpy.uint64",
        "numpy.bool_",
    }
)


#: What the members of one skops file may hold uncompressed, in all (a zip bomb
#: would otherwise be inflated into memory).
MAX_SKOPS_BYTES = 512 << 20


def _skops_types(path) -> set[str]:
    """``module.Class`` of every object a skops file describes (its schema)."""
    with zipfile.ZipFile(path) as zf:
        total = sum(info.file_size for info in zf.infolist())
        if total > MAX_SKOPS_BYTES:
            raise BundleFormatError(
                f"{path}: its members hold {total:,} bytes uncompressed, over the "
                f"{MAX_SKOPS_BYTES:,} a model file may; refusing to inflate it"
            )
        schema = strict_json.loads(zf.read("schema.json"), max_depth=256)
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__class__"), str) and isinstance(
                node.get("__module__"), str
            ):
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


class _SkopsFamily(ModelFamily):
    """A family stored in skops format, loaded with its own allowlist of types."""

    file_suffix = ".skops"
    #: The exact types a skops file of this family may contain.
    trusted_types: ClassVar[tuple[str, ...]] = ()

    def save(self, steps, folder, stem):
        name = f"{stem}{self.file_suffix}"
        sio.dump(Pipeline(steps), folder / name)
        return name

    def load(self, path):
        try:
            every = _skops_types(path)
            found = set(sio.get_untrusted_types(file=path))
        except BundleFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - skops raises many types
            raise BundleFormatError(
                f"{path}: not a readable skops file ({exc})"
            ) from exc
        # Every type in the file, not only those skops itself distrusts: skops
        # trusts any scikit-learn estimator, so a LogisticRegression renamed to
        # SVC would otherwise be built.
        untrusted = (found | every) - set(self.trusted_types) - _SKOPS_BASE_TYPES
        if untrusted:
            raise BundleFormatError(
                f"{path}: contains types outside the {self.name} allowlist "
                f"{sorted(untrusted)}; refusing to load it"
            )
        try:
            pipe = sio.load(path, trusted=sorted(found))
        except Exception as exc:  # noqa: BLE001
            raise BundleFormatError(f"{path}: cannot be read by skops ({exc})") from exc
        if not isinstance(pipe, Pipeline) or not self.owns(pipe[-1]):
            raise BundleFormatError(
                f"{path}: does not hold a {self.name} model (found "
                f"{type(pipe).__name__})"
            )
        return list(pipe.steps)


class HistGradientBoostingFamily(_SkopsFamily):
    name = "hist_gradient_boosting"
    default_params = {
        "max_iter": 300,
        "learning_rate": 0.05,
        "max_leaf_nodes": 15,
        "l2_regularization": 1.0,
        "early_stopping": False,
    }
    extra_params = frozenset(
        {
            "max_depth",
            "min_samples_leaf",
            "max_bins",
            "max_features",
            "n_iter_no_change",
            "validation_fraction",
            "class_weight",
        }
    )
    missing_values = XGBoostFamily.missing_values.replace(
        "xgboost's default direction", "HistGradientBoosting's missing-value branch"
    )
    trusted_types = (
        "sklearn.pipeline.Pipeline",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
        "HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        # the same Cython loss as the floor scikit-learn (1.6) records it in the
        # schema: under its bare extension-module name
        "_loss.CyHalfBinomialLoss",
        "sklearn.preprocessing._label.LabelEncoder",
        "numpy.random._generator.Generator",
        "numpy.dtype",
        "builtins.slice",
        "collections.OrderedDict",
    )

    estimator_name = "HistGradientBoostingClassifier"

    def param_constraints(self):
        return dict(HistGradientBoostingClassifier._parameter_constraints)

    def build(self, params, catalog, random_state):
        clf = HistGradientBoostingClassifier(random_state=random_state, **params)
        return [("features", build_pipeline(catalog)), ("model", clf)]

    def owns(self, estimator):
        return isinstance(estimator, HistGradientBoostingClassifier)

    @contextlib.contextmanager
    def fit_context(self):
        # scikit-learn's OpenMP threads spin-wait: when another process shares the
        # cores a fit slows 10-20x (measured here). One thread costs ~1.5x at most.
        with threadpool_limits(limits=1, user_api="openmp"):
            yield

    def contributions(self, clf, Xt):
        import shap  # optional heavy import (numba): only when HGB is explained

        if any(
            p.nodes["is_categorical"].any()
            for predictors in clf._predictors
            for p in predictors
        ):
            raise ValueError(
                "contributions: this HistGradientBoostingClassifier has categorical "
                "splits, which shap.TreeExplainer cannot explain; fit it without "
                "categorical_features (the feature pipeline one-hot encodes "
                "categories)"
            )
        explainer = shap.TreeExplainer(clf)
        values = np.asarray(
            explainer.shap_values(np.asarray(Xt, dtype=np.float64)), dtype=np.float64
        )
        if values.ndim != 2:
            raise ValueError(
                "contributions: shap.TreeExplainer returned contributions of shape "
                f"{values.shape} for a HistGradientBoostingClassifier; a binary "
                "classifier with one margin is expected"
            )
        expected = float(np.ravel(explainer.expected_value)[0])
        return values, np.full(len(values), expected)


class LogisticFamily(_SkopsFamily):
    name = "logistic_regression"
    default_params = {
        "C": 1.0,
        "n_knots": 4,
        "spline_columns": [
            "lowest_z",
            "age_years",
            "bmi",
            "lactation_months",
            "vitamin_d_25oh",
            "calcium_intake_mg_day",
        ],
    }
    extra_params = frozenset({"max_iter", "class_weight", "tol"})
    missing_values = (
        "The spline logistic regression imputes the training median and adds "
        "a <field>_missing indicator for often-missing fields."
    )
    trusted_types = (
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.compose._column_transformer._RemainderColsList",
        "sklearn.preprocessing._polynomial.SplineTransformer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.linear_model._logistic.LogisticRegression",
        "scipy.interpolate._bsplines.BSpline",
        # SplineTransformer's BSpline keeps a reference to its array namespace's
        # asarray (a function imported by name; skops never calls it while loading).
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
        "numpy.dtype",
        "builtins.slice",
        "collections.OrderedDict",
    )

    estimator_name = "LogisticRegression"

    def param_constraints(self):
        return {
            **LogisticRegression._parameter_constraints,
            "n_knots": [Interval(Integral, 2, None, closed="left")],
            "spline_columns": [list, tuple],
        }

    def build(self, params, catalog, random_state):
        params = dict(params)
        spline_cols = list(params.pop("spline_columns"))
        n_knots = params.pop("n_knots")
        splines = ColumnTransformer(
            [
                (
                    "splines",
                    SplineTransformer(
                        n_knots=n_knots, degree=3, extrapolation="linear"
                    ),
                    spline_cols,
                )
            ],
            remainder="passthrough",
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        return [
            ("features", build_pipeline(catalog, impute=True)),
            ("splines", splines),
            ("scale", StandardScaler().set_output(transform="pandas")),
            (
                "model",
                LogisticRegression(
                    max_iter=params.pop("max_iter", 2000),
                    random_state=random_state,
                    **params,
                ),
            ),
        ]

    def owns(self, estimator):
        return isinstance(estimator, LogisticRegression)

    def contributions(self, clf, Xt):
        # Linear in its standardized design: column j contributes coef_j * x_j.
        coef = np.asarray(clf.coef_, dtype=np.float64)
        if coef.shape[0] != 1:
            raise ValueError(
                f"contributions: {type(clf).__name__} has {coef.shape[0]} rows of "
                "coefficients; a binary classifier with one margin is expected"
            )
        values = np.asarray(Xt, dtype=np.float64) * coef[0]
        base = float(np.ravel(clf.intercept_)[0])
        return values, np.full(len(values), base)


# ------------------------------------------------------------------ the rule


class ClinicalRuleFamily(ModelFamily):
    name = "clinical_rule"
    default_params = {"threshold": ISCD_Z_THRESHOLD, "column": "lowest_z"}
    missing_values = (
        "The clinical rule puts patients without any Z-score in their own "
        "'no DXA' group with its observed fracture rate."
    )
    file_suffix = ".rule.json"

    estimator_name = "ClinicalRuleClassifier"

    def param_constraints(self):
        return dict(ClinicalRuleClassifier._parameter_constraints)

    def build(self, params, catalog, random_state):
        return [
            ("features", build_pipeline(catalog)),
            ("model", ClinicalRuleClassifier(**params)),
        ]

    def owns(self, estimator):
        return isinstance(estimator, ClinicalRuleClassifier)

    def contributions(self, clf, Xt):
        # Relative to the "unknown" group (no Z-score): the whole difference to
        # the row's group goes to the rule's column.
        check_is_fitted(clf)
        column = clf.column if clf.column is not None else 0
        position = (
            column if isinstance(column, Integral) else Xt.columns.get_loc(column)
        )
        base = float(logit(clf.rates_["unknown"]))
        values = np.zeros(Xt.shape, dtype=np.float64)
        values[:, position] = clf.decision_function(Xt) - base
        return values, np.full(len(values), base)

    def save(self, steps, folder, stem):
        if len(steps) != 1 or not self.owns(steps[0][1]):
            raise BundleFormatError(
                "a clinical rule is one ClinicalRuleClassifier after the features"
            )
        rule = steps[0][1]
        name = f"{stem}{self.file_suffix}"
        doc = {
            "column": rule.column,
            "threshold": float(rule.threshold),
            "rates": rule.rates_,
            "classes": rule.classes_.tolist(),
        }
        (folder / name).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return name

    def load(self, path):
        try:
            doc = strict_json.loads(Path(path).read_bytes(), max_depth=4)
            rule = ClinicalRuleClassifier(
                column=str(doc["column"]), threshold=float(doc["threshold"])
            )
            rule.rates_ = {str(k): float(v) for k, v in doc["rates"].items()}
            rule.classes_ = np.asarray(doc["classes"])
            if not (np.isfinite(rule.threshold) and rule.classes_.ndim == 1):
                raise ValueError("threshold or classes out of range")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleFormatError(f"{path}: not a clinical rule ({exc!r})") from exc
        return [("model", rule)]


# ---------------------------------------------------------------- registry

_GENERIC = ModelFamily()
#: The families, by name, in the order experiments and the docs list them.
FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        XGBoostFamily(),
        HistGradientBoostingFamily(),
        LogisticFamily(),
        ClinicalRuleFamily(),
    )
}
MODEL_NAMES = tuple(FAMILIES)


def get_family(name: str) -> ModelFamily:
    """The family called ``name``.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"The model family must be one of {', '.join(MODEL_NAMES)}. Got "
            f"{name!r} instead."
        ) from None


def family_of(estimator: Any) -> ModelFamily:
    """The family of a classifier, or of the last step of a pipeline.

    A classifier of no known family gets the generic family: its margin is its
    ``decision_function`` (or the logit of ``predict_proba``), and it can be
    neither explained nor saved in a bundle.
    """
    if isinstance(estimator, Pipeline):
        estimator = estimator[-1]
    for family in FAMILIES.values():
        if family.owns(estimator):
            return family
    return _GENERIC

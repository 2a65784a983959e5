"""scikit-learn's estimator checks over every estimator plo_risk defines.

Discovery, so that a new class cannot escape the checks:

1. every module of the ``plo_risk`` package is imported (``pkgutil.walk_packages``);
   a module that fails to import fails ``test_module_imports`` loudly, its classes
   are then missing from this run but never silently;
2. every non-abstract class *defined* in a plo_risk module that subclasses
   ``sklearn.base.BaseEstimator`` is collected;
3. each is checked as ``cls()`` (``__init__`` only stores parameters, so every
   parameter has a default), plus any instance that the defining module returns
   from a module-level ``_test_instances()`` hook. A class that needs constructor
   arguments must appear in its module's hook, or ``test_every_class_is_checked``
   fails.

On top of ``parametrize_with_checks`` (sklearn's API and legacy checks) this runs
the checks scikit-learn applies to its own estimators: parameter validation
(``_parameter_constraints``), ``get_feature_names_out`` and ``set_output``.
No check is marked as an expected failure.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import traceback
from types import ModuleType

import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.utils.estimator_checks import (
    check_get_feature_names_out_error,
    check_global_output_transform_pandas,
    check_param_validation,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    parametrize_with_checks,
)

import plo_risk

MODULE_NAMES = sorted(
    info.name
    for info in pkgutil.walk_packages(plo_risk.__path__, prefix=f"{plo_risk.__name__}.")
)


def _import_all() -> tuple[dict[str, ModuleType], dict[str, str]]:
    modules, errors = {"plo_risk": plo_risk}, {}
    for name in MODULE_NAMES:
        try:
            modules[name] = importlib.import_module(name)
        except Exception:  # reported by test_module_imports
            errors[name] = traceback.format_exc()
    return modules, errors


MODULES, IMPORT_ERRORS = _import_all()


def _estimator_classes() -> list[type]:
    classes = []
    for module in MODULES.values():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == module.__name__
                and issubclass(cls, BaseEstimator)
                and not inspect.isabstract(cls)
            ):
                classes.append(cls)
    return sorted(set(classes), key=lambda c: (c.__module__, c.__name__))


def _hook_instances() -> list[BaseEstimator]:
    instances = []
    for module in MODULES.values():
        hook = getattr(module, "_test_instances", None)
        if callable(hook):
            instances.extend(hook())
    return instances


CLASSES = _estimator_classes()
UNCONSTRUCTIBLE: dict[type, str] = {}


def _instances() -> list[BaseEstimator]:
    instances = []
    for cls in CLASSES:
        try:
            instances.append(cls())
        except TypeError as exc:
            UNCONSTRUCTIBLE[cls] = str(exc)
    return instances + _hook_instances()


INSTANCES = _instances()


def _id(estimator: BaseEstimator) -> str:
    return repr(estimator).replace("\n", "").replace(" ", "")


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_module_imports(module_name):
    # A module that cannot be imported would hide its estimators from the checks.
    assert module_name not in IMPORT_ERRORS, IMPORT_ERRORS[module_name]


def test_discovery_finds_the_feature_transformers():
    names = {cls.__name__ for cls in CLASSES}
    expected = {
        "CatalogEncoder",
        "RowMin",
        "Sum",
        "Product",
        "Ratio",
        "Bands",
        "MedianImputer",
    }
    assert expected <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_class_is_checked(cls):
    checked = {type(est) for est in INSTANCES}
    assert cls in checked, (
        f"{cls.__name__} cannot be built without arguments "
        f"({UNCONSTRUCTIBLE.get(cls)}); give every parameter a default or return "
        f"an instance from {cls.__module__}._test_instances()"
    )


@parametrize_with_checks(INSTANCES)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# The checks scikit-learn runs on its own estimators (sklearn/tests/test_common.py)
# beyond parametrize_with_checks.
EXTRA_CHECKS = [check_param_validation]
# STYLE.md: every transformer supports get_feature_names_out and set_output.
TRANSFORMER_CHECKS = [
    check_get_feature_names_out_error,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_global_output_transform_pandas,
]


@pytest.mark.parametrize("estimator", INSTANCES, ids=_id)
@pytest.mark.parametrize("check", EXTRA_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_extra_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


TRANSFORMERS = [est for est in INSTANCES if hasattr(est, "transform")]


# These checks fit on a DataFrame and transform an ndarray (and the reverse) on
# purpose; sklearn's feature-name warnings about it are expected.
@pytest.mark.filterwarnings("ignore:X (has|does not have valid) feature names")
@pytest.mark.parametrize("estimator", TRANSFORMERS, ids=_id)
@pytest.mark.parametrize("check", TRANSFORMER_CHECKS, ids=lambda c: c.__name__)
def test_transformer_output_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_init_arguments_are_keyword_only(cls):
    # STYLE.md: __init__ only stores parameters, all keyword-only.
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    positional = [
        p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    assert not positional, f"{cls.__name__}: make {positional} keyword-only"

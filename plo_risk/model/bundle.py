"""Model bundles: a folder that loads without executing code.

A bundle holds one fitted :class:`~plo_risk.model.calibration.PlattCalibratedClassifier`:

``manifest.json``
    Format, library versions, the catalog's sha256, the training-data fingerprint,
    metrics, thresholds, the Platt calibration, and the sha256 of every other file.
    It is written as canonical JSON and carries its own hash, so any changed byte
    is noticed.
``features.json``
    The fitted feature pipeline as plain JSON
    (:func:`plo_risk.model.features.pipeline_to_dict`).
``model.<ext>``
    The steps after the feature pipeline, written by the model's family
    (:mod:`plo_risk.model.families`): the xgboost booster in xgboost's own JSON
    format (the champion), the clinical rule's threshold and group rates as JSON,
    or the scikit-learn comparators in skops format, loaded with the family's
    allowlist of types (skops rebuilds objects from a schema; it never unpickles).
``ensemble-NNN.<ext>``
    The members of the bootstrap interval ensemble, in the same format.
``horizon-features.json``, ``horizon-model.json`` (optional)
    The horizon model (:mod:`plo_risk.model.horizon`): its fitted feature pipeline
    as JSON and its xgboost hazard learner in xgboost's JSON format; its per-horizon
    calibration, intervals and the interventions it learned from are the
    manifest's ``horizon`` section.
``signature.ed25519`` (optional)
    An Ed25519 signature over :func:`bundle_digest` (:func:`sign_bundle`), the
    only file a bundle may hold that its manifest does not list;
    ``load_bundle(path, public_key=...)`` requires it.

No pickle, joblib or cloudpickle is on any load path. A changed byte, a missing or
extra file, or a catalog mismatch is refused with an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import reprlib
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from plo_risk.data.catalog import Catalog, load_catalog
from plo_risk.model.calibration import PlattCalibratedClassifier
from plo_risk.model.families import (
    FAMILIES,
    BundleFormatError,
    family_of,
    get_family,
)
from plo_risk.model.features import pipeline_from_dict, pipeline_to_dict
from plo_risk.model.horizon import (
    HORIZON_FEATURES,
    HORIZON_MODEL,
    horizon_from_state,
    horizon_state,
    write_learner,
)
from plo_risk.model.signing import (
    MAX_SIGNATURE_BYTES,
    SIGNATURE,
    SigningKeyError,
    load_private_key,
    load_public_key,
    sign_digest,
    signature_problem,
)
from plo_risk.utils import strict_json
from plo_risk.utils.version import package_version

__all__ = [
    "BundleError",
    "BundleInfo",
    "SigningKeyError",
    "bundle_digest",
    "data_fingerprint",
    "load_bundle",
    "save_bundle",
    "sign_bundle",
]

FORMAT = "plo-risk-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FEATURES = "features.json"


class BundleError(ValueError):
    """A bundle that cannot be trusted or read; the message names the file or field."""


@dataclass
class BundleInfo:
    """What a bundle says about its model (the manifest, parsed)."""

    model_name: str
    model_version: str
    created: str
    catalog_sha256: str
    versions: dict[str, str]
    training_data: dict[str, Any]
    metrics: dict[str, Any]
    thresholds: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


def data_fingerprint(frame: pd.DataFrame, y: Any | None = None) -> dict[str, Any]:
    """A fingerprint of training data: sha256 of its rows, size and prevalence.

    Identifies the data a model was trained on without storing any row.
    """
    h = hashlib.sha256()
    h.update(",".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    out: dict[str, Any] = {"n_rows": int(len(frame)), "n_columns": int(frame.shape[1])}
    if y is not None:
        y = np.asarray(y)
        h.update(y.astype(np.int64).tobytes())
        out["prevalence"] = float(y.mean()) if len(y) else None
    out["sha256"] = h.hexdigest()
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("plo-risk", "xgboost-cpu", "scikit-learn", "numpy", "pandas", "skops"):
        try:
            out[dist] = version(dist)
        except Exception:  # noqa: BLE001 - a missing distribution is just not listed
            pass
    return out


def _canonical(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def save_bundle(
    model: Any,
    path: str | Path,
    *,
    model_name: str,
    metrics: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    catalog: Catalog | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a fitted model as a bundle folder.

    Parameters
    ----------
    model : PlattCalibratedClassifier
        Fitted; its ``estimator_`` is ``Pipeline([("features", ...), ...])``.
    path : str or Path
        Folder to create. Written to a temporary sibling first, then renamed.
    model_name : str
        Which model of the zoo (``"xgboost"``, ...).
    metrics, training_data, extra : dict, default=None
        Plain JSON-able data for the manifest (no row-level data).
    catalog : Catalog, default=None
    overwrite : bool, default=False
        Replace an existing bundle folder.

    Returns
    -------
    Path
    """
    check_is_fitted(model)
    catalog = catalog or load_catalog()
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    pipe = model.estimator_
    if not isinstance(pipe, Pipeline) or pipe.steps[0][0] != "features":
        raise BundleError(
            "The model's estimator_ must be a Pipeline whose first step is 'features'"
        )
    family = family_of(pipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / FEATURES).write_bytes(
            _canonical(pipeline_to_dict(pipe.named_steps["features"]))
        )
        try:
            model_file = family.save(pipe.steps[1:], tmp, "model")
            ensemble = [
                {
                    "file": family.save(
                        [("model", member["estimator"])], tmp, f"ensemble-{i:03d}"
                    ),
                    "intercept": float(member["intercept"]),
                    "slope": float(member["slope"]),
                }
                for i, member in enumerate(getattr(model, "ensemble_", None) or [])
            ]
        except BundleFormatError as exc:
            raise BundleError(str(exc)) from None
        horizon = getattr(model, "horizon_", None)
        horizon_section = None
        if horizon is not None:
            (tmp / HORIZON_FEATURES).write_bytes(
                _canonical(pipeline_to_dict(horizon.features_))
            )
            write_learner(horizon, tmp / HORIZON_MODEL)
            horizon_section = horizon_state(
                horizon, getattr(model, "horizon_interval_", None)
            )
            horizon_section["features_file"] = HORIZON_FEATURES
            horizon_section["model_file"] = (
                HORIZON_MODEL if (tmp / HORIZON_MODEL).exists() else None
            )
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_name": model_name,
            "family": family.name,
            "model_file": model_file,
            "model_version": (extra or {}).get("model_version")
            or datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": {**_versions(), "plo_risk": package_version()},
            "catalog_sha256": catalog.sha256,
            "feature_names_in": [
                str(c) for c in getattr(model, "feature_names_in_", [])
            ],
            "calibration": {
                "intercept": float(model.intercept_),
                "slope": float(model.slope_),
                "prevalence": float(model.prevalence_),
                "n_train": int(getattr(model, "n_train_", 0)),
                "cv": int(model.cv),
                "classes": [_jsonable(c) for c in np.asarray(model.classes_).tolist()],
            },
            "thresholds": {k: float(v) for k, v in (model.thresholds or {}).items()},
            "ensemble": ensemble,
            "horizon": _jsonable(horizon_section),
            "training_data": dict(training_data or {}),
            "metrics": _jsonable(dict(metrics or {})),
            "extra": _jsonable(
                {k: v for k, v in (extra or {}).items() if k != "model_version"}
            ),
            "files": files,
        }
        manifest["manifest_sha256"] = hashlib.sha256(_canonical(manifest)).hexdigest()
        (tmp / MANIFEST).write_bytes(_canonical(manifest))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if np.isfinite(x) else None
    return obj


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a bundle's manifest and files (hashes, no missing, no extra).

    Raises
    ------
    BundleError
        Naming the file that is missing, extra or changed.
    """
    return _read_manifest(Path(path), values=True)[0]


def bundle_digest(path: str | Path) -> str:
    """The sha256 of a bundle: of its ``manifest.json``, after checking every file.

    The manifest lists the sha256 of every other file and is written as canonical
    JSON, so this one digest pins the whole bundle: any changed byte of any file,
    a file added or removed, or a manifest resealed by hand gives another digest.
    MLflow's registry records it at registration (the model version tag
    ``plo_risk.bundle_sha256``) and :func:`sign_bundle` signs it.

    Parameters
    ----------
    path : str or Path
        A bundle folder.

    Returns
    -------
    str
        64 hexadecimal digits.

    Raises
    ------
    BundleError
        When the bundle does not check (a changed, missing or extra file). Its
        fields' ranges are checked on load, not here: a bundle training wrote has
        a digest even when it cannot be served (a constant model's slope).

    Examples
    --------
    >>> import tempfile
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> from plo_risk.model.zoo import make_model
    >>> X = generate_cohort(400, seed=1).drop(
    ...     columns=["patient_id", "fracture", "true_risk"])
    >>> y = generate_cohort(400, seed=1)["fracture"]
    >>> model = make_model("clinical_rule", cv=2).fit(X, y)
    >>> folder = save_bundle(model, tempfile.mkdtemp() + "/b", model_name="rule")
    >>> digest = bundle_digest(folder)
    >>> len(digest), digest == bundle_digest(folder)
    (64, True)
    """
    return _read_manifest(Path(path), values=False)[1]


def _read_manifest(path: Path, *, values: bool) -> tuple[dict[str, Any], str]:
    if not path.is_dir():
        raise BundleError(
            f"{path}: not a bundle folder (it does not exist or is a file)"
        )
    mpath = path / MANIFEST
    if not os.path.lexists(mpath):
        raise BundleError(f"{path}: {MANIFEST} is missing")
    raw = _read_regular(mpath, MAX_MANIFEST_BYTES)
    try:
        manifest = strict_json.loads(raw, max_depth=MAX_JSON_DEPTH)
    except ValueError as exc:
        raise BundleError(f"{mpath}: manifest.json is corrupt ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{mpath}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{mpath}: format_version={reprlib.repr(manifest.get('format_version'))}"
            f"; this plo_risk reads version {FORMAT_VERSION}"
        )
    claimed = manifest.pop("manifest_sha256", None)
    if claimed != hashlib.sha256(_canonical(manifest)).hexdigest() or raw != _canonical(
        {**manifest, "manifest_sha256": claimed}
    ):
        raise BundleError(
            f"{mpath}: manifest.json was modified (its hash does not match its content)"
        )
    _check_fields(manifest, mpath, values=values)
    files = manifest["files"]
    try:
        present = {p.name for p in path.iterdir()} - {MANIFEST}
    except OSError as exc:
        raise BundleError(f"{path}: cannot be listed ({exc.strerror})") from exc
    for name in sorted(set(files) - present):
        raise BundleError(f"{path}: {name} is missing (listed in manifest.json)")
    for name in sorted(present - set(files) - {SIGNATURE}):
        raise BundleError(
            f"{path}: {name} is not part of the bundle (not in "
            "manifest.json); remove it"
        )
    for name, digest in sorted(files.items()):
        if hashlib.sha256(_read_regular(path / name)).hexdigest() != digest:
            raise BundleError(
                f"{path / name}: {name} was modified (sha256 does not "
                "match manifest.json)"
            )
    if SIGNATURE in present:  # read only when a key is given, but never a FIFO
        _check_regular(
            path / SIGNATURE, os.lstat(path / SIGNATURE), MAX_SIGNATURE_BYTES
        )
    return manifest, hashlib.sha256(raw).hexdigest()


def _check_regular(path: Path, info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise BundleError(
            f"{path}: not a regular file (a link, folder or device); "
            "refusing to read it"
        )
    if info.st_size > limit:
        raise BundleError(
            f"{path}: {info.st_size:,} bytes, over the {limit:,} a bundle file may hold"
        )


def _read_regular(path: Path, limit: int | None = None) -> bytes:
    """A bundle file's bytes. A link, folder, FIFO or device is refused from its
    lstat, before it is opened; the open never follows a link nor blocks, and the
    opened file is checked again (it may have been swapped in between)."""
    limit = MAX_FILE_BYTES if limit is None else limit
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror})") from exc
    _check_regular(path, info, limit)
    flags = os.O_RDONLY | os.O_NONBLOCK
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise BundleError(f"{path}: replaced while it was read; refusing it")
        _check_regular(path, opened, limit)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise BundleError(f"{path}: grew over {limit:,} bytes while it was read")
    return raw


#: The largest file a bundle may hold (a model of ours is a few MB).
MAX_FILE_BYTES = 512 << 20
#: The largest manifest.json and features.json (ours are well under 1 MB).
MAX_MANIFEST_BYTES = 32 << 20
#: The deepest nesting of a bundle's JSON files (ours: under 10 levels).
MAX_JSON_DEPTH = 32


def _finite(value: Any, *, positive: bool = False, unit: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    x = float(value)
    if not math.isfinite(x):
        return False
    if positive and not x > 0:
        return False
    return not unit or 0.0 < x < 1.0


def _plain_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
    )


def _check_fields(
    manifest: Mapping[str, Any], mpath: Path, *, values: bool = True
) -> None:
    """Every field a load reads has its type and range: plain file names inside the
    bundle, a positive finite calibration slope, thresholds in (0, 1), ...
    A bundle resealed by hand with a slope of 0 or a member outside it is refused.
    ``values=False`` checks only the file list (what a digest needs to read)."""
    problems: list[str] = []
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        problems.append("files: must map file names to sha256 digests")
        files = {}
    for name, digest in files.items():
        if not _plain_name(name):
            problems.append(f"files: {name!r} is not a plain file name in the bundle")
        if not (isinstance(digest, str) and len(digest) == 64):
            problems.append(f"files: {name!r} has no sha256 digest")
        if name == SIGNATURE:
            problems.append(f"files: {name!r} is the signature's name, not a file's")
    if not values:
        if problems:
            raise BundleError(f"{mpath}: " + "; ".join(problems))
        return
    model_file = manifest.get("model_file")
    if model_file is not None and model_file not in files:
        problems.append(f"model_file: {model_file!r} is not one of the bundle's files")
    cal = manifest.get("calibration")
    if not isinstance(cal, dict):
        problems.append("calibration: missing")
        cal = {}
    if not _finite(cal.get("intercept")):
        problems.append(
            f"calibration.intercept: {cal.get('intercept')!r} is not finite"
        )
    if not _finite(cal.get("slope"), positive=True):
        problems.append(
            f"calibration.slope: {cal.get('slope')!r}; must be finite and above 0"
        )
    if not _finite(cal.get("prevalence"), unit=True):
        problems.append(
            f"calibration.prevalence: {cal.get('prevalence')!r}; must be in (0, 1)"
        )
    for key in ("n_train", "cv"):
        v = cal.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            problems.append(f"calibration.{key}: {v!r}; must be a whole number >= 0")
    thresholds = manifest.get("thresholds")
    if not isinstance(thresholds, dict):
        problems.append("thresholds: must map categories to risks")
        thresholds = {}
    for name, value in thresholds.items():
        if not _finite(value, unit=True):
            problems.append(f"thresholds.{name}: {value!r}; must be in (0, 1)")
    values = [v for v in thresholds.values() if _finite(v, unit=True)]
    if len(set(values)) != len(values):
        problems.append("thresholds: two categories share one threshold")
    ensemble = manifest.get("ensemble") or []
    if not isinstance(ensemble, list):
        problems.append("ensemble: must be a list of members")
        ensemble = []
    for i, member in enumerate(ensemble):
        if not isinstance(member, dict):
            problems.append(f"ensemble[{i}]: must be an object")
            continue
        if member.get("file") not in files:
            problems.append(
                f"ensemble[{i}].file: {member.get('file')!r} is not one of the "
                "bundle's files"
            )
        if not _finite(member.get("intercept")):
            problems.append(f"ensemble[{i}].intercept: not finite")
        if not _finite(member.get("slope"), positive=True):
            problems.append(f"ensemble[{i}].slope: must be finite and above 0")
    problems += _horizon_problems(manifest.get("horizon"), files)
    for key in ("model_name", "model_version", "created", "catalog_sha256"):
        if not isinstance(manifest.get(key), str):
            problems.append(f"{key}: missing or not text")
    for key in ("family", "model_kind"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            problems.append(f"{key}: must be text")
    for key in ("versions", "training_data", "metrics"):
        if not isinstance(manifest.get(key), dict):
            problems.append(f"{key}: missing or not an object")
    if manifest.get("extra") is not None and not isinstance(manifest["extra"], dict):
        problems.append("extra: must be an object")
    names = manifest.get("feature_names_in") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.append("feature_names_in: must be a list of field names")
    classes = cal.get("classes", [0, 1])
    if not (
        isinstance(classes, list)
        and len(classes) == 2
        and all(isinstance(c, (int, float, str)) for c in classes)
    ):
        problems.append("calibration.classes: must be the two outcome classes")
    if problems:
        raise BundleError(f"{mpath}: " + "; ".join(problems))


def _horizon_problems(section: Any, files: Mapping[str, Any]) -> list[str]:
    """The horizon model's fields: files of the bundle, finite calibrations with a
    positive slope, prevalences in (0, 1), interval tables of finite numbers."""
    if section is None:
        return []
    if not isinstance(section, dict):
        return ["horizon: must be an object"]
    problems = []
    if section.get("features_file") not in files:
        problems.append("horizon.features_file: not one of the bundle's files")
    if section.get("family") not in ("xgboost", "logistic_regression"):
        problems.append(
            f"horizon.family: {section.get('family')!r}; must be xgboost or "
            "logistic_regression"
        )
    elif section["family"] == "xgboost" and section.get("model_file") not in files:
        problems.append("horizon.model_file: not one of the bundle's files")
    elif section["family"] == "xgboost":
        course = section.get("course")
        n_terms = len(course.get("terms") or []) if isinstance(course, dict) else 0
        ok = (
            isinstance(course, dict)
            and n_terms > 0
            and _finite(course.get("intercept"))
            and all(
                isinstance(course.get(k), list)
                and len(course[k]) == n_terms
                and all(_finite(v) for v in course[k])
                for k in ("coef", "se", "mean")
            )
        )
        if not ok:
            problems.append(
                "horizon.course: must hold finite coef, se and mean per course term"
            )
    elif section["family"] == "logistic_regression" and not isinstance(
        section.get("logistic"), dict
    ):
        problems.append("horizon.logistic: the coefficients are missing")
    horizons = section.get("horizons")
    if (
        not isinstance(horizons, list)
        or not horizons
        or not all(
            h == "end" or (_finite(h, positive=True) and float(h) <= 21)
            for h in horizons
        )
    ):
        problems.append("horizon.horizons: must list months in (0, 21] or 'end'")
    cal = section.get("calibration")
    if not isinstance(cal, dict) or not cal:
        problems.append("horizon.calibration: missing")
        cal = {}
    for label, pair in cal.items():
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and _finite(pair[0])
            and _finite(pair[1], positive=True)
        ):
            problems.append(
                f"horizon.calibration.{label}: must be [intercept, slope > 0], finite"
            )
    fill = section.get("course_fill")
    needed = {"plan", "low_vitamin_d", "calcium", "exclusive", "smoking"}
    if not (
        isinstance(fill, dict)
        and needed <= set(fill)
        and all(_finite(fill[k]) for k in needed)
    ):
        problems.append(
            "horizon.course_fill: must give a finite value for "
            + ", ".join(sorted(needed))
        )
    prevalence = section.get("prevalence")
    if not isinstance(prevalence, dict) or not all(
        _finite(v, unit=True) for v in prevalence.values()
    ):
        problems.append("horizon.prevalence: each must be in (0, 1)")
    names = section.get("feature_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.append("horizon.feature_names: must be a list of names")
    for key in ("n_train", "n_events"):
        v = section.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            problems.append(f"horizon.{key}: {v!r}; must be a whole number >= 0")
    interval = section.get("interval")
    if interval is not None:
        problems += _interval_problems(interval)
    return problems


def _interval_problems(interval: Any) -> list[str]:
    if not isinstance(interval, dict) or not isinstance(interval.get("table"), dict):
        return ["horizon.interval: must hold a table per horizon"]
    problems = []
    for label, entry in interval["table"].items():
        where = f"horizon.interval.table.{label}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be an object")
            continue
        edges, low, high = entry.get("edges"), entry.get("low"), entry.get("high")
        if not all(isinstance(x, list) and len(x) == 3 for x in (edges, low, high)):
            problems.append(f"{where}: edges, low and high per group (3 groups)")
            continue
        for g in range(3):
            e, lo, hi = edges[g], low[g], high[g]
            ok = (
                isinstance(e, list)
                and isinstance(lo, list)
                and isinstance(hi, list)
                and len(lo) == len(hi) == len(e) + 1
                and all(_finite(v) for v in [*e, *lo, *hi])
            )
            if (
                not ok
                or list(e) != sorted(e)
                or any(a > b for a, b in zip(lo, hi, strict=True))
            ):
                problems.append(
                    f"{where}: group {g} must have sorted finite edges and one "
                    "finite low <= high per bin"
                )
    return problems


def sign_bundle(path: str | Path, key_file: str | Path) -> Path:
    """Sign a bundle with an Ed25519 key: write ``signature.ed25519`` into it.

    The signature is over :func:`bundle_digest`, so it covers every file; it is
    the one file a bundle may hold besides those its manifest lists. Load with
    ``load_bundle(path, public_key=...)`` (or ``RiskModel.load``) to require it.

    Parameters
    ----------
    path : str or Path
        A bundle folder; it must load (its fields are checked).
    key_file : str or Path
        A private key of :func:`plo_risk.model.signing.generate_signing_key`,
        readable by its owner only.

    Returns
    -------
    Path
        The signature file.

    Raises
    ------
    BundleError
        If the bundle does not check.
    SigningKeyError
        A key file that is missing, readable by others, or not Ed25519.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from plo_risk.data.synthetic import generate_cohort
    >>> from plo_risk.model.signing import generate_signing_key
    >>> from plo_risk.model.zoo import make_model
    >>> df = generate_cohort(400, seed=1)
    >>> model = make_model("clinical_rule", cv=2).fit(
    ...     df.drop(columns=["patient_id", "fracture", "true_risk"]), df["fracture"])
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> folder = save_bundle(model, tmp / "bundle", model_name="rule")
    >>> public = generate_signing_key(tmp / "signing.key")
    >>> sign_bundle(folder, tmp / "signing.key").name
    'signature.ed25519'
    >>> _ = load_bundle(folder, public_key=public)    # refused if changed since
    """
    path = Path(path)
    key = load_private_key(key_file)
    _, digest = _read_manifest(path, values=True)
    target = path / SIGNATURE
    tmp = path / f".{SIGNATURE}.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(sign_digest(digest, key))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _check_signature(path: Path, digest: str, public_key: Any) -> None:
    key = load_public_key(public_key)
    sig = path / SIGNATURE
    if not os.path.lexists(sig):
        raise BundleError(
            f"{path}: {SIGNATURE} is missing: the bundle is not signed, and a "
            f"public key was given (sign it: plo-risk sign --model {path} --key KEY)"
        )
    problem = signature_problem(_read_regular(sig, MAX_SIGNATURE_BYTES), digest, key)
    if problem:
        raise BundleError(f"{sig}: {problem}; refusing the bundle")


def load_bundle(
    path: str | Path, *, catalog: Catalog | None = None, public_key: Any = None
):
    """Load a bundle folder into a fitted model, without executing code.

    Parameters
    ----------
    path : str or Path
    catalog : Catalog, default=None
        Must be the catalog the model was trained with (checked by hash).
    public_key : str, Path, bytes or Ed25519PublicKey, default=None
        When given, the bundle must carry a signature (:func:`sign_bundle`) by
        this key over its digest: a missing, foreign or stale signature is refused.

    Returns
    -------
    (PlattCalibratedClassifier, BundleInfo)

    Raises
    ------
    BundleError
        A missing, extra or changed file, a catalog mismatch, or (with
        ``public_key``) a missing or wrong signature, named.
    SigningKeyError
        A ``public_key`` file that is not an Ed25519 public key.
    """
    path = Path(path)
    catalog = catalog or load_catalog()
    manifest, digest = _read_manifest(path, values=True)
    if public_key is not None:
        _check_signature(path, digest, public_key)
    if manifest["catalog_sha256"] != catalog.sha256:
        raise BundleError(
            f"{path}: the model was trained with another feature catalog "
            f"(catalog sha256 {manifest['catalog_sha256'][:12]}..., this catalog "
            f"{catalog.sha256[:12]}... at {catalog.path}); retrain it or load it "
            "with the catalog it was trained with"
        )
    files = manifest["files"]
    if FEATURES not in files:
        raise BundleError(f"{path / MANIFEST}: files: {FEATURES} is not listed")
    with _reading(path / FEATURES):
        raw = _read_regular(path / FEATURES, MAX_MANIFEST_BYTES)
        features = pipeline_from_dict(
            strict_json.loads(raw, max_depth=MAX_JSON_DEPTH), catalog
        )
    family, model_file = _family_and_file(manifest, path)
    with _reading(path / model_file):
        tail = family.load(path / model_file)
    members = []
    for member in manifest.get("ensemble") or []:
        with _reading(path / member["file"]):
            members.append(
                {
                    "estimator": family.load(path / member["file"])[-1][1],
                    "intercept": float(member["intercept"]),
                    "slope": float(member["slope"]),
                }
            )
    with _reading(path / MANIFEST):
        model, info = _assemble(manifest, features, tail, members)
    section = manifest.get("horizon")
    if section:
        with _reading(path / section["features_file"]):
            raw = _read_regular(path / section["features_file"], MAX_MANIFEST_BYTES)
            hfeatures = pipeline_from_dict(
                strict_json.loads(raw, max_depth=MAX_JSON_DEPTH), catalog
            )
        booster = None
        if section.get("model_file"):
            learner = path / section["model_file"]
            with _reading(learner):
                booster = _read_regular(learner)
                if not isinstance(strict_json.loads(booster), dict):
                    raise ValueError("not an xgboost JSON model")
        with _reading(path / MANIFEST):
            model.horizon_, model.horizon_interval_ = horizon_from_state(
                section, hfeatures, booster, catalog
            )
    return model, info


def _assemble(manifest, features, tail, members):
    pipe = Pipeline([("features", features), *tail])
    cal = manifest["calibration"]
    model = PlattCalibratedClassifier(
        estimator=pipe, cv=cal["cv"], thresholds=manifest["thresholds"] or None
    )
    model.estimator_ = pipe
    model.intercept_ = float(cal["intercept"])
    model.slope_ = float(cal["slope"])
    model.prevalence_ = float(cal["prevalence"])
    model.n_train_ = int(cal["n_train"])
    model.classes_ = np.asarray(cal.get("classes", [0, 1]))
    if members:
        model.ensemble_ = members
    names = manifest.get("feature_names_in") or []
    if names:
        model.feature_names_in_ = np.asarray(names, dtype=object)
        model.n_features_in_ = len(names)
    info = BundleInfo(
        model_name=manifest["model_name"],
        model_version=manifest["model_version"],
        created=manifest["created"],
        catalog_sha256=manifest["catalog_sha256"],
        versions=manifest["versions"],
        training_data=manifest["training_data"],
        metrics=manifest["metrics"],
        thresholds=manifest["thresholds"],
        extra=manifest.get("extra") or {},
    )
    return model, info


#: What a bundle file that cannot be parsed raises from the libraries that read
#: it (json, xgboost, skops, zipfile, numpy, our transformers' constructors).
#: Programming errors (NameError, ImportError, AssertionError, ...) are not in it:
#: they propagate as they are.
_DATA_ERRORS = (
    ValueError,  # also json, Unicode and xgboost's errors
    TypeError,
    LookupError,  # KeyError, IndexError
    AttributeError,
    ArithmeticError,  # OverflowError
    RecursionError,
    MemoryError,
    OSError,  # IsADirectoryError, PermissionError, ...
    EOFError,
    zipfile.BadZipFile,
)


@contextmanager
def _reading(file: Path):
    """Any failure to parse ``file`` becomes a BundleError naming it; the original
    exception stays as its ``__cause__``."""
    try:
        yield
    except BundleError:
        raise
    except BundleFormatError as exc:
        raise BundleError(str(exc)) from exc
    except _DATA_ERRORS as exc:
        reason = str(exc) if len(str(exc)) <= 300 else str(exc)[:297] + "..."
        if isinstance(exc, RecursionError):
            reason = "nested too deeply to be read"
        elif isinstance(exc, MemoryError):
            reason = "too large to be read into memory"
        raise BundleError(
            f"{file}: cannot be read as part of a bundle ({type(exc).__name__}: "
            f"{reason})"
        ) from exc


# Bundles written before families were recorded name a storage kind instead;
# their files had fixed names.
_LEGACY_KINDS = {
    "xgboost": ("xgboost", "model.json"),
    "clinical_rule": ("clinical_rule", "rule.json"),
}


def _family_and_file(manifest: Mapping[str, Any], path: Path):
    name = manifest.get("family")
    model_file = manifest.get("model_file")
    if name is None:
        kind = manifest.get("model_kind")
        if kind in _LEGACY_KINDS:
            name, model_file = _LEGACY_KINDS[kind]
        elif kind == "sklearn":
            name, model_file = manifest.get("model_name"), "model.skops"
    try:
        family = get_family(name)
    except ValueError:
        raise BundleError(
            f"{path / MANIFEST}: unknown model family {name!r}; this plo_risk reads "
            f"{', '.join(FAMILIES)}"
        ) from None
    if not isinstance(model_file, str) or model_file not in manifest["files"]:
        raise BundleError(
            f"{path / MANIFEST}: no model file among the bundle's files recorded"
        )
    return family, model_file

"""Bundles: exact round trip, tamper detection, and no pickle on the load path."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import yaml

from plo_risk.data.catalog import load_catalog
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import BundleError, load_bundle, read_manifest, save_bundle
from plo_risk.model.zoo import MODEL_NAMES, make_model
from tests.forge import reseal


@pytest.fixture(scope="module")
def data():
    df = generate_cohort(3000, seed=5, missingness="realistic")
    valid = validate_frame(df).valid
    y = valid["fracture"].to_numpy()
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    return X, y


_SMALL = {
    "xgboost": {"n_estimators": 30},
    "hist_gradient_boosting": {"max_iter": 30},
    "logistic_regression": {},
    "clinical_rule": {},
}


@pytest.fixture(scope="module")
def bundles(data, tmp_path_factory):
    X, y = data
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for name in MODEL_NAMES:
        model = make_model(
            name, params=_SMALL[name], cv=3, thresholds={"moderate": 0.02, "high": 0.1}
        ).fit(X, y)
        path = save_bundle(
            model, root / name, model_name=name, metrics={"auroc": {"estimate": 0.8}}
        )
        out[name] = (model, path)
    return out


def _no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was called on the load path")

    for attr in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, attr, refuse)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_identical_and_never_unpickles(name, bundles, data, monkeypatch):
    X, _ = data
    model, path = bundles[name]
    _no_pickle(monkeypatch)
    loaded, info = load_bundle(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert info.model_name == name and info.thresholds == {
        "moderate": 0.02,
        "high": 0.1,
    }
    assert list(loaded.categorize([0.01, 0.05, 0.5])) == ["low", "moderate", "high"]


def _copy(path, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(path, dst)
    return dst


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_flipped_byte_in_any_file_is_refused(name, bundles, tmp_path):
    _, path = bundles[name]
    for file in sorted(p.name for p in path.iterdir()):
        dst = _copy(path, tmp_path / file)
        raw = bytearray((dst / file).read_bytes())
        raw[len(raw) // 2] ^= 0x01
        (dst / file).write_bytes(bytes(raw))
        with pytest.raises(BundleError, match=file.replace(".", r"\.")):
            load_bundle(dst)


def test_removed_and_extra_files_are_refused(bundles, tmp_path):
    _, path = bundles["xgboost"]
    dst = _copy(path, tmp_path / "removed")
    (dst / "features.json").unlink()
    with pytest.raises(BundleError, match=r"features\.json is missing"):
        load_bundle(dst)
    dst = _copy(path, tmp_path / "extra")
    (dst / "evil.pkl").write_bytes(b"x")
    with pytest.raises(BundleError, match=r"evil\.pkl is not part of the bundle"):
        load_bundle(dst)
    dst = _copy(path, tmp_path / "nomanifest")
    (dst / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        load_bundle(dst)


def test_catalog_change_is_refused(bundles, tmp_path):
    _, path = bundles["xgboost"]
    doc = yaml.safe_load(load_catalog().path and open(load_catalog().path).read())
    doc["fields"][0]["label"] = "Age (changed)"
    changed = tmp_path / "catalog.yaml"
    changed.write_text(yaml.safe_dump(doc))
    with pytest.raises(BundleError, match="another feature catalog"):
        load_bundle(path, catalog=load_catalog(changed))


def test_manifest_lists_versions_hashes_and_fingerprint(bundles):
    _, path = bundles["xgboost"]
    manifest = read_manifest(path)
    assert set(manifest["files"]) == {"features.json", "model.json"}
    assert manifest["catalog_sha256"] == load_catalog().sha256
    assert {"xgboost-cpu", "scikit-learn", "python"} <= set(manifest["versions"])
    assert manifest["calibration"]["slope"] != 0


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a bundle folder"):
        load_bundle(tmp_path / "nothing")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_family_keeps_its_interval_ensemble(data, tmp_path, name):
    # The first wave saved the bootstrap ensemble of xgboost only: a loaded HGB,
    # logistic or rule model had no interval.
    from plo_risk.model import ensemble_risks, fit_bootstrap_ensemble

    X, y = data
    model = make_model(name, params=_SMALL[name], cv=3).fit(X, y)
    fit_bootstrap_ensemble(model, X, y, n_models=3, random_state=1)
    path = save_bundle(model, tmp_path / name, model_name=name)
    loaded, _ = load_bundle(path)
    assert len(loaded.ensemble_) == 3
    np.testing.assert_allclose(
        ensemble_risks(loaded, X.head(50)),
        ensemble_risks(model, X.head(50)),
        rtol=1e-12,
    )


def _rename_class(skops_file, old: tuple[str, str], new: tuple[str, str]) -> None:
    import json
    import zipfile

    with zipfile.ZipFile(skops_file) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    schema = json.loads(members["schema.json"])
    hits = 0
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if (node.get("__module__"), node.get("__class__")) == old:
                node["__module__"], node["__class__"] = new
                hits += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert hits == 1
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(skops_file, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        (
            "logistic_regression",
            ("sklearn.linear_model._logistic", "LogisticRegression"),
            ("sklearn.svm._classes", "SVC"),
        ),
        (
            "hist_gradient_boosting",
            (
                "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
                "HistGradientBoostingClassifier",
            ),
            ("sklearn.ensemble._forest", "RandomForestClassifier"),
        ),
    ],
)
def test_a_resealed_bundle_with_another_estimator_type_is_refused(
    name, old, new, bundles, tmp_path
):
    _, path = bundles[name]
    dst = _copy(path, tmp_path)
    model_file = read_manifest(dst)["model_file"]
    _rename_class(dst / model_file, old, new)
    reseal(dst)
    read_manifest(dst)  # the digests hold: only the type allowlist can refuse it
    with pytest.raises(BundleError, match=f"{new[0]}.{new[1]}"):
        load_bundle(dst)


def _forge(path, tmp_path, change):
    import json

    from plo_risk.model.bundle import MANIFEST

    dst = _copy(path, tmp_path)
    manifest = json.loads((dst / MANIFEST).read_text())
    change(manifest, dst)
    (dst / MANIFEST).write_text(json.dumps(manifest))
    reseal(dst)
    return dst


def _outside(manifest, dst):
    outside = dst.parent / "elsewhere.json"
    outside.write_text("{}")
    manifest["ensemble"] = [{"file": str(outside), "intercept": 0.0, "slope": 1.0}]


def _symlink(manifest, dst):
    target = dst / manifest["model_file"]
    moved = dst.parent / "real-model"
    target.rename(moved)
    target.symlink_to(moved)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m, d: m["calibration"].update(slope=0.0), "calibration.slope"),
        (lambda m, d: m["calibration"].update(slope=-1.0), "calibration.slope"),
        (
            lambda m, d: m["calibration"].update(intercept="big"),
            "calibration.intercept",
        ),
        (lambda m, d: m["calibration"].update(prevalence=1.5), "prevalence"),
        (
            lambda m, d: m["thresholds"].update(moderate=0.9999, high=1.5),
            "thresholds.high",
        ),
        (lambda m, d: m["thresholds"].update(moderate=-0.1), "thresholds.moderate"),
        (lambda m, d: m["thresholds"].update(moderate=0.1, high=0.1), "share one"),
        (lambda m, d: m.update(model_file="../../etc/passwd"), "model_file"),
        (_outside, r"ensemble\[0\].file"),
        (lambda m, d: m.pop("calibration"), "calibration: missing"),
        (lambda m, d: m.update(files=[]), "files:"),
        (_symlink, "not a regular file"),
    ],
    ids=[
        "slope-0",
        "slope-negative",
        "intercept-text",
        "prevalence",
        "threshold-above-1",
        "threshold-negative",
        "thresholds-equal",
        "model-file-outside",
        "member-outside",
        "no-calibration",
        "files-not-a-map",
        "symlink",
    ],
)
def test_a_resealed_manifest_with_bad_fields_is_refused(
    bundles, tmp_path, change, match
):
    _, path = bundles["xgboost"]
    dst = _forge(path, tmp_path, change)
    with pytest.raises(BundleError, match=match):
        load_bundle(dst)


# ------------------------------------------- issue 15: every failure names its file


def _manifest(dst):
    import json

    from plo_risk.model.bundle import MANIFEST

    return json.loads((dst / MANIFEST).read_text())


def _write_manifest(dst, manifest):
    import json

    from plo_risk.model.bundle import MANIFEST

    (dst / MANIFEST).write_text(json.dumps(manifest))
    reseal(dst)


def _edit(key, value):
    def change(dst):
        manifest = _manifest(dst)
        if value is _DROP:
            manifest.pop(key)
        else:
            manifest[key] = value
        _write_manifest(dst, manifest)

    return change


_DROP = object()


def _features(change):
    def forge(dst):
        import json

        doc = json.loads((dst / "features.json").read_text())
        change(doc)
        (dst / "features.json").write_text(json.dumps(doc))
        reseal(dst)

    return forge


def _raw(name, data):
    def forge(dst):
        (dst / name).write_bytes(data)
        if name != "manifest.json":
            reseal(dst)

    return forge


def _replace_with(name, kind):
    def forge(dst):
        import os

        target = dst / name
        target.unlink()
        if kind == "folder":
            target.mkdir()
        elif kind == "fifo":
            os.mkfifo(target)
        else:  # a link to a copy of itself outside the bundle
            outside = dst.parent / f"outside-{name}"
            shutil.copy(_BUNDLES[0] / name, outside)
            target.symlink_to(outside)

    return forge


def _nan_metric(dst):
    text = (dst / "manifest.json").read_text()
    (dst / "manifest.json").write_text(
        text.replace('"metrics": {', '"metrics": {"forged": NaN, ', 1)
    )


def _deep_manifest(dst):
    text = (dst / "manifest.json").read_text()
    (dst / "manifest.json").write_text(
        text.replace(
            '"extra": {', '"extra": {"x": ' + "[" * 50_000 + "]" * 50_000 + ", ", 1
        )
    )


def _deep_json(name, opener='{"a":', closer="}"):
    return _raw(name, (opener * 200_000 + "1" + closer * 200_000).encode())


def _skops_bomb(dst):
    import zipfile

    from plo_risk.model import families

    model_file = _manifest(dst)["model_file"]
    with zipfile.ZipFile(dst / model_file, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("padding.bin", b"\0" * 3_000_000)
    families.MAX_SKOPS_BYTES = 2_000_000  # restored by the test
    reseal(dst)


_BUNDLES: list = []

# (id, family, forge, the file the error must name)
HOSTILE = [
    (
        "manifest-latin1",
        "xgboost",
        _raw("manifest.json", b'{"format": "caf\xe9"}'),
        "manifest.json",
    ),
    ("manifest-nan", "xgboost", _nan_metric, "manifest.json"),
    ("manifest-deep", "xgboost", _deep_manifest, "manifest.json"),
    (
        "manifest-folder",
        "xgboost",
        _replace_with("manifest.json", "folder"),
        "manifest.json",
    ),
    (
        "manifest-fifo",
        "xgboost",
        _replace_with("manifest.json", "fifo"),
        "manifest.json",
    ),
    (
        "manifest-symlink",
        "xgboost",
        _replace_with("manifest.json", "link"),
        "manifest.json",
    ),
    ("manifest-no-versions", "xgboost", _edit("versions", _DROP), "manifest.json"),
    ("manifest-family-list", "xgboost", _edit("family", ["xgboost"]), "manifest.json"),
    ("manifest-extra-list", "xgboost", _edit("extra", ["x"]), "manifest.json"),
    (
        "manifest-feature-names",
        "xgboost",
        _edit("feature_names_in", 5),
        "manifest.json",
    ),
    (
        "features-latin1",
        "xgboost",
        _raw("features.json", b'{"caf\xe9": 1}'),
        "features.json",
    ),
    (
        "features-no-pipeline",
        "xgboost",
        _features(lambda d: d.pop("pipeline")),
        "features.json",
    ),
    (
        "features-unknown-param",
        "xgboost",
        _features(lambda d: d["pipeline"]["steps"][0][1].update(params={"bogus": 1})),
        "features.json",
    ),
    (
        "features-fitted-list",
        "xgboost",
        _features(lambda d: d["pipeline"]["steps"][0][1].update(fitted=["x"])),
        "features.json",
    ),
    (
        "features-deep",
        "xgboost",
        _deep_json("features.json", "[", "]"),
        "features.json",
    ),
    (
        "features-folder",
        "xgboost",
        _replace_with("features.json", "folder"),
        "features.json",
    ),
    (
        "features-fifo",
        "xgboost",
        _replace_with("features.json", "fifo"),
        "features.json",
    ),
    ("xgboost-deep", "xgboost", _deep_json("model.json"), "model.json"),
    (
        "rule-deep",
        "clinical_rule",
        _deep_json("model.rule.json", "[", "]"),
        "model.rule.json",
    ),
    ("skops-zip-bomb", "logistic_regression", _skops_bomb, "model.skops"),
]


@pytest.mark.parametrize(
    ("family", "forge", "file"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_every_hostile_bundle_is_a_bundle_error_naming_its_file(
    bundles, tmp_path, family, forge, file
):
    import threading

    from plo_risk.model import families

    _, path = bundles[family]
    _BUNDLES[:] = [path]
    limit = families.MAX_SKOPS_BYTES if hasattr(families, "MAX_SKOPS_BYTES") else None
    dst = _copy(path, tmp_path)
    outcome: list = []

    def load():
        try:
            load_bundle(dst)
            outcome.append("loaded")
        except BaseException as exc:  # noqa: BLE001 - the outcome is what we test
            outcome.append(exc)

    try:
        forge(dst)
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        worker.join(timeout=30)
    finally:
        if limit is not None:
            families.MAX_SKOPS_BYTES = limit
    assert outcome, "load_bundle did not finish in 30 s (blocked?)"
    error = outcome[0]
    assert isinstance(error, BundleError), f"{type(error).__name__}: {error}"[:500]
    assert file in str(error), str(error)[:500]
    assert len(str(error)) < 2000

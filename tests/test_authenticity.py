"""Models in MLflow: the registry pins the bundle and the code file (issue 15).

One real `compare` registers a model; each test changes the copy in the artifact
store as someone with write access to it could (and puts it back afterwards).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pytest

from plo_risk.model.bundle import MANIFEST, BundleError, bundle_digest, load_bundle
from plo_risk.serve.authenticity import BUNDLE_TAG, CODE_TAG, code_sha256
from plo_risk.serve.risk_model import RiskModel
from plo_risk.training import CHAMPION_ALIAS, REGISTERED_NAME, compare
from tests.forge import reseal

CONFIG = {
    "name": "authenticity",
    "seed": 1,
    "data": {
        "train": {"source": "synthetic", "n": 1500, "seed": 1},
        "test": {"source": "synthetic", "n": 1500, "seed": 2},
    },
    "models": [{"name": "clinical_rule"}],
    "cv": {"folds": 3},
    "evaluation": {"n_boot": 5},
    # The rule is the quickest model; past the weak-model guard so it registers.
    "champion": {"allow_weak": True},
}
ALIAS_URI = f"models:/{REGISTERED_NAME}@{CHAMPION_ALIAS}"


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        result = compare(CONFIG)
        assert result.replaced and result.champion_version == "1"
        client = mlflow.MlflowClient()
        mv = client.get_model_version(REGISTERED_NAME, "1")
        yield {
            "client": client,
            "version": mv,
            "run_id": mv.run_id,
            "store": _artifact_folder(client, mv),
            "result": result,
        }


def _artifact_folder(client, mv) -> Path:
    """Where the artifact store keeps the version's files (its source)."""
    source = mv.source
    if source.startswith("models:/"):
        source = client.get_logged_model(source[len("models:/") :]).artifact_location
    parsed = urlparse(source)
    folder = Path(unquote(parsed.path) if parsed.scheme == "file" else source)
    assert (folder / "MLmodel").is_file(), folder
    return folder


@contextlib.contextmanager
def _tampering(store: Path):
    """Yield the artifact store's folder of the model; restore it afterwards."""
    backup = store.parent / (store.name + ".orig")
    shutil.copytree(store, backup)
    try:
        yield store
    finally:
        shutil.rmtree(store)
        backup.rename(store)


def _everyone_low(store: Path) -> None:
    """The forgery of the issue: thresholds moved so everyone is "low", resealed."""
    bundle = store / "artifacts" / "bundle"
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["thresholds"] = {"moderate": 0.98, "high": 0.99}
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    reseal(bundle)
    load_bundle(bundle)  # the forgery is a valid bundle: only the registry refuses it


def test_registration_records_the_bundle_and_code_digests(registered):
    mv, client = registered["version"], registered["client"]
    bundle = registered["store"] / "artifacts" / "bundle"
    assert mv.tags[BUNDLE_TAG] == bundle_digest(bundle)
    assert mv.tags[CODE_TAG] == code_sha256()
    run = client.get_run(registered["run_id"])
    assert run.data.tags[BUNDLE_TAG] == mv.tags[BUNDLE_TAG]
    assert registered["result"].results[0].bundle_sha256 == mv.tags[BUNDLE_TAG]


@pytest.mark.parametrize(
    "uri",
    [ALIAS_URI, f"models:/{REGISTERED_NAME}/1", "runs"],
    ids=["alias", "version", "run"],
)
def test_an_untouched_model_loads(registered, uri):
    if uri == "runs":
        uri = f"runs:/{registered['run_id']}/model"
    model = RiskModel.load(uri)
    stored, _ = load_bundle(registered["store"] / "artifacts" / "bundle")
    assert model.name == "clinical_rule" and model.thresholds == stored.thresholds


@pytest.mark.parametrize(
    "uri",
    [ALIAS_URI, f"models:/{REGISTERED_NAME}/1", "runs"],
    ids=["alias", "version", "run"],
)
def test_a_resealed_forgery_in_the_artifact_store_is_refused(registered, uri):
    if uri == "runs":
        uri = f"runs:/{registered['run_id']}/model"
    expected = registered["version"].tags[BUNDLE_TAG]
    with _tampering(registered["store"]) as store:
        _everyone_low(store)
        found = bundle_digest(store / "artifacts" / "bundle")
        with pytest.raises(BundleError) as info:
            RiskModel.load(uri)
    text = str(info.value)
    assert "changed after registration" in text and "plo-risk compare" in text
    assert expected in text and found in text
    if uri.startswith("models:/"):
        assert f"version 1 of the registered model '{REGISTERED_NAME}'" in text


def test_a_version_without_the_tag_is_refused_with_the_fix(registered):
    client, mv = registered["client"], registered["version"]
    client.delete_model_version_tag(REGISTERED_NAME, "1", BUNDLE_TAG)
    try:
        with pytest.raises(BundleError, match=f"has no {BUNDLE_TAG} tag") as info:
            RiskModel.load(ALIAS_URI)
    finally:
        client.set_model_version_tag(
            REGISTERED_NAME, "1", BUNDLE_TAG, mv.tags[BUNDLE_TAG]
        )
    assert "set_model_version_tag('plo-risk', '1'" in str(info.value)
    assert mv.tags[BUNDLE_TAG] in str(info.value)
    RiskModel.load(ALIAS_URI)


def test_a_tampered_code_file_is_refused_and_never_executed(registered, tmp_path):
    marker = tmp_path / "executed"
    with _tampering(registered["store"]) as store:
        code = store / "mlflow_entry.py"
        code.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + code.read_text())
        with pytest.raises(BundleError, match=r"code file mlflow_entry\.py"):
            RiskModel.load(ALIAS_URI)
    assert not marker.exists()


def test_an_mlmodel_that_names_another_code_file_is_refused(registered):
    with _tampering(registered["store"]) as store:
        mlmodel = store / "MLmodel"
        mlmodel.write_text(
            mlmodel.read_text().replace("mlflow_entry.py", "other_entry.py")
        )
        shutil.copy(store / "mlflow_entry.py", store / "other_entry.py")
        with pytest.raises(BundleError, match="names the loader"):
            RiskModel.load(ALIAS_URI)


# ---------------------------------------- mlflow.pyfunc.load_model (serve, UDF)


def test_the_pyfunc_of_an_untouched_model_loads_and_predicts(registered):
    from plo_risk.data.synthetic import generate_cohort

    loaded = mlflow.pyfunc.load_model(ALIAS_URI)
    rows = generate_cohort(5, seed=3).drop(columns=["fracture", "true_risk"])
    assert loaded.predict(rows)["risk"].between(0, 1).all()


def test_the_pyfunc_refuses_a_resealed_forgery(registered):
    with _tampering(registered["store"]) as store:
        _everyone_low(store)
        with pytest.raises(BundleError, match="not the one run .* recorded"):
            mlflow.pyfunc.load_model(ALIAS_URI)


def test_the_pyfunc_refuses_a_changed_code_file_that_builds_our_model(registered):
    # What the issue found: a tampered entry file that still serves our class but
    # changes the risks. It has run by the time load_context can look; the model
    # is refused all the same.
    patch = (
        "import plo_risk.serve.pyfunc as _p\n"
        "_p.PLORiskPyfunc.predict = lambda self, c, x, params=None: "
        "self.model.predict_frame(x).assign(risk=0.0)\n"
    )
    from plo_risk.serve.pyfunc import PLORiskPyfunc

    predict = PLORiskPyfunc.predict
    with _tampering(registered["store"]) as store:
        code = store / "mlflow_entry.py"
        original = code.read_text()
        code.write_text(original.replace("import mlflow\n", "import mlflow\n" + patch))
        try:
            with pytest.raises(BundleError, match="not plo_risk's own"):
                mlflow.pyfunc.load_model(ALIAS_URI)
            assert PLORiskPyfunc.predict is not predict  # the tampered file ran
        finally:
            PLORiskPyfunc.predict = predict


def test_the_web_page_and_the_audit_replay_load_through_the_registry_check(registered):
    from plo_risk.web.identity import load_model

    uri = f"models:/{REGISTERED_NAME}@{CHAMPION_ALIAS}"
    rm, identity = load_model(uri)
    assert identity["bundle_sha256"] == registered["version"].tags[BUNDLE_TAG]
    assert identity["source"] == uri and rm.bundle_sha256 == identity["bundle_sha256"]
    with _tampering(registered["store"]) as store:
        _everyone_low(store)
        with pytest.raises(BundleError, match="changed after registration"):
            load_model(uri)

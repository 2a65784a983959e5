"""Ed25519 signatures for bundles outside MLflow (issue 15)."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest
from typer.testing import CliRunner

from plo_risk import RiskModel, generate_signing_key, sign_bundle
from plo_risk.cli import app
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import (
    MANIFEST,
    BundleError,
    bundle_digest,
    load_bundle,
    save_bundle,
)
from plo_risk.model.signing import SIGNATURE, SigningKeyError, load_private_key
from plo_risk.model.zoo import make_model

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    valid = validate_frame(generate_cohort(1500, seed=3)).valid
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    model = make_model(
        "clinical_rule", cv=3, thresholds={"moderate": 0.02, "high": 0.1}
    ).fit(X, valid["fracture"].to_numpy())
    return save_bundle(
        model, tmp_path_factory.mktemp("signing") / "bundle", model_name="rule"
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    return {
        "key": root / "signing.key",
        "pub": generate_signing_key(root / "signing.key"),
        "other": generate_signing_key(root / "other.key"),
    }


@pytest.fixture
def signed(bundle, keys, tmp_path):
    copy = tmp_path / "signed"
    shutil.copytree(bundle, copy)
    sign_bundle(copy, keys["key"])
    return copy


def _reseal(path):
    import hashlib

    from plo_risk.model.bundle import _canonical

    manifest = json.loads((path / MANIFEST).read_text())
    manifest.pop("manifest_sha256")
    manifest["manifest_sha256"] = hashlib.sha256(_canonical(manifest)).hexdigest()
    (path / MANIFEST).write_bytes(_canonical(manifest))


def test_a_signed_bundle_loads_with_its_public_key(signed, keys):
    assert (signed / SIGNATURE).is_file()
    load_bundle(signed, public_key=keys["pub"])
    model = RiskModel.load(signed, public_key=str(keys["pub"]))
    assert model.thresholds == {"moderate": 0.02, "high": 0.1}
    load_bundle(signed)  # without a key the signature is not needed
    doc = json.loads((signed / SIGNATURE).read_text())
    assert doc["bundle_sha256"] == bundle_digest(signed)


def test_a_bundle_changed_after_signing_is_refused(signed, keys):
    # Someone who can write the folder but has no key: thresholds moved, resealed.
    manifest = json.loads((signed / MANIFEST).read_text())
    manifest["thresholds"] = {"moderate": 0.98, "high": 0.99}
    (signed / MANIFEST).write_text(json.dumps(manifest))
    _reseal(signed)
    load_bundle(signed)  # a valid bundle: only the signature can refuse it
    with pytest.raises(BundleError, match="signs another bundle"):
        load_bundle(signed, public_key=keys["pub"])
    with pytest.raises(BundleError, match=SIGNATURE):
        RiskModel.load(signed, public_key=keys["pub"])


def test_a_signature_by_another_key_is_refused(signed, keys):
    with pytest.raises(BundleError, match="signed by another key"):
        load_bundle(signed, public_key=keys["other"])


def test_a_forged_signature_is_refused(signed, keys):
    doc = json.loads((signed / SIGNATURE).read_text())
    raw = bytearray(__import__("base64").b64decode(doc["signature"]))
    raw[0] ^= 1
    doc["signature"] = __import__("base64").b64encode(bytes(raw)).decode()
    (signed / SIGNATURE).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="does not verify"):
        load_bundle(signed, public_key=keys["pub"])


def test_an_unsigned_bundle_is_refused_when_a_key_is_given(bundle, keys):
    with pytest.raises(BundleError, match=f"{SIGNATURE} is missing"):
        load_bundle(bundle, public_key=keys["pub"])


def test_the_signature_is_the_only_extra_file(signed, keys):
    (signed / "notes.txt").write_text("x")
    with pytest.raises(BundleError, match=r"notes\.txt is not part of the bundle"):
        load_bundle(signed, public_key=keys["pub"])


def test_a_fifo_named_like_the_signature_is_refused_without_blocking(signed, keys):
    (signed / SIGNATURE).unlink()
    os.mkfifo(signed / SIGNATURE)
    outcome = []

    def load():
        try:
            load_bundle(signed, public_key=keys["pub"])
        except BundleError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "load_bundle blocked on a FIFO"
    assert outcome and "not a regular file" in str(outcome[0])


def test_the_private_key_is_written_0600_and_refused_when_others_can_read_it(
    tmp_path,
):
    key = tmp_path / "k"
    generate_signing_key(key)
    assert key.stat().st_mode & 0o777 == 0o600
    load_private_key(key)
    key.chmod(0o640)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_private_key(key)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        sign_bundle(tmp_path, key)
    with pytest.raises(FileExistsError):
        generate_signing_key(key)


def test_a_file_that_is_not_a_key_is_refused(tmp_path, bundle):
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key")
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_bundle(bundle, public_key=junk)
    junk.chmod(0o600)
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM private key"):
        load_private_key(junk)


def test_cli_keygen_sign_and_public_key(tmp_path, bundle):
    key = tmp_path / "k"
    result = runner.invoke(app, ["keygen", "--out", str(key)])
    assert result.exit_code == 0, result.output
    assert "k.pub" in result.output
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    patient = tmp_path / "p.json"
    patient.write_text(
        json.dumps({"age_years": 31, "parity": 1, "months_postpartum": 3})
    )
    assess = ["assess", "--model", str(copy), "--patient", str(patient)]
    result = runner.invoke(app, [*assess, "--public-key", f"{key}.pub"])
    assert result.exit_code == 2 and "not signed" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["sign", "--model", str(copy), "--key", str(key)])
    assert result.exit_code == 0, result.output
    assert bundle_digest(copy) in result.output
    result = runner.invoke(app, [*assess, "--public-key", f"{key}.pub"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("verb", ["assess", "score", "serve", "validate", "report"])
def test_every_verb_that_loads_a_model_takes_a_public_key(verb):
    text = runner.invoke(app, [verb, "--help"], env={"COLUMNS": "200"}).output
    assert "--public-key" in text

"""Models in MLflow are checked against the registry before they are trusted.

When :func:`plo_risk.compare` registers a model version it records, as tags of the
version and of its run (both live in the tracking database, not in the artifact
store):

``plo_risk.bundle_sha256``
    :func:`plo_risk.model.bundle.bundle_digest` of the bundle, computed from the
    folder training wrote, before it was uploaded.
``plo_risk.code_sha256``
    The sha256 of the models-from-code file (``mlflow_entry.py``) logged beside it.

:meth:`plo_risk.RiskModel.load` of ``models:/<name>@<alias>``,
``models:/<name>/<version>``, ``models:/<model id>`` or ``runs:/<run id>/model``
resolves the version first, downloads that version, and refuses it
(:class:`~plo_risk.model.BundleError`) when the tag is missing, the downloaded
bundle's digest differs, the logged code file differs, or the ``MLmodel`` file
names another loader. It never executes a file from the artifact store.

What this protects against: anyone who can write to the artifact store (an S3
bucket, a shared ``mlartifacts/`` folder) but not to the tracking database:
changed thresholds or calibration resealed by hand, another model's files, a
changed code file. What it does not: someone who can also set registry tags, and
``mlflow.pyfunc.load_model`` itself, which executes the code file named by the
artifact store's ``MLmodel`` before any plo_risk code runs
(:meth:`plo_risk.serve.pyfunc.PLORiskPyfunc.load_context` checks what it still can:
see there).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plo_risk.model.bundle import MANIFEST, BundleError, bundle_digest
from plo_risk.serve.tracking import PYFUNC_ENTRY

__all__ = [
    "BUNDLE_TAG",
    "CODE_LOADER",
    "CODE_TAG",
    "RegistryPin",
    "check_download",
    "check_logged_model",
    "code_sha256",
    "registry_pin",
]

#: The model version (and run) tag holding the bundle's digest.
BUNDLE_TAG = "plo_risk.bundle_sha256"
#: The model version (and run) tag holding the sha256 of the logged code file.
CODE_TAG = "plo_risk.code_sha256"
#: The MLflow loader of a models-from-code pyfunc (``MLmodel``'s loader_module).
CODE_LOADER = "mlflow.pyfunc.loaders.code_model"
# The MLmodel file is a few kB; a larger one is not ours.
_MAX_MLMODEL_BYTES = 1 << 20


def code_sha256() -> str:
    """The sha256 of the package's own models-from-code file (``mlflow_entry.py``)."""
    return hashlib.sha256(PYFUNC_ENTRY.read_bytes()).hexdigest()


@dataclass(frozen=True)
class RegistryPin:
    """What the registry says a model URI must download to.

    Attributes
    ----------
    uri : str
        The URI as given.
    where : str
        The model version or run, in words ("version 3 of 'plo-risk'").
    download_uri : str
        The URI of exactly that version (an alias is resolved once, here).
    bundle_sha256, code_sha256 : str or None
        The recorded digests; None when the tag is missing.
    fix : str
        How to pin it when a tag is missing (a call that sets the tag).
    """

    uri: str
    where: str
    download_uri: str
    bundle_sha256: str | None
    code_sha256: str | None
    fix: str


def registry_pin(uri: str, client: Any = None) -> RegistryPin:
    """Resolve an MLflow model URI to one version and its recorded digests.

    Parameters
    ----------
    uri : str
        ``models:/<name>@<alias>``, ``models:/<name>/<version>``,
        ``models:/<model id>`` or ``runs:/<run id>/<path>``.
    client : mlflow.MlflowClient, default=None
        The tracking and registry client (the current tracking URI's by default).

    Returns
    -------
    RegistryPin

    Raises
    ------
    FileNotFoundError
        When the registry has no such model, alias, version or run.
    ValueError
        For a URI of another form (a stage such as ``models:/plo-risk/Production``).
    """
    import mlflow  # optional heavy import: only for MLflow model URIs
    from mlflow.exceptions import MlflowException

    client = client or mlflow.MlflowClient()
    try:
        if uri.startswith("models:/"):
            return _model_pin(client, uri, uri[len("models:/") :])
        if uri.startswith("runs:/"):
            run_id = uri[len("runs:/") :].split("/", 1)[0]
            return _run_pin(client, uri, run_id, uri)
    except MlflowException as exc:
        raise FileNotFoundError(
            f"{uri}: not in the MLflow registry at {mlflow.get_tracking_uri()} "
            f"({exc.message})"
        ) from None
    raise ValueError(f"{uri}: not an MLflow model URI (models:/... or runs:/...)")


def _model_pin(client, uri: str, rest: str) -> RegistryPin:
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    elif "/" in rest:
        name, version = rest.split("/", 1)
        if not version.isdigit():
            raise ValueError(
                f"{uri}: give a version number or an alias "
                f"(models:/{name}/<version> or models:/{name}@<alias>), not "
                f"{version!r}"
            )
        mv = client.get_model_version(name, version)
    else:  # a logged model's id (MLflow 3): the tags of the run that logged it
        logged = client.get_logged_model(rest)
        return _run_pin(client, uri, logged.source_run_id, uri)
    tags = dict(mv.tags or {})
    return RegistryPin(
        uri=uri,
        where=f"version {mv.version} of the registered model {mv.name!r}",
        download_uri=f"models:/{mv.name}/{mv.version}",
        bundle_sha256=tags.get(BUNDLE_TAG),
        code_sha256=tags.get(CODE_TAG),
        fix=(
            f"mlflow.MlflowClient().set_model_version_tag({mv.name!r}, "
            f"{str(mv.version)!r}, {BUNDLE_TAG!r}, {{digest}})"
        ),
    )


def _run_pin(client, uri: str, run_id: str | None, download_uri: str) -> RegistryPin:
    run = client.get_run(run_id)
    tags = dict(run.data.tags or {})
    return RegistryPin(
        uri=uri,
        where=f"the model of run {run_id}",
        download_uri=download_uri,
        bundle_sha256=tags.get(BUNDLE_TAG),
        code_sha256=tags.get(CODE_TAG),
        fix=f"mlflow.MlflowClient().set_tag({run_id!r}, {BUNDLE_TAG!r}, {{digest}})",
    )


def check_download(local: str | Path, pin: RegistryPin) -> Path:
    """The bundle folder of a downloaded model, checked against its pin.

    Parameters
    ----------
    local : str or Path
        The folder MLflow downloaded ``pin.download_uri`` to.
    pin : RegistryPin

    Returns
    -------
    Path
        The bundle folder, whose digest is the registry's.

    Raises
    ------
    BundleError
        A missing tag, another bundle digest, a changed code file or an
        ``MLmodel`` that names another loader: which version, the recorded and
        the found digest, and what to do.
    """
    local = Path(local)
    bundles = sorted(p.parent for p in local.rglob(MANIFEST))
    if len(bundles) != 1:
        raise BundleError(
            f"{pin.uri}: {pin.where} holds {len(bundles)} plo_risk bundles "
            f"({', '.join(str(b.relative_to(local)) for b in bundles) or 'none'}); "
            "a plo_risk model holds one"
        )
    bundle = bundles[0]
    found = bundle_digest(bundle)
    if pin.bundle_sha256 is None:
        raise BundleError(
            f"{pin.uri}: {pin.where} has no {BUNDLE_TAG} tag, so its bundle cannot "
            "be checked against the registry (it was registered before plo_risk "
            "recorded bundle digests, or by hand). Re-register it (plo-risk "
            "compare); or, only if you trust the copy now in the artifact store "
            f"(digest {found}), pin it: {pin.fix.format(digest=repr(found))}"
        )
    if found != pin.bundle_sha256:
        raise BundleError(
            f"{pin.uri}: the bundle of {pin.where} in the artifact store is not the "
            f"one that was registered: the registry's {BUNDLE_TAG} is "
            f"{pin.bundle_sha256}, the downloaded bundle's digest is {found}. It was "
            "changed after registration; do not use this copy. Re-register the "
            "model from a trusted bundle (plo-risk compare)."
        )
    _check_pyfunc_files(local, pin)
    return bundle


def _check_pyfunc_files(root: Path, pin: RegistryPin) -> None:
    """The code file MLflow would execute is the one logged, named by MLmodel."""
    flavor = _pyfunc_flavor(root, pin.uri)
    code_name = Path(str(flavor.get("model_code_path") or "")).name
    if flavor.get("loader_module") != CODE_LOADER or code_name != PYFUNC_ENTRY.name:
        raise BundleError(
            f"{pin.uri}: the MLmodel of {pin.where} names the loader "
            f"{flavor.get('loader_module')!r} and code {code_name!r}, not "
            f"{CODE_LOADER!r} and {PYFUNC_ENTRY.name!r}: it was changed in the "
            "artifact store; re-register the model (plo-risk compare)"
        )
    if flavor.get("code"):
        raise BundleError(
            f"{pin.uri}: the MLmodel of {pin.where} adds code paths "
            f"{flavor.get('code')!r} that plo_risk never logs: it was changed in "
            "the artifact store; re-register the model (plo-risk compare)"
        )
    code = root / code_name
    found = hashlib.sha256(code.read_bytes()).hexdigest() if code.is_file() else None
    if pin.code_sha256 is None or found != pin.code_sha256:
        raise BundleError(
            f"{pin.uri}: the code file {code_name} of {pin.where} is not the one "
            f"that was logged (registry {CODE_TAG} {pin.code_sha256}, artifact store "
            f"{found}); mlflow.pyfunc.load_model would execute it. Re-register the "
            "model (plo-risk compare)."
        )


def _pyfunc_flavor(root: Path, where: str) -> dict[str, Any]:
    mlmodel = root / "MLmodel"
    try:
        if mlmodel.stat().st_size > _MAX_MLMODEL_BYTES:
            raise BundleError(f"{where}: {mlmodel.name} is too large to be ours")
        doc = yaml.safe_load(mlmodel.read_bytes())
        flavor = doc["flavors"]["python_function"]
        if not isinstance(flavor, dict):
            raise TypeError("python_function is not a mapping")
    except BundleError:
        raise
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise BundleError(
            f"{where}: {mlmodel.name} is missing or not an MLflow pyfunc model "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return flavor


def check_logged_model(bundle: str | Path, client: Any = None) -> None:
    """What :meth:`PLORiskPyfunc.load_context` checks of the model MLflow loads.

    The code file that MLflow executed is the package's own, byte for byte, and the
    bundle's digest is the one the tracking database recorded for the run that
    logged it (its ``plo_risk.bundle_sha256`` tag, and that of every registered
    version of the run).

    Parameters
    ----------
    bundle : str or Path
        The bundle folder of the downloaded model (``context.artifacts["bundle"]``);
        the model's ``MLmodel`` is in one of its parent folders.
    client : mlflow.MlflowClient, default=None

    Raises
    ------
    BundleError
        Naming what differs, the recorded and the found digest.
    """
    import mlflow  # optional heavy import: only under MLflow
    from mlflow.exceptions import MlflowException

    bundle = Path(bundle)
    root = next((p for p in bundle.parents if (p / "MLmodel").is_file()), None)
    if root is None:
        # MLflow itself builds the model once while logging it (MLflow 3.0 does,
        # from a temporary copy of the artifacts, before any MLmodel exists):
        # nothing is loaded from an artifact store then, and mlflow.pyfunc.load_model
        # cannot load a model without its MLmodel, so there is nothing to check.
        return
    flavor = _pyfunc_flavor(root, str(root))
    code = root / Path(str(flavor.get("model_code_path") or "")).name
    if not code.is_file() or code.read_bytes() != PYFUNC_ENTRY.read_bytes():
        raise BundleError(
            f"{code}: the logged code file is not plo_risk's own {PYFUNC_ENTRY} "
            "(it was changed in the artifact store, and MLflow has already executed "
            "it); do not serve this model. Re-register it (plo-risk compare)."
        )
    doc = yaml.safe_load((root / "MLmodel").read_bytes())
    run_id = doc.get("run_id") if isinstance(doc, dict) else None
    if not isinstance(run_id, str):
        raise BundleError(f"{root / 'MLmodel'}: names no run, so nothing pins it")
    client = client or mlflow.MlflowClient()
    try:
        recorded = [("run " + run_id, client.get_run(run_id).data.tags)]
        recorded += [
            (f"version {mv.version} of {mv.name!r}", mv.tags)
            for mv in client.search_model_versions(f"run_id = '{run_id}'")
        ]
    except MlflowException as exc:
        raise BundleError(
            f"{bundle}: cannot check the bundle against the tracking store at "
            f"{mlflow.get_tracking_uri()} ({exc.message}); set MLFLOW_TRACKING_URI "
            "to the store the model was logged in"
        ) from None
    found = bundle_digest(bundle)
    for where, tags in recorded:
        expected = (tags or {}).get(BUNDLE_TAG)
        if expected is not None and expected != found:
            raise BundleError(
                f"{bundle}: the bundle is not the one {where} recorded "
                f"({BUNDLE_TAG} {expected}, found {found}); it was changed in the "
                "artifact store. Re-register the model (plo-risk compare)."
            )
    if (recorded[0][1] or {}).get(BUNDLE_TAG) is None:
        raise BundleError(
            f"{bundle}: run {run_id} has no {BUNDLE_TAG} tag, so the bundle "
            f"(digest {found}) cannot be checked; re-register the model "
            "(plo-risk compare)"
        )

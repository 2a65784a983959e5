"""Which model answered: name, version, source and the sha256 of its bundle.

The audit trail records, with every assessment, the digest of the model's bundle
manifest (``manifest.json`` lists the sha256 of every file of the bundle, so its
own sha256 pins them all). :func:`load_model` loads a model and keeps that digest,
also for a model fetched from MLflow (``models:/...``, ``runs:/...``), whose
downloaded bundle is gone once :meth:`RiskModel.load` returns.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from plo_risk.serve.risk_model import RiskModel
from plo_risk.serve.tracking import ensure_tracking_uri

__all__ = ["MANIFEST", "bundle_sha256", "load_model", "model_identity"]

MANIFEST = "manifest.json"
_ATTR = "_plo_risk_web_bundle_sha256"


def bundle_sha256(folder: str | Path) -> str | None:
    """The sha256 of a bundle folder's ``manifest.json``, or None if it has none."""
    path = Path(folder) / MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def load_model(source: str | Path) -> tuple[RiskModel, dict[str, Any]]:
    """Load a model as :meth:`RiskModel.load` does, and its identity.

    Parameters
    ----------
    source : str or Path
        A bundle folder, ``models:/<name>@<alias>``, ``models:/<name>/<version>``
        or ``runs:/<run id>/model``.

    Returns
    -------
    (RiskModel, dict)
        The model and :func:`model_identity` of it.
    """
    text = str(source)
    if not text.startswith(("models:/", "runs:/")):
        rm = RiskModel.load(source)
        return rm, model_identity(rm)
    import mlflow  # optional heavy import: only for MLflow model URIs

    ensure_tracking_uri()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=text, dst_path=tmp)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types
            raise FileNotFoundError(
                f"{text}: cannot be fetched from MLflow at "
                f"{mlflow.get_tracking_uri()} ({exc})"
            ) from None
        found = sorted(p.parent for p in Path(local).rglob(MANIFEST))
        if not found:
            raise FileNotFoundError(f"{text}: no plo_risk bundle (manifest.json) found")
        rm = RiskModel.load(found[0])
        digest = bundle_sha256(found[0])
    rm.source = text
    setattr(rm, _ATTR, digest)
    return rm, model_identity(rm)


def model_identity(model: RiskModel) -> dict[str, Any]:
    """``{"name", "version", "source", "bundle_sha256"}`` of a model.

    The digest is that of the bundle folder the model was loaded from (or that
    :func:`load_model` kept for a model from MLflow); None for a model that was
    never saved.
    """
    digest = getattr(model, _ATTR, None)
    if digest is None and model.source and Path(str(model.source)).is_dir():
        digest = bundle_sha256(model.source)
    return {
        "name": model.name,
        "version": model.version,
        "source": None if model.source is None else str(model.source),
        "bundle_sha256": digest,
    }

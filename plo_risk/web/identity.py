"""Which model answered: name, version, source and the sha256 of its bundle.

The audit trail records, with every assessment, the digest of the model's bundle
manifest (``manifest.json`` lists the sha256 of every file of the bundle, so its
own sha256 pins them all): :attr:`RiskModel.bundle_sha256`, kept by
:meth:`RiskModel.load` also for a model fetched from MLflow (``models:/...``,
``runs:/...``) after checking it against the registry's tag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plo_risk.serve.risk_model import RiskModel

__all__ = ["load_model", "model_identity"]


def load_model(
    source: str | Path, *, public_key: str | Path | None = None
) -> tuple[RiskModel, dict[str, Any]]:
    """Load a model as :meth:`RiskModel.load` does (a ``models:/`` or ``runs:/``
    model checked against the registry's digest), and its identity.

    Parameters
    ----------
    source : str or Path
        A bundle folder, ``models:/<name>@<alias>``, ``models:/<name>/<version>``
        or ``runs:/<run id>/model``.
    public_key : str or Path, default=None
        Verify the bundle's Ed25519 signature with this key.

    Returns
    -------
    (RiskModel, dict)
        The model and :func:`model_identity` of it.
    """
    rm = RiskModel.load(source, public_key=public_key)
    return rm, model_identity(rm)


def model_identity(model: RiskModel) -> dict[str, Any]:
    """``{"name", "version", "source", "bundle_sha256"}`` of a model.

    The digest is that of the bundle folder the model was loaded from (or that
    :func:`load_model` kept for a model from MLflow); None for a model that was
    never saved.
    """
    digest = model.bundle_sha256
    return {
        "name": model.name,
        "version": model.version,
        "source": None if model.source is None else str(model.source),
        "bundle_sha256": digest,
    }

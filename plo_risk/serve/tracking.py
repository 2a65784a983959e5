"""Where MLflow runs and registered models live.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlflow.db``
in the working folder (no server needed); artifacts go beside it in
``mlartifacts/``. The champion is the registered model ``plo-risk`` with the
alias ``champion``: ``RiskModel.load("models:/plo-risk@champion")``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CHAMPION_ALIAS",
    "PYFUNC_ENTRY",
    "REGISTERED_NAME",
    "default_tracking_uri",
    "ensure_tracking_uri",
    "require_store",
]

REGISTERED_NAME = "plo-risk"
CHAMPION_ALIAS = "champion"


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<cwd>/mlflow.db``."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{(Path.cwd() / 'mlflow.db').as_posix()}"
    )


def require_store(tracking_uri: str | None = None) -> str:
    """The tracking URI, refusing a local SQLite store that does not exist yet.

    Reading a model (``models:/...``, ``runs:/...``) must never create a store:
    MLflow would create an empty ``mlflow.db`` in the working folder and then
    report that the model is not there.

    Raises
    ------
    FileNotFoundError
        Naming the missing database and how to point at the right one.
    """
    uri = tracking_uri or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        if not db.is_file():
            raise FileNotFoundError(
                f"no MLflow store at {db} (tracking URI {uri}): set "
                "MLFLOW_TRACKING_URI to the store that holds the model, or give a "
                "bundle folder"
            )
    return uri


def ensure_tracking_uri(tracking_uri: str | None = None) -> str:
    """Point MLflow (tracking and registry) at ``tracking_uri`` or the default."""
    import mlflow  # optional heavy import: only where MLflow is used

    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


#: The file MLflow logs and executes to build the pyfunc model (models-from-code):
#: it only imports :class:`plo_risk.serve.pyfunc.PLORiskPyfunc`.
PYFUNC_ENTRY = Path(__file__).with_name("mlflow_entry.py")

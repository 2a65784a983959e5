"""The MLflow pyfunc around a plo_risk bundle (``mlflow models serve``, ``spark_udf``).

MLflow builds the model from code (no cloudpickle): it executes
``mlflow_entry.py``, which only imports :class:`PLORiskPyfunc` from here and
hands it to :func:`mlflow.models.set_model`. The model's only artifact is the
bundle folder, loaded through :func:`plo_risk.model.bundle.load_bundle`, which
never unpickles. Rows are scored by :meth:`plo_risk.RiskModel.predict_frame`, the
same call as batch scoring and the model card.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from plo_risk.data.schema import ID_COLUMN, Problem, ValidationError
from plo_risk.serve.authenticity import check_logged_model
from plo_risk.serve.risk_model import RiskModel

__all__ = ["TOP_K", "PLORiskPyfunc"]

TOP_K = 3
#: A row's ``error`` when scoring failed for a reason that is not the input's.
INTERNAL_ERROR = "internal error while scoring; the details are in the server's log"
_log = logging.getLogger(__name__)


class PLORiskPyfunc(PythonModel):
    """Risk, category and the top factors per input row.

    Rows that fail validation get ``risk`` NaN and the reason in ``error``: nothing
    is dropped, and no input fails the request as a whole. A problem of the whole
    batch (a required column absent) is every row's ``error``; a failure that is
    not the input's is logged on the server and every row's ``error`` is
    :data:`INTERNAL_ERROR`. ``predict`` raises nothing, since MLflow's server would
    answer an exception with its stack trace. The factors are the fields with the largest contributions in
    calibrated log-odds (``factor_1``, ``contribution_1``, ...), the same numbers as
    :meth:`plo_risk.RiskModel.assess`.
    """

    def load_context(self, context) -> None:
        """Load the bundle, after checking what MLflow loaded against the registry.

        Refused (:class:`~plo_risk.model.BundleError`) when the logged code file is
        not byte for byte this package's ``mlflow_entry.py``, when the bundle's
        digest differs from the ``plo_risk.bundle_sha256`` tag of the run that
        logged it (and of every registered version of that run), when the tag is
        missing, or when the tracking store cannot be reached to check it.

        What this can and cannot guarantee: ``mlflow.pyfunc.load_model`` executes
        the code file named by the artifact store's ``MLmodel`` *before* this
        method runs, so a tampered file has already run, and one that does not
        hand over to this class is never checked at all. This check catches a
        changed bundle (a resealed forgery) and a changed code file that still
        builds this model; it does not stop code that an attacker with write
        access to the artifact store chose to run. For that, load with
        :meth:`plo_risk.RiskModel.load` (``models:/...``), which executes nothing
        from the artifact store and checks the bundle, the code file and the
        ``MLmodel`` loader against the registered version's tags, or run it before
        ``mlflow models serve``.
        """
        check_logged_model(context.artifacts["bundle"])
        self.model = RiskModel.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        try:
            frame = _as_frame(model_input)
        except ValidationError as exc:  # one row that says why
            frame, error = pd.DataFrame(index=pd.RangeIndex(1)), _one_line(exc)
        else:
            error = None
        if error is None:
            try:
                out = self.model.predict_frame(frame, explain="all", top_k=TOP_K)
            except ValidationError as exc:  # a problem of the batch: every row's
                error = _one_line(exc)
            except Exception:
                _log.exception("scoring a batch of %d rows failed", len(frame))
                error = INTERNAL_ERROR
        if error is not None:
            out = _error_rows(frame, error)
        out["model_version"] = self.model.version
        return out


def _as_frame(model_input: Any) -> pd.DataFrame:
    """The rows as a frame with a fresh 0..n-1 index, or ValidationError."""
    if isinstance(model_input, pd.DataFrame):
        return model_input.reset_index(drop=True)
    try:
        return pd.DataFrame(model_input).reset_index(drop=True)
    except Exception:  # pandas says ValueError or TypeError, depending on the shape
        raise ValidationError(
            [
                Problem(
                    "model_input",
                    type(model_input).__name__,
                    "must be a table of rows (a DataFrame, or records of field "
                    "name to value)",
                )
            ]
        ) from None


def _one_line(exc: ValidationError) -> str:
    """Every problem of ``exc``, joined as a row's ``error`` joins its problems."""
    return "; ".join(p.message for p in exc.problems) or str(exc)


def _error_rows(frame: pd.DataFrame, error: str) -> pd.DataFrame:
    """What :meth:`RiskModel.predict_frame` gives when every row fails."""
    n = len(frame)
    columns: dict[str, Any] = {}
    if ID_COLUMN in frame.columns:
        columns[ID_COLUMN] = frame[ID_COLUMN].array
    columns["risk"] = np.full(n, np.nan)
    columns["category"] = np.full(n, None, dtype=object)
    for k in range(1, TOP_K + 1):
        columns[f"factor_{k}"] = np.full(n, None, dtype=object)
        columns[f"contribution_{k}"] = np.full(n, np.nan)
    columns["error"] = np.full(n, error, dtype=object)
    return pd.DataFrame(columns, index=frame.index)

"""The MLflow pyfunc around a plo_risk bundle (``mlflow models serve``, ``spark_udf``).

MLflow builds the model from code (no cloudpickle): it executes
``mlflow_entry.py``, which only imports :class:`PLORiskPyfunc` from here and
hands it to :func:`mlflow.models.set_model`. The model's only artifact is the
bundle folder, loaded through :func:`plo_risk.model.bundle.load_bundle`, which
never unpickles. Rows are scored by :meth:`plo_risk.RiskModel.predict_frame`, the
same call as batch scoring and the model card.
"""

from __future__ import annotations

import pandas as pd
from mlflow.pyfunc import PythonModel

from plo_risk.serve.authenticity import check_logged_model
from plo_risk.serve.risk_model import RiskModel

__all__ = ["TOP_K", "PLORiskPyfunc"]

TOP_K = 3


class PLORiskPyfunc(PythonModel):
    """Risk, category and the top factors per input row.

    Rows that fail validation get ``risk`` NaN and the reason in ``error``: nothing
    is dropped. The factors are the fields with the largest contributions in
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
        frame = (
            model_input
            if isinstance(model_input, pd.DataFrame)
            else pd.DataFrame(model_input)
        )
        out = self.model.predict_frame(
            frame.reset_index(drop=True), explain="all", top_k=TOP_K
        )
        out["model_version"] = self.model.version
        return out

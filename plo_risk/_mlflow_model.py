"""MLflow models-from-code entry: the pyfunc wrapper around a plo_risk bundle.

MLflow executes this file to build the model (no cloudpickle). The model's only
artifact is the bundle folder; loading it goes through
:func:`plo_risk.bundle.load_bundle`, which never unpickles.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

TOP_K = 3


class PLORiskPyfunc(PythonModel):
    """Risk, category and the top factors per input row.

    Rows that fail validation get ``risk`` NaN and the reason in ``error``: nothing
    is dropped. The factors are the fields with the largest contributions in
    calibrated log-odds (``factor_1``, ``contribution_1``, ...), the same numbers as
    :meth:`plo_risk.RiskModel.assess`.
    """

    def load_context(self, context) -> None:
        from plo_risk.bundle import load_bundle

        self.model, self.info = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from plo_risk.schema import ID_COLUMN, validate_frame

        frame = (
            model_input
            if isinstance(model_input, pd.DataFrame)
            else pd.DataFrame(model_input)
        )
        frame = frame.reset_index(drop=True)
        res = validate_frame(frame, unknown="ignore")
        out = pd.DataFrame(index=frame.index)
        if ID_COLUMN in frame.columns:
            out[ID_COLUMN] = frame[ID_COLUMN]
        out["risk"] = np.nan
        out["category"] = None
        for k in range(1, TOP_K + 1):
            out[f"factor_{k}"] = None
            out[f"contribution_{k}"] = np.nan
        out["error"] = None
        if len(res.valid):
            from plo_risk.explain import explain_cohort

            X = res.valid.drop(
                columns=[
                    c
                    for c in (ID_COLUMN, "fracture", "true_risk")
                    if c in res.valid.columns
                ]
            )
            risk = self.model.predict_proba(X)[:, 1]
            out.loc[res.valid.index, "risk"] = risk
            out.loc[res.valid.index, "category"] = self.model.categorize(risk)
            top = explain_cohort(self.model, X, top_k=TOP_K)
            for col in top.columns:
                out.loc[res.valid.index, col] = top[col].to_numpy()
        if len(res.rejects):
            messages = res.rejects.groupby("row")["message"].agg("; ".join)
            out.loc[messages.index, "error"] = messages.to_numpy()
        out["model_version"] = self.info.model_version
        return out


mlflow.models.set_model(PLORiskPyfunc())

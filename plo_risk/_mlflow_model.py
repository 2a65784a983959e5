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


class PLORiskPyfunc(PythonModel):
    """Risk and category per input row; rows that fail validation get the reason."""

    def load_context(self, context) -> None:
        from plo_risk.bundle import load_bundle

        self.model, self.info = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from plo_risk.schema import ID_COLUMN, validate_frame

        frame = model_input if isinstance(model_input, pd.DataFrame) else \
            pd.DataFrame(model_input)
        frame = frame.reset_index(drop=True)
        res = validate_frame(frame, unknown="ignore")
        out = pd.DataFrame(index=frame.index)
        if ID_COLUMN in frame.columns:
            out[ID_COLUMN] = frame[ID_COLUMN]
        out["risk"] = np.nan
        out["category"] = None
        out["error"] = None
        if len(res.valid):
            X = res.valid.drop(columns=[c for c in (ID_COLUMN, "fracture", "true_risk")
                                        if c in res.valid.columns])
            risk = self.model.predict_proba(X)[:, 1]
            out.loc[res.valid.index, "risk"] = risk
            out.loc[res.valid.index, "category"] = self.model.categorize(risk)
        if len(res.rejects):
            messages = res.rejects.groupby("row")["message"].agg("; ".join)
            out.loc[messages.index, "error"] = messages.to_numpy()
        out["model_version"] = self.info.model_version
        return out


mlflow.models.set_model(PLORiskPyfunc())

"""MLflow models-from-code entry: MLflow executes this file to build the model.

It holds no logic: the model is :class:`plo_risk.serve.pyfunc.PLORiskPyfunc` of the
installed package.
"""

import mlflow

from plo_risk.serve.pyfunc import PLORiskPyfunc

mlflow.models.set_model(PLORiskPyfunc())

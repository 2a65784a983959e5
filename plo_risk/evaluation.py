"""``plo_risk.evaluation`` is ``plo_risk.evaluate.metrics``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.evaluate.metrics import *  # noqa: F403
from plo_risk.evaluate.metrics import __all__  # noqa: F401

"""``plo_risk.models`` is :mod:`plo_risk.model`: the name the first wave used, kept
so that code written against it keeps working. New code may import either."""

from plo_risk.model import *  # noqa: F403
from plo_risk.model import __all__  # noqa: F401
from plo_risk.model.calibration import split_margin  # noqa: F401

"""``plo_risk.features`` is ``plo_risk.model.features``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.model.features import *  # noqa: F403
from plo_risk.model.features import __all__  # noqa: F401

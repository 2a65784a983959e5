"""``plo_risk.bundle`` is ``plo_risk.model.bundle``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.model.bundle import *  # noqa: F403
from plo_risk.model.bundle import __all__  # noqa: F401

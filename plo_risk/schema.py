"""``plo_risk.schema`` is ``plo_risk.data.schema``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.data.schema import *  # noqa: F403
from plo_risk.data.schema import __all__  # noqa: F401

"""``plo_risk.catalog`` is ``plo_risk.data.catalog``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.data.catalog import *  # noqa: F403
from plo_risk.data.catalog import __all__  # noqa: F401

"""``plo_risk.synthetic`` is ``plo_risk.data.synthetic``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.data.synthetic import *  # noqa: F403
from plo_risk.data.synthetic import __all__  # noqa: F401

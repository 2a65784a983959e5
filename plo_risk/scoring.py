"""``plo_risk.scoring`` is ``plo_risk.serve.scoring``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.serve.scoring import *  # noqa: F403
from plo_risk.serve.scoring import __all__  # noqa: F401

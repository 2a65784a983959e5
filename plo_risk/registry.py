"""``plo_risk.registry`` is ``plo_risk.data.ingest``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.data.ingest import *  # noqa: F403
from plo_risk.data.ingest import __all__  # noqa: F401

"""``plo_risk.omop`` is ``plo_risk.data.ingest.omop``: the name the first wave used, kept so that
code written against it keeps working. New code may import either."""

from plo_risk.data.ingest.omop import *  # noqa: F403
from plo_risk.data.ingest.omop import __all__  # noqa: F401

"""``plo_risk.assess`` is :mod:`plo_risk.serve`'s clinician API (``RiskModel``,
``RiskAssessment``): the name the first wave used, kept so that code written
against it keeps working. New code may import either."""

from plo_risk.data.reference import reference_values  # noqa: F401
from plo_risk.serve.assessment import *  # noqa: F403
from plo_risk.serve.assessment import __all__ as _assessment_all
from plo_risk.serve.risk_model import RiskModel  # noqa: F401

__all__ = [*_assessment_all, "RiskModel", "reference_values"]

"""Stage 7 (beside training), the clinician's web page: a form, an explained result
and an audit trail.

:func:`create_app` builds the FastAPI application around one model, :func:`serve`
runs it with uvicorn (``plo-risk serve``; ``python -m plo_risk.web``). Every
assessment appends a record to a hash-chained audit log that :func:`verify`
checks and :func:`replay` recomputes (``plo-risk audit verify|replay``).
Only the CLI imports this stage.
"""

from plo_risk.web.app import (
    DEFAULT_AUDIT_LOG,
    AccessError,
    AssessBody,
    WhatIfBody,
    create_app,
    serve,
)
from plo_risk.web.audit import (
    AuditError,
    AuditLog,
    ReplayDifference,
    ReplayResult,
    VerifyProblem,
    VerifyResult,
    load_or_create_key,
    read_key,
    replay,
    verify,
)
from plo_risk.web.identity import load_model, model_identity
from plo_risk.web.present import RiskRow, baseline_of, natural_frequency, risk_rows
from plo_risk.web.security import is_loopback, read_token_file

__all__ = [
    "DEFAULT_AUDIT_LOG",
    "AccessError",
    "AssessBody",
    "AuditError",
    "AuditLog",
    "ReplayDifference",
    "ReplayResult",
    "RiskRow",
    "VerifyProblem",
    "VerifyResult",
    "WhatIfBody",
    "baseline_of",
    "create_app",
    "is_loopback",
    "load_model",
    "load_or_create_key",
    "model_identity",
    "natural_frequency",
    "read_key",
    "read_token_file",
    "replay",
    "risk_rows",
    "serve",
    "verify",
]

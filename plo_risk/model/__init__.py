"""Stage 2, the models: feature pipeline, model families, calibration, bundles.

Imports only from :mod:`plo_risk.data` (and :mod:`plo_risk.utils`).
"""

from plo_risk.model.bundle import (
    BundleError,
    BundleInfo,
    bundle_digest,
    load_bundle,
    save_bundle,
    sign_bundle,
)
from plo_risk.model.calibration import PlattCalibratedClassifier, margin, recalibrate
from plo_risk.model.ensemble import ensemble_risks, fit_bootstrap_ensemble
from plo_risk.model.families import FAMILIES, MODEL_NAMES, family_of, get_family
from plo_risk.model.features import build_pipeline, monotone_constraints
from plo_risk.model.rule import ClinicalRuleClassifier
from plo_risk.model.signing import SigningKeyError, generate_signing_key
from plo_risk.model.zoo import DEFAULT_PARAMS, make_model

__all__ = [
    "DEFAULT_PARAMS",
    "FAMILIES",
    "MODEL_NAMES",
    "BundleError",
    "BundleInfo",
    "ClinicalRuleClassifier",
    "PlattCalibratedClassifier",
    "SigningKeyError",
    "build_pipeline",
    "bundle_digest",
    "ensemble_risks",
    "family_of",
    "fit_bootstrap_ensemble",
    "generate_signing_key",
    "get_family",
    "load_bundle",
    "make_model",
    "margin",
    "monotone_constraints",
    "recalibrate",
    "save_bundle",
    "sign_bundle",
]

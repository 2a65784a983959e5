"""Screening policies (who is sent for DXA) and their metrics.

A :class:`ScreeningPolicy` turns predicted risks into a flag per patient:

- ``"absolute"``: flag when risk >= ``threshold`` (like the model's stored
  category thresholds, :meth:`plo_risk.model.calibration.CalibratedRiskModel.categorize`);
- ``"relative"``: flag when risk >= ``multiple`` x the setting's average risk
  (``baseline_risk``), e.g. 3x;
- ``"top_share"``: flag the top ``share`` of the cohort by risk. Exactly
  ``ceil(share * n)`` patients are flagged; ties at the cut are broken by row
  order (a stable sort on descending risk: the earlier row wins), so the
  result is deterministic.

:func:`screening_metrics` gives share flagged, sensitivity, PPV, number needed
to screen per fracture found and detection in the top 1/5/10%, each with a
95% CI: Wilson intervals for the proportions, a seeded percentile bootstrap
for the NNS. :func:`screening_curve` is the cumulative gains curve.

Examples
--------
>>> import numpy as np
>>> policy = ScreeningPolicy(kind="top_share", share=0.5)
>>> policy.flag(np.array([0.1, 0.4, 0.2, 0.3])).tolist()
[False, True, False, True]
>>> ScreeningPolicy.from_dict(policy.to_dict()) == policy
True
>>> ScreeningPolicy(kind="relative", multiple=3.0).describe()
'flag risk >= 3x the setting average risk'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from plo_risk.utils.intervals import wilson

__all__ = [
    "KINDS",
    "Estimate",
    "ScreeningMetrics",
    "ScreeningPolicy",
    "ScreeningPolicyError",
    "screening_curve",
    "screening_metrics",
]

#: The policy kinds and the parameter each one needs.
KINDS = {"absolute": "threshold", "relative": "multiple", "top_share": "share"}
_FIELDS = ("kind", "threshold", "multiple", "share")


class ScreeningPolicyError(ValueError):
    """A screening policy or its inputs are invalid."""


def _check_open_unit(name: str, value: Any, *, closed_right: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value > 0
    ok = ok and (value <= 1 if closed_right else value < 1)
    if not ok:
        allowed = "(0, 1]" if closed_right else "(0, 1)"
        raise ScreeningPolicyError(
            f"{name}={value!r}: must be a number in {allowed}"
            + (" (share of the cohort)" if name == "share" else " (risk)")
        )


@dataclass(frozen=True)
class ScreeningPolicy:
    """Who is flagged for screening (DXA), from predicted risks.

    Parameters
    ----------
    kind : {"absolute", "relative", "top_share"}
        How risks become flags (see the module docstring).
    threshold : float, default=None
        Risk in (0, 1) at or above which a patient is flagged (``"absolute"``).
    multiple : float, default=None
        Positive multiple of the setting's average risk (``"relative"``).
    share : float, default=None
        Share of the cohort in (0, 1] flagged, highest risks first
        (``"top_share"``).

    Raises
    ------
    ScreeningPolicyError
        On an unknown kind, a missing or out-of-range parameter, or a
        parameter that belongs to another kind.
    """

    kind: str
    threshold: float | None = None
    multiple: float | None = None
    share: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ScreeningPolicyError(
                f"kind={self.kind!r}: must be one of {sorted(KINDS)}"
            )
        need = KINDS[self.kind]
        for name in KINDS.values():
            value = getattr(self, name)
            if name != need and value is not None:
                raise ScreeningPolicyError(
                    f"{name}={value!r}: not used by kind={self.kind!r}, "
                    f"which takes only {need!r}"
                )
        value = getattr(self, need)
        if value is None:
            raise ScreeningPolicyError(
                f"{need}=None: kind={self.kind!r} needs {need!r}"
            )
        if need == "multiple":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and value > 0):
                raise ScreeningPolicyError(
                    f"multiple={value!r}: must be a positive number "
                    "(times the setting's average risk)"
                )
        else:
            _check_open_unit(need, value, closed_right=need == "share")
        object.__setattr__(self, need, float(value))

    def to_dict(self) -> dict[str, Any]:
        """The policy as a JSON-ready dict (only the kind's own parameter)."""
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: Any) -> ScreeningPolicy:
        """Inverse of :meth:`to_dict`; rejects unknown keys."""
        if not isinstance(d, dict):
            raise ScreeningPolicyError(
                f"policy={d!r}: must be a dict with keys from {list(_FIELDS)}"
            )
        unknown = sorted(set(d) - set(_FIELDS))
        if unknown:
            raise ScreeningPolicyError(
                f"{unknown[0]}={d[unknown[0]]!r}: unknown policy key; "
                f"allowed: {list(_FIELDS)}"
            )
        if "kind" not in d:
            raise ScreeningPolicyError(f"kind missing: must be one of {sorted(KINDS)}")
        return cls(**d)

    def describe(self) -> str:
        """One line for reports: who the policy flags."""
        if self.kind == "absolute":
            return f"flag risk >= {self.threshold:.3g}"
        if self.kind == "relative":
            return f"flag risk >= {self.multiple:g}x the setting average risk"
        return f"flag the top {100 * self.share:g}% of the cohort by risk"

    def flag(self, risks, baseline_risk: float | None = None) -> np.ndarray:
        """Boolean flag per patient.

        Parameters
        ----------
        risks : array-like of shape (n,)
            Predicted risks in [0, 1].
        baseline_risk : float, default=None
            The setting's average risk; required by ``"relative"``.

        Returns
        -------
        ndarray of bool, shape (n,)
        """
        r = _check_risks(risks)
        if self.kind == "absolute":
            return r >= self.threshold
        if self.kind == "relative":
            if baseline_risk is None:
                raise ScreeningPolicyError(
                    "baseline_risk=None: kind='relative' needs the setting's "
                    "average risk in (0, 1)"
                )
            _check_open_unit("baseline_risk", baseline_risk)
            return r >= self.multiple * float(baseline_risk)
        return _top(r, self.share)


def _check_risks(risks) -> np.ndarray:
    r = np.asarray(risks, dtype=float).ravel()
    if r.size == 0:
        raise ScreeningPolicyError("risks: empty; need at least one patient")
    bad = ~np.isfinite(r) | (r < 0) | (r > 1)
    if bad.any():
        raise ScreeningPolicyError(
            f"risks[{int(np.argmax(bad))}]={float(r[bad][0])!r}: must be in [0, 1]"
        )
    return r


def _top(r: np.ndarray, share: float) -> np.ndarray:
    """Exactly ceil(share * n) flags; ties at the cut go to the earlier row."""
    n = r.size
    k = min(n, math.ceil(round(share * n, 9)))
    order = np.argsort(-r, kind="stable")
    out = np.zeros(n, dtype=bool)
    out[order[:k]] = True
    return out


def _wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    low, high = wilson(k / n, n, float(norm.ppf(0.5 + level / 2)))
    # Exact ends at k = 0 and k = n (rounding would leave them off by 1e-17).
    low = 0.0 if k == 0 else max(0.0, float(low))
    high = 1.0 if k == n else min(1.0, float(high))
    return (low, high)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% CI."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ScreeningMetrics:
    """What a screening policy achieves on a cohort (95% CIs).

    ``detection`` maps 1, 5 and 10 (percent of the cohort, highest risks
    first, :func:`_top` tie rule) to the share of fractures found there.
    ``nns`` is DXA scans per fracture found (flagged / true positives); it is
    ``inf`` when no fracture is flagged.
    """

    policy: ScreeningPolicy
    n: int
    n_events: int
    n_flagged: int
    share_flagged: Estimate
    sensitivity: Estimate
    ppv: Estimate
    nns: Estimate
    detection: dict[int, Estimate]


def _prop(k: int, n: int) -> Estimate:
    return Estimate(k / n if n else math.nan, *_wilson(k, n))


def screening_metrics(
    y,
    risk,
    policy: ScreeningPolicy,
    *,
    baseline_risk: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> ScreeningMetrics:
    """Share flagged, sensitivity, PPV, NNS and top-k% detection, with CIs.

    Proportions get Wilson 95% intervals; the NNS a percentile bootstrap
    (``n_boot`` resamples of patients with ``numpy.random.default_rng(seed)``;
    the policy is re-applied in each resample, so a top-share cut moves with
    it; resamples with no fracture flagged count as ``inf``).

    Parameters
    ----------
    y : array-like of {0, 1}, shape (n,)
        Observed fracture.
    risk : array-like of shape (n,)
        Predicted risk.
    policy : ScreeningPolicy
    baseline_risk : float, default=None
        The setting's average risk, for ``"relative"`` policies.
    n_boot : int, default=1000
    seed : int, default=0

    Returns
    -------
    ScreeningMetrics

    Examples
    --------
    >>> m = screening_metrics([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1],
    ...                       ScreeningPolicy(kind="top_share", share=0.5),
    ...                       n_boot=50)
    >>> m.sensitivity.value, m.ppv.value, m.nns.value
    (0.5, 0.5, 2.0)
    """
    if not isinstance(policy, ScreeningPolicy):
        raise ScreeningPolicyError(f"policy={policy!r}: must be a ScreeningPolicy")
    r = _check_risks(risk)
    yy = np.asarray(y).ravel()
    if yy.shape != r.shape:
        raise ScreeningPolicyError(
            f"y has {yy.size} rows, risk {r.size}: must be the same length"
        )
    if not np.isin(yy, (0, 1)).all():
        raise ScreeningPolicyError("y: must be 0/1 (fracture observed)")
    yy = yy.astype(bool)
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ScreeningPolicyError(f"n_boot={n_boot!r}: must be an int >= 1")
    flags = policy.flag(r, baseline_risk)
    n, e, f = r.size, int(yy.sum()), int(flags.sum())
    tp = int((flags & yy).sum())
    nns_value = f / tp if tp else math.inf
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        fb = policy.flag(r[idx], baseline_risk)
        tpb = int((fb & yy[idx]).sum())
        boots[b] = fb.sum() / tpb if tpb else math.inf
    # Order statistics, not interpolation: resamples may be inf.
    boots.sort()
    lo = boots[math.floor(0.025 * (n_boot - 1))]
    hi = boots[math.ceil(0.975 * (n_boot - 1))]
    detection = {}
    for pct in (1, 5, 10):
        top = _top(r, pct / 100)
        detection[pct] = _prop(int((top & yy).sum()), e)
    return ScreeningMetrics(
        policy=policy,
        n=n,
        n_events=e,
        n_flagged=f,
        share_flagged=_prop(f, n),
        sensitivity=_prop(tp, e),
        ppv=_prop(tp, f),
        nns=Estimate(nns_value, float(lo), float(hi)),
        detection=detection,
    )


def screening_curve(y, risk) -> pd.DataFrame:
    """Cumulative gains: share flagged vs share of fractures found.

    Patients are taken highest risk first (ties by row order), one row per
    patient plus the origin.

    Returns
    -------
    DataFrame with columns ``share_flagged`` and ``share_found``.
    """
    r = _check_risks(risk)
    yy = np.asarray(y, dtype=float).ravel()
    if yy.shape != r.shape:
        raise ScreeningPolicyError(
            f"y has {yy.size} rows, risk {r.size}: must be the same length"
        )
    order = np.argsort(-r, kind="stable")
    found = np.concatenate([[0.0], np.cumsum(yy[order])])
    total = found[-1]
    return pd.DataFrame(
        {
            "share_flagged": np.arange(r.size + 1) / r.size,
            "share_found": found / total if total else np.full(found.size, np.nan),
        }
    )

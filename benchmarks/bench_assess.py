"""Latency of RiskModel.assess for one patient vs raw xgboost on the same row.

Prints p50/p99 of ``assess`` (validation + features + prediction + explanation)
next to raw ``Booster.inplace_predict`` + ``Booster.predict(pred_contribs=True)``
on the already prepared one-row matrix, measured in the same run, and the ratio
of the medians. Aim (issue 6): p50 <= 3x raw.

    python benchmarks/bench_assess.py --repeats 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import xgboost as xgb

from plo_risk.data.reference import reference_values
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import save_bundle
from plo_risk.model.zoo import make_model
from plo_risk.serve import RiskModel

PATIENT = {
    "age_years": 33,
    "parity": 2,
    "months_postpartum": 4,
    "lactation_months": 4,
    "breastfeeding_now": True,
    "calcium_intake_mg_day": 700,
    "vitamin_d_25oh": 14,
    "z_lumbar_spine": -2.8,
    "family_history_osteoporosis": True,
}


def _timed(fn, repeats: int) -> np.ndarray:
    for _ in range(10):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--train-rows", type=int, default=20_000)
    args = parser.parse_args()
    import tempfile

    valid = validate_frame(generate_cohort(args.train_rows, seed=1)).valid
    y = valid["fracture"].to_numpy()
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    model = make_model("xgboost").fit(X, y)
    path = save_bundle(
        model,
        tempfile.mkdtemp() + "/bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X)},
    )
    risk_model = RiskModel.load(path)

    row = risk_model._frame(risk_model.assess(PATIENT).record)
    matrix = risk_model.model.estimator_[:-1].transform(row)
    booster = risk_model.model.estimator_[-1].get_booster()
    dm = np.ascontiguousarray(matrix.to_numpy(dtype=np.float32))
    names = list(matrix.columns)

    def raw():
        booster.inplace_predict(dm, predict_type="margin")
        booster.predict(
            xgb.DMatrix(dm, missing=np.nan, feature_names=names), pred_contribs=True
        )

    ours = _timed(lambda: risk_model.assess(PATIENT), args.repeats)
    base = _timed(raw, args.repeats)
    p50, p99 = np.percentile(ours, [50, 99])
    r50, r99 = np.percentile(base, [50, 99])
    print(f"assess:           p50 {p50:.2f} ms   p99 {p99:.2f} ms")
    print(f"raw xgboost:      p50 {r50:.2f} ms   p99 {r99:.2f} ms")
    print(f"ratio p50 assess / raw: {p50 / r50:.1f}x (aim <= 3x)")


if __name__ == "__main__":
    main()

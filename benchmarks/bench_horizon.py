"""Cost of the horizon model, measured side by side in one run.

1. ``RiskModel.assess`` of one patient with a horizon model (every horizon, its
   interval, the explanation, what to measure next) and a what-if, against raw
   xgboost ``inplace_predict`` + ``predict(pred_contribs=True)`` of the same
   trees on her person-month rows: p50 and the ratio (aim: <= 3x).
2. Batch risks of three horizons against one, on the same rows (aim: <= 1.5x).

    python benchmarks/bench_horizon.py --train 6000 --rows 100000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import xgboost as xgb

from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.horizon import (
    HazardModel,
    _time_block,
    follow_up,
    model_inputs,
    simulate_interval,
)
from plo_risk.model.zoo import make_model
from plo_risk.serve import RiskModel

PATIENT = {
    "age_years": 33,
    "parity": 1,
    "months_postpartum": 4,
    "lactation_months": 4,
    "breastfeeding_now": True,
    "lactation_planned_months": 12,
    "calcium_intake_mg_day": 700,
    "vitamin_d_25oh": 14,
    "z_lumbar_spine": -2.8,
}


def p50(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=6_000)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    df = generate_cohort(args.train, setting="referral", seed=1)
    valid = validate_frame(df, unknown="ignore").valid
    X = model_inputs(valid)
    t, d = follow_up(df.loc[valid.index])
    champion = make_model("xgboost", cv=2).fit(X, d)
    champion.horizon_ = HazardModel(params={"backfit": 2}).fit(X, t, d)
    champion.horizon_interval_ = simulate_interval(champion.horizon_, n=5_000)
    rm = RiskModel(champion)
    hm = rm.horizon_model

    frame = rm._frame(rm.assess(PATIENT).record)
    course = hm._course(frame)
    tv, _ = _time_block(course, 21)
    M, _ = hm._design(hm._base(frame), tv, course)
    M = np.ascontiguousarray(M, dtype=np.float32)
    booster = hm.learner_.booster

    def raw():
        booster.inplace_predict(M, predict_type="margin", validate_features=False)
        booster.predict(xgb.DMatrix(M), pred_contribs=True, validate_features=False)

    def assess():
        a = rm.assess(PATIENT)
        _ = a.interval, a.missing, a.what_if(breastfeeding_now=False)

    r, a = p50(raw, args.repeats), p50(assess, args.repeats)
    print(
        f"assess with 4 horizons, interval, factors, what to measure next and a "
        f"what-if: p50 {a * 1e3:.2f} ms; raw predict + contributions "
        f"{r * 1e3:.2f} ms; ratio {a / r:.1f}x"
    )

    big = generate_cohort(args.rows, setting="referral", seed=2)
    Xb = model_inputs(validate_frame(big, unknown="ignore").valid)
    # Alternated, so that both see the same machine (a drift of the machine's
    # speed between two blocks of runs would show up as a ratio).
    ones, threes = [], []
    for _ in range(5):
        for hs, times in (([12], ones), ([3, 6, 12], threes)):
            t = time.perf_counter()
            hm.risk(Xb, hs)
            times.append(time.perf_counter() - t)
    one, three = float(np.median(ones)), float(np.median(threes))
    print(
        f"{len(Xb):,} rows: one horizon {one:.2f} s, three horizons {three:.2f} s, "
        f"ratio {three / one:.2f}x"
    )


if __name__ == "__main__":
    main()

"""Speed of contributions() and explain_cohort() for the xgboost champion.

Fits the champion (default hyperparameters) on ``--n-train`` rows, then prints the
seconds of scoring (``decision_function``), of exact TreeSHAP contributions per
model column and per field, and of the top-3 factors per row, on ``--n`` rows.

    python benchmarks/bench_explain.py --n 100000
"""

from __future__ import annotations

import argparse
import time

from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.explain import contributions, explain_cohort
from plo_risk.model.zoo import make_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n-train", type=int, default=5_000)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    train = validate_frame(generate_cohort(args.n_train, seed=1)).valid
    model = make_model("xgboost", params={"n_jobs": args.n_jobs}, cv=2)
    model.fit(train, train["fracture"].astype(int))
    frame = validate_frame(generate_cohort(args.n, seed=2)).valid

    def timed(label, fn):
        t0 = time.perf_counter()
        fn()
        print(f"{label}: {time.perf_counter() - t0:.2f} s")

    print(f"rows {len(frame):,}, xgboost threads {args.n_jobs}")
    timed("decision_function", lambda: model.decision_function(frame))
    timed("contributions by column", lambda: contributions(model, frame, by="column"))
    timed("contributions by field", lambda: contributions(model, frame, by="field"))
    timed("explain_cohort top 3", lambda: explain_cohort(model, frame, top_k=3))


if __name__ == "__main__":
    main()

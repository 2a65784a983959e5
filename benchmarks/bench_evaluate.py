"""Speed of evaluate(): bootstrap CIs for every metric vs one sklearn pass.

Prints the seconds of ``plo_risk.evaluation.evaluate`` with ``--n-boot``
replicates next to the seconds of computing AUROC, AUPRC and Brier once with
scikit-learn on the same rows, and their ratio (the cost per replicate).

    python benchmarks/bench_evaluate.py --n 100000 --n-boot 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from plo_risk.evaluate.metrics import evaluate, ici


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    p = 1 / (1 + np.exp(-rng.normal(-3, 1.2, args.n)))
    y = (rng.random(args.n) < p).astype(int)

    t0 = time.perf_counter()
    roc_auc_score(y, p), average_precision_score(y, p), brier_score_loss(y, p)
    once = time.perf_counter() - t0

    t0 = time.perf_counter()
    ici(y, p)
    t_ici = time.perf_counter() - t0

    t0 = time.perf_counter()
    evaluate(y, p, thresholds={"moderate": 0.05, "high": 0.2}, n_boot=args.n_boot)
    full = time.perf_counter() - t0
    print(f"rows {args.n:,}, replicates {args.n_boot}")
    print(f"sklearn auroc+auprc+brier once: {once:.3f} s")
    print(f"ici once: {t_ici:.3f} s")
    print(f"evaluate with CIs: {full:.2f} s")
    print(
        f"ratio evaluate / (sklearn once x (replicates+1)): "
        f"{full / (once * (args.n_boot + 1)):.2f}"
    )


if __name__ == "__main__":
    main()

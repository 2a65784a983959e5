"""Throughput of the synthetic cohort generator (v2: event histories and the oracle).

Generates ``--n`` clean episodes, each lived month by month from the third trimester
to 18 months postpartum (BMD, hazards, fractures, the oracle's risk at 3, 6, 12
months and to the end of the window), and prints seconds and rows/s: once cold (the
first call of a setting also solves its hazard scale on the reference draw) and once
warm. In the same run it times the first wave's generator (one 0/1 outcome per
episode), kept frozen as ``benchmarks/v1/synthetic_v1.py``, and
prints the ratio. Aim (issue 16): 1,000,000 episodes with event histories in under
15 s.

    python benchmarks/bench_generate.py --n 1000000
"""

from __future__ import annotations

import argparse
import time

from v1.synthetic_v1 import generate_cohort_v1

from plo_risk.data.synthetic import generate_cohort


def bench(fn, n: int, setting: str, style: str, missingness: str) -> float:
    """Seconds to generate ``n`` rows with ``fn``."""
    start = time.perf_counter()
    df = fn(n, setting=setting, style=style, missingness=missingness, seed=1)
    seconds = time.perf_counter() - start
    assert len(df) >= n
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows per run")
    parser.add_argument("--style", default="clean", choices=["clean", "registry"])
    parser.add_argument(
        "--missingness", default="realistic", choices=["realistic", "none"]
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["population", "referral"],
        choices=["population", "referral"],
    )
    args = parser.parse_args()
    for setting in args.settings:
        for run in ("cold", "warm"):
            v2 = bench(generate_cohort, args.n, setting, args.style, args.missingness)
            print(
                f"{setting:>10} {run} v2: {args.n:,} episodes in {v2:6.2f} s "
                f"= {args.n / v2:,.0f} rows/s"
            )
        v1 = bench(generate_cohort_v1, args.n, setting, args.style, args.missingness)
        v1 = min(
            v1, bench(generate_cohort_v1, args.n, setting, args.style, args.missingness)
        )
        print(
            f"{setting:>10} warm v1: {args.n:,} episodes in {v1:6.2f} s "
            f"= {args.n / v1:,.0f} rows/s; v2 / v1 = {v2 / v1:.2f}x the time"
        )


if __name__ == "__main__":
    main()

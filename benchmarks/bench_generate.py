"""Throughput of the synthetic cohort generator.

Generates ``--n`` clean rows in both settings and prints seconds and rows/s, once
cold (the first call also solves the intercept on the reference draw) and once warm.
Aim (issue 4): 1,000,000 rows in under 10 s on 2 cores.

    python benchmarks/bench_generate.py --n 1000000
"""

from __future__ import annotations

import argparse
import time

from plo_risk.data.synthetic import generate_cohort


def bench(n: int, setting: str, style: str, missingness: str) -> float:
    """Seconds to generate ``n`` rows."""
    start = time.perf_counter()
    df = generate_cohort(
        n, setting=setting, style=style, missingness=missingness, seed=1
    )
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
    args = parser.parse_args()
    for setting in ("population", "referral"):
        for run in ("cold", "warm"):
            s = bench(args.n, setting, args.style, args.missingness)
            print(
                f"{setting:>10} {run}: {args.n:,} rows in {s:6.2f} s "
                f"= {args.n / s:,.0f} rows/s"
            )


if __name__ == "__main__":
    main()

"""Throughput of validate_frame on a large frame with 1% bad cells.

Prints rows/s of ``validate_frame`` next to the rows/s of the bare numpy range
check on the same data (the floor any validator pays), and their ratio.
Aim (issue 3): >= 500k rows/s on 2 cores.

    python benchmarks/bench_validate.py --n 1000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from plo_risk.data.catalog import load_catalog
from plo_risk.data.schema import validate_frame


def make_frame(
    n: int, bad_share: float, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """Random in-range frame with ``bad_share`` of rows given one bad cell."""
    cat = load_catalog()
    rng = np.random.default_rng(seed)
    data = {}
    for f in cat:
        if f.derived_from:
            continue
        if f.dtype == "category":
            data[f.name] = pd.Categorical(
                rng.choice(f.categories, n), categories=f.categories
            )
        elif f.dtype == "bool":
            data[f.name] = rng.random(n) < 0.2
        elif f.bmd_reference:
            mean, sd = f.bmd_reference
            data[f.name] = np.round(
                np.clip(rng.normal(mean, sd, n), mean - 4 * sd, mean + 4 * sd), 3
            )
        else:
            lo, hi = f.range
            v = rng.uniform(lo, hi, n)
            data[f.name] = np.round(v) if f.dtype == "int" else v
    df = pd.DataFrame(data)
    _obey_rules(df, rng)
    bad = rng.random(n) < bad_share
    kinds = rng.integers(0, 3, n)
    df.loc[bad & (kinds == 0), "lactation_months"] = -3.0
    df.loc[bad & (kinds == 1), "age_years"] = np.nan  # required
    df.loc[bad & (kinds == 2), "vitamin_d_25oh"] = np.inf
    return df, bad


def _obey_rules(df: pd.DataFrame, rng: np.random.Generator) -> None:
    """Make the random values agree with the catalog's cross-field rules, so the
    only rejected rows are the ones made bad on purpose."""
    since = np.maximum(df["months_postpartum"].to_numpy(), 0.0)
    df["lactation_months"] = rng.uniform(0, 1, len(df)) * since
    df["amenorrhea_months"] = rng.uniform(0, 1, len(df)) * since
    feeding = df["breastfeeding_now"].to_numpy() & (df["lactation_months"] > 0)
    df["breastfeeding_now"] = feeding
    df["lactation_exclusive"] = df["lactation_exclusive"].to_numpy() & feeding
    first = df["parity"].to_numpy() < 2
    df.loc[first, "prior_lactation_months"] = 0.0
    df.loc[first, "interpregnancy_interval_months"] = np.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--bad-share", type=float, default=0.01)
    args = parser.parse_args()
    df, bad = make_frame(args.n, args.bad_share)
    validate_frame(df.head(1000))  # warm up imports and cached schemas

    t0 = time.perf_counter()
    res = validate_frame(df)
    ours = time.perf_counter() - t0

    cat = load_catalog()
    t0 = time.perf_counter()
    for f in cat:
        if f.is_numeric and f.name in df:
            v = df[f.name].to_numpy(dtype="float64")
            _ = (v < f.range[0]) | (v > f.range[1]) | ~np.isfinite(v)
    floor = time.perf_counter() - t0

    assert len(res.valid) + res.n_rejected == args.n
    assert set(res.rejected_rows) == set(df.index[bad])
    print(f"rows: {args.n:,}  bad rows: {bad.sum():,}  rejected: {res.n_rejected:,}")
    print(f"validate_frame: {ours:.2f} s  {args.n / ours:,.0f} rows/s")
    print(f"numpy range check only: {floor:.2f} s  {args.n / floor:,.0f} rows/s")
    print(f"ratio validate_frame / bare numpy: {ours / floor:.1f}x")


if __name__ == "__main__":
    main()

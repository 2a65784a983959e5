"""Batch scoring (issue 7): our end-to-end scoring vs raw xgboost, in one run.

Prints, on the same generated population cohort:

(a) raw ``Booster.inplace_predict`` on the already prepared matrix vs
    ``score_cohort(explain="none")`` (read -> validate -> features -> predict ->
    write) — aim <= 2x raw;
(b) ``explain="flagged"`` vs ``explain="none"`` — aim <= 1.3x;
(c) peak RSS of scoring 1M vs 5M rows, each in a fresh process — aim: within
    20% of each other (memory flat in input size);
(d) ``engine="dask"`` on a ``LocalCluster`` of 2 one-thread worker processes vs
    the local engine, on the same 2M rows side by side (``explain="flagged"``),
    with the same output checked;

with the rows/s of each. Machines are noisy: read the ratios.

    python benchmarks/bench_score.py               # (a)-(c) at 1M rows, (d) at 2M
    python benchmarks/bench_score.py --rows 200000 --big-rows 1000000   # quick
    python benchmarks/bench_score.py --only engines --rows 200000       # (d) only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from plo_risk.data.reference import reference_values
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import save_bundle
from plo_risk.model.calibration import recalibrate
from plo_risk.model.zoo import make_model
from plo_risk.serve import RiskModel
from plo_risk.serve.scoring import score_cohort

THRESHOLDS = {"moderate": 0.02, "high": 0.10}  # training/compare.yaml (assumption)
# Population PLO prevalence, data/synthetic/params.yaml (params sheet B, Kasahara 2024):
# a referral-trained model is moved to the population before scoring it.
POPULATION_PREVALENCE = 4.6e-4


def _write_cohort(path: Path, rows: int, *, seed: int, block: int = 1_000_000) -> None:
    """A population cohort written block by block (memory flat while writing)."""
    writer = None
    done = 0
    while done < rows:
        n = min(block, rows - done)
        df = generate_cohort(n, setting="population", seed=seed + done)
        df["patient_id"] = [f"Q{done + i:08d}" for i in range(n)]
        table = pa.Table.from_pandas(df, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=100_000)
        done += n
    writer.close()


def _rss_child(bundle: Path, source: Path, out: Path) -> dict:
    code = f"""
import json, time
from plo_risk.serve.scoring import score_cohort
t0 = time.perf_counter()
s = score_cohort({str(bundle)!r}, {str(source)!r}, {str(out)!r}, resume=False)
# VmHWM is this process's own peak; ru_maxrss keeps the parent's peak across exec.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({{"rss_mib": int(hwm.split()[1]) / 1024,
                  "seconds": time.perf_counter() - t0, "rows": s.n_input}}))
"""
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _bench_engines(risk_model, tmp: Path, rows: int, repeats: int) -> None:
    """(d): the dask engine on 2 local worker processes vs the local engine."""
    from distributed import LocalCluster

    source = tmp / "engines.parquet"
    _write_cohort(source, rows, seed=13)
    # One OpenMP thread per worker: two workers on as many cores, not oversubscribed.
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"OMP_NUM_THREADS": "1"},
    ) as cluster:
        runs = {}

        def run(engine: str, **kw):
            runs[engine] = score_cohort(
                risk_model,
                source,
                tmp / f"engine-{engine}",
                resume=False,
                progress=False,
                engine=engine,
                **kw,
            )

        # The workers load the model once: a warm-up run, as a long job amortizes it.
        run("dask", scheduler=cluster.scheduler_address)
        dask = _best(lambda: run("dask", scheduler=cluster.scheduler_address), repeats)
        local = _best(lambda: run("local"), repeats)
    a, b = runs["local"], runs["dask"]
    same = (a.n_scored, a.n_rejected, a.mean_risk) == (
        b.n_scored,
        b.n_rejected,
        b.mean_risk,
    )
    print(f"engines on {rows:,} rows ({len(a.parts)} parts, explain=flagged):")
    print(f"  local engine:           {local:7.2f} s  {rows / local:12,.0f} rows/s")
    print(f"  dask, 2 local workers:  {dask:7.2f} s  {rows / dask:12,.0f} rows/s")
    print(
        f"(d) dask / local rows/s:   {local / dask:5.2f}x  "
        f"(same output: {'yes' if same else 'NO'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=None, help="default 1M for (a)-(c), 2M for (d)"
    )
    parser.add_argument("--big-rows", type=int, default=5_000_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("all", "engines"), default="all")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_score_"))

    valid = validate_frame(generate_cohort(args.train_rows, seed=1)).valid
    y = valid["fracture"].to_numpy()
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    model = make_model("xgboost", thresholds=THRESHOLDS).fit(X, y)
    model = recalibrate(model, prevalence=POPULATION_PREVALENCE)
    bundle = save_bundle(
        model,
        tmp / "bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X)},
    )
    risk_model = RiskModel.load(bundle)
    if args.only == "engines":
        _bench_engines(risk_model, tmp, args.rows or 2_000_000, args.repeats)
        return
    given = args.rows
    args.rows = given or 1_000_000

    source = tmp / "cohort.parquet"
    _write_cohort(source, args.rows, seed=7)
    print(
        f"cohort: {args.rows:,} population rows, {source.stat().st_size / 2**20:.0f} MiB"
    )

    # The prepared matrix for raw xgboost: validated, features built, float32.
    import pandas as pd

    frame = validate_frame(pd.read_parquet(source), unknown="ignore").valid
    Xp = frame.drop(columns=["patient_id", "fracture", "true_risk"])
    matrix = np.ascontiguousarray(
        risk_model.model.estimator_[:-1].transform(Xp).to_numpy(dtype=np.float32)
    )
    booster = risk_model.model.estimator_[-1].get_booster()
    del frame, Xp

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    raw = best(
        lambda: booster.inplace_predict(
            matrix, predict_type="margin", validate_features=False
        )
    )
    none = best(
        lambda: score_cohort(
            risk_model, source, tmp / "none", explain="none", resume=False
        )
    )
    flagged_summary = {}

    def run_flagged():
        flagged_summary["s"] = score_cohort(
            risk_model, source, tmp / "flagged", explain="flagged", resume=False
        )

    flagged = best(run_flagged)
    s = flagged_summary["s"]
    n = args.rows
    print(f"raw xgboost inplace_predict: {raw:7.2f} s  {n / raw:12,.0f} rows/s")
    print(f"score_cohort explain=none:   {none:7.2f} s  {n / none:12,.0f} rows/s")
    print(
        f"score_cohort explain=flagged:{flagged:7.2f} s  {n / flagged:12,.0f} rows/s"
        f"  ({s.n_flagged:,} flagged = {s.n_flagged / n:.1%})"
    )
    print(f"(a) end-to-end / raw:          {none / raw:5.2f}x  (aim <= 2)")
    print(f"(b) flagged / none:            {flagged / none:5.2f}x  (aim <= 1.3)")

    big = tmp / "big.parquet"
    _write_cohort(big, args.big_rows, seed=11)
    small_rss = _rss_child(bundle, source, tmp / "rss_small")
    big_rss = _rss_child(bundle, big, tmp / "rss_big")
    print(
        f"peak RSS {args.rows:,} rows: {small_rss['rss_mib']:.0f} MiB "
        f"({small_rss['rows'] / small_rss['seconds']:,.0f} rows/s)"
    )
    print(
        f"peak RSS {args.big_rows:,} rows: {big_rss['rss_mib']:.0f} MiB "
        f"({big_rss['rows'] / big_rss['seconds']:,.0f} rows/s)"
    )
    print(
        f"(c) peak RSS big / small:      {big_rss['rss_mib'] / small_rss['rss_mib']:5.2f}x"
        "  (aim within 1.2)"
    )
    _bench_engines(risk_model, tmp, given or 2_000_000, args.repeats)


if __name__ == "__main__":
    main()

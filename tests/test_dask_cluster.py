"""The dask engine on a real cluster: a ``dask scheduler`` and two ``dask worker``
processes, one worker killed with SIGKILL mid-run; nothing lost, nothing changed.

The run goes through the CLI (``plo-risk score --engine dask --scheduler ...``) in
its own process; its output is read back as a Parquet dataset, as a user would.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from plo_risk.data.synthetic import generate_cohort
from plo_risk.serve.scoring import score_cohort

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
N_ROWS = 20_000
CHUNK = 500  # 40 pieces: the run lasts a few seconds on two one-thread workers
CLI = "import sys; from plo_risk.cli import main; sys.argv[0] = 'plo-risk'; main()"


@dataclass
class Cluster:
    address: str
    workers: list[subprocess.Popen]
    logs: Path


def _env() -> dict[str, str]:
    # The processes import this checkout's plo_risk (tasks are pickled by
    # reference to plo_risk.serve.scoring), with one OpenMP thread each.
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
        "OMP_NUM_THREADS": "1",
    }


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own group: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    with_group = os.getpgid(proc.pid) == proc.pid
    kill = os.killpg if with_group else os.kill
    kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two one-thread workers (no nanny: the pid is the worker's),
    each its own process group, stopped by pid even when the test fails."""
    tmp = tmp_path_factory.mktemp("dask")
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        log = (tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            env=_env(),
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        procs.append(proc)
        return proc

    try:
        info = tmp / "scheduler.json"
        scheduler = start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        )
        deadline = time.monotonic() + 60
        while not info.exists():
            assert scheduler.poll() is None, _tail(tmp / "scheduler.log")
            assert time.monotonic() < deadline, "no scheduler in 60 s"
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written whole, but not atomically
        address = json.loads(info.read_text())["address"]
        workers = [
            start(
                f"worker{i}",
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--name",
                f"w{i}",
                "--death-timeout",
                "60",
                "--local-directory",
                str(tmp),
            )
            for i in range(2)
        ]
        with distributed.Client(address, timeout="20s") as client:
            client.wait_for_workers(2, timeout=60)
        yield Cluster(address, workers, tmp)
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _cohort(path: Path) -> pd.DataFrame:
    """A referral cohort (a share of it flagged and explained) with bad cells in
    1% of rows and ids that a careless reader would change (leading zeros,
    digits only, one missing)."""
    df = generate_cohort(N_ROWS, seed=51)
    rng = np.random.default_rng(52)
    df["patient_id"] = [f"{i:09d}" for i in range(N_ROWS)]
    df.loc[7, "patient_id"] = None
    bad = rng.choice(N_ROWS, size=N_ROWS // 100, replace=False)
    df["age_years"] = df["age_years"].astype(object)
    df.loc[bad, "age_years"] = "old"
    df["age_years"] = df["age_years"].astype(str)
    df.to_parquet(path, row_group_size=CHUNK)
    return df


def _ids(ids: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in ids]


@pytest.fixture(scope="module")
def killed_run(bundle_path, cluster, tmp_path_factory):
    """The CLI run on the cluster with worker 0 killed after the first part is
    written, and the local engine's run of the same input."""
    tmp = tmp_path_factory.mktemp("run")
    source = tmp / "cohort.parquet"
    df = _cohort(source)
    out = tmp / "scored"
    log = tmp / "cli.log"
    with log.open("wb") as f:
        cli = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLI,
                "score",
                "--model",
                str(bundle_path),
                "--input",
                str(source),
                "--out",
                str(out),
                "--engine",
                "dask",
                "--scheduler",
                cluster.address,
                "--chunk-rows",
                str(CHUNK),
            ],
            env=_env(),
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        t0 = time.monotonic()
        while not list(out.glob("part-*.parquet")):
            assert cli.poll() is None, _tail(log)
            assert time.monotonic() - t0 < 120, "no part written in 120 s"
            time.sleep(0.01)
        os.kill(cluster.workers[0].pid, signal.SIGKILL)
        t_kill = time.monotonic() - t0
        parts_at_kill = len(list(out.glob("part-*.parquet")))
        done_at_kill = (out / "_SUCCESS").exists()
        cluster.workers[0].wait(timeout=10)
        rc = cli.wait(timeout=180)
        seconds = time.monotonic() - t0
    finally:
        _stop(cli)
    assert rc == 0, _tail(log) + _tail(cluster.logs / "scheduler.log")
    local = score_cohort(bundle_path, source, tmp / "local", chunk_rows=CHUNK)
    return {
        "df": df,
        "out": out,
        "local": local,
        "parts_at_kill": parts_at_kill,
        "done_at_kill": done_at_kill,
        "t_kill": t_kill,
        "seconds": seconds,
        "cli_output": log.read_text(),
    }


def test_a_worker_killed_mid_run_loses_no_row_and_changes_no_value(killed_run, cluster):
    run = killed_run
    n_pieces = N_ROWS // CHUNK
    # The kill came mid-run: after the first part, well before the last.
    assert not run["done_at_kill"]
    assert 1 <= run["parts_at_kill"] < n_pieces // 2, run
    assert cluster.workers[0].returncode == -signal.SIGKILL
    with distributed.Client(cluster.address, timeout="20s") as client:
        assert len(client.scheduler_info()["workers"]) == 1
    # The kill lost work the scheduler then ran again on the other worker.
    log = (cluster.logs / "scheduler.log").read_text()
    assert "Remove worker" in log and "name: w0" in log
    print(
        f"killed w0 {run['t_kill']:.1f} s in, after {run['parts_at_kill']} of "
        f"{n_pieces} parts; run {run['seconds']:.1f} s; "
        f"{log.count('will be recomputed elsewhere')} recompute(s) logged"
    )

    out, df, local = run["out"], run["df"], run["local"]
    assert "20,000 rows" in run["cli_output"]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["n_input"] == N_ROWS
    assert manifest["n_scored"] + manifest["n_rejected"] == N_ROWS
    assert len(manifest["parts"]) == n_pieces
    assert (out / "_SUCCESS").exists()

    scored = ds.dataset(out, format="parquet").to_table().to_pandas()
    scored = scored.sort_values("row", ignore_index=True)
    rejects = ds.dataset(out / "_rejects", format="parquet").to_table().to_pandas()
    rejects = rejects.sort_values("row", kind="stable", ignore_index=True)
    # Every input row scored or rejected with a reason, never both.
    assert set(scored["row"]).isdisjoint(rejects["row"])
    assert set(scored["row"]) | set(rejects["row"]) == set(range(N_ROWS))
    assert len(scored) == manifest["n_scored"] and scored["row"].is_unique
    assert rejects["reason"].str.len().gt(0).all()
    assert set(rejects["field"]) == {"age_years"}
    # Ids exactly as they went in.
    want = _ids(df["patient_id"])
    assert _ids(scored["patient_id"]) == [want[r] for r in scored["row"]]
    assert _ids(rejects["patient_id"]) == [want[r] for r in rejects["row"]]
    # The same rows and values as the local engine.
    pd.testing.assert_frame_equal(scored, local.read())
    pd.testing.assert_frame_equal(rejects, local.read(rejects=True))
    assert scored["category"].ne("low").sum() > 0  # some rows were explained


def test_the_output_is_one_parquet_dataset_by_folder_or_glob(killed_run):
    out = killed_run["out"]
    dataset = ds.dataset(out, format="parquet")
    files = sorted(glob.glob(str(out / "*.parquet")))
    assert sorted(dataset.files) == files and len(files) == N_ROWS // CHUNK
    assert dataset.count_rows() == killed_run["local"].n_scored
    # One schema in every part (types fixed, also of columns all null in a part).
    schemas = {ds.dataset(f, format="parquet").schema.remove_metadata() for f in files}
    assert len(schemas) == 1
    assert dataset.schema.field("patient_id").type == "string"


def test_duckdb_reads_the_same_glob(killed_run):
    duckdb = pytest.importorskip("duckdb")
    out = killed_run["out"]
    got = duckdb.sql(
        f"SELECT row, patient_id, risk, category FROM read_parquet('{out}/*.parquet')"
        " ORDER BY row"
    ).df()
    want = killed_run["local"].read()[["row", "patient_id", "risk", "category"]]
    assert got["row"].tolist() == want["row"].tolist()
    np.testing.assert_array_equal(got["risk"].to_numpy(), want["risk"].to_numpy())
    assert got["category"].tolist() == want["category"].tolist()
    assert _ids(got["patient_id"]) == _ids(want["patient_id"])
    rejected = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/_rejects/*.parquet')"
    ).fetchall()[0][0]
    assert rejected == killed_run["local"].n_rejected

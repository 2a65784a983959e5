"""Bounded local load on ``POST /api/assess`` of a real uvicorn process.

Starts ``python -m plo_risk.web`` on a free loopback port (inputs kept in the
audit log), sends ``--requests`` requests (default 2,000) from ``--concurrency``
threads (default 4), a mix of valid patients and malformed bodies (bad JSON,
wrong types, out-of-range and unknown fields, deep nesting, oversize bodies, the
wrong content type), and prints the status counts, p50/p99 latency and the ratio
of the valid requests' p50 to ``RiskModel.assess`` in-process on the same
patients (with and without ``to_dict()``, which the API returns). Then it checks
the server's audit log (``audit verify``) and recomputes every logged output
(``audit replay``). Exits 1 on any 5xx. Traffic goes only to 127.0.0.1.

    python benchmarks/bench_serve.py --requests 2000 --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from plo_risk.data.catalog import load_catalog
from plo_risk.data.reference import reference_values
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import save_bundle
from plo_risk.model.ensemble import fit_bootstrap_ensemble
from plo_risk.model.zoo import make_model
from plo_risk.serve import RiskModel
from plo_risk.web import replay, verify

JSON = {"content-type": "application/json"}
MALFORMED: list[tuple[bytes, dict[str, str]]] = [
    (b"not json", JSON),
    (b"[1, 2, 3]", JSON),
    (b'{"units": {}}', JSON),
    (b'{"record": {"age_years": 99, "parity": 1, "months_postpartum": 2}}', JSON),
    (b'{"record": {"age_years": "abc", "parity": 1.5, "months_postpartum": 40}}', JSON),
    (b'{"record": {"age_yeras": 35, "parity": 1, "months_postpartum": 2}}', JSON),
    (
        b'{"record": {"age_years": {"x": 1}, "parity": [1], "months_postpartum": 2}}',
        JSON,
    ),
    (b'{"record": {}, "units": {"vitamin_d_25oh": "furlongs"}}', JSON),
    (b'{"record": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", JSON),
    (b'{"record": {"ancestry": "' + b"x" * 70_000 + b'"}}', JSON),
    (b'{"record": {"age_years": 35}}', {"content-type": "text/plain"}),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(folder: Path, train_rows: int, members: int) -> Path:
    # Generator columns that are not model inputs (oracle, outcomes) are left out.
    cohort = generate_cohort(train_rows, setting="referral", seed=1)
    valid = validate_frame(cohort, unknown="ignore").valid
    y = valid["fracture"].to_numpy()
    X = valid[[c for c in valid.columns if c in load_catalog()]]
    model = make_model(
        "xgboost", params={"n_jobs": 1}, thresholds={"moderate": 0.02, "high": 0.10}
    ).fit(X, y)
    if members:
        fit_bootstrap_ensemble(model, X, y, n_models=members)
    return save_bundle(
        model,
        folder / "bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X)},
    )


def _patients(n: int) -> list[dict]:
    cols = set(load_catalog().names)
    df = generate_cohort(n, setting="referral", seed=7)
    out = []
    for row in df.to_dict(orient="records"):
        rec = {k: v for k, v in row.items() if k in cols and v == v and v is not None}
        out.append(json.loads(json.dumps(rec, default=float)))
    return out


def _start(bundle: Path, work: Path) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    log = work / "audit.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plo_risk.web",
            "--model",
            str(bundle),
            "--port",
            str(port),
            "--audit-log",
            str(log),
            "--keep-inputs",
            "--log-level",
            "warning",
        ],
        cwd=work,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc, base, log
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start") from None
            time.sleep(0.3)


def _pct(x, q) -> float:
    return float(np.percentile(np.asarray(x), q)) if len(x) else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--valid-share", type=float, default=0.5)
    parser.add_argument("--train-rows", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=5, help="interval ensemble")
    parser.add_argument("--timeout", type=float, default=600, help="whole run, s")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    bundle = _model(work, args.train_rows, args.members)
    n_valid = int(round(args.requests * args.valid_share))
    patients = _patients(n_valid)
    rng = np.random.default_rng(0)
    plan: list[tuple[str, bytes, dict]] = []
    for i in range(args.requests):
        plan.append(("valid", b"", {}) if i < n_valid else ("malformed", b"", {}))
    order = rng.permutation(args.requests)
    jobs = []
    v = m = 0
    for j in order:
        kind = plan[j][0]
        if kind == "valid":
            body = json.dumps({"record": patients[v]}).encode()
            jobs.append(("valid", body, JSON))
            v += 1
        else:
            body, headers = MALFORMED[m % len(MALFORMED)]
            jobs.append(("malformed", body, headers))
            m += 1

    proc, base, log = _start(bundle, work)
    local = threading.local()
    deadline = time.monotonic() + args.timeout

    def send(job):
        kind, body, headers = job
        if time.monotonic() > deadline:
            return kind, -1, 0.0
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, timeout=60)
        t0 = time.perf_counter()
        try:
            r = client.post("/api/assess", content=body, headers=headers)
            status = r.status_code
        except httpx.HTTPError:
            status = -1
        return kind, status, (time.perf_counter() - t0) * 1e3

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(send, jobs))
        wall = time.perf_counter() - t0
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)

    statuses = Counter(s for _, s, _ in results)
    ok_ms = [t for k, s, t in results if k == "valid" and s == 200]
    bad_ms = [t for k, s, t in results if k == "malformed"]
    all_ms = [t for _, s, t in results if s > 0]
    n5xx = sum(c for s, c in statuses.items() if s >= 500)
    failed = statuses.get(-1, 0)

    rm = RiskModel.load(bundle)
    for p in patients[:10]:
        rm.assess(p).to_dict()
    t_assess, t_dict = [], []
    for p in patients:
        t = time.perf_counter()
        a = rm.assess(p)
        t_assess.append((time.perf_counter() - t) * 1e3)
        a.to_dict()
        t_dict.append((time.perf_counter() - t) * 1e3)

    t = time.perf_counter()
    checked = verify(log)
    replayed = replay(log, rm)
    t_replay = time.perf_counter() - t

    print(
        f"requests {len(results)} ({n_valid} valid, {len(results) - n_valid} "
        f"malformed), {args.concurrency} concurrent, {wall:.1f} s, "
        f"{len(results) / wall:.0f} req/s"
    )
    print(
        "status counts: " + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items()))
    )
    print(f"5xx: {n5xx}; transport failures: {failed}")
    print(
        f"latency all        p50 {_pct(all_ms, 50):7.1f} ms  p99 {_pct(all_ms, 99):7.1f} ms"
    )
    print(
        f"latency valid 200  p50 {_pct(ok_ms, 50):7.1f} ms  p99 {_pct(ok_ms, 99):7.1f} ms"
    )
    print(
        f"latency malformed  p50 {_pct(bad_ms, 50):7.1f} ms  p99 {_pct(bad_ms, 99):7.1f} ms"
    )
    print(
        f"in-process assess            p50 {_pct(t_assess, 50):6.1f} ms  "
        f"p99 {_pct(t_assess, 99):6.1f} ms"
    )
    print(
        f"in-process assess + to_dict  p50 {_pct(t_dict, 50):6.1f} ms  "
        f"p99 {_pct(t_dict, 99):6.1f} ms"
    )
    print(
        f"ratio API valid p50 / in-process assess+to_dict p50: "
        f"{_pct(ok_ms, 50) / _pct(t_dict, 50):.2f}x; / assess alone: "
        f"{_pct(ok_ms, 50) / _pct(t_assess, 50):.2f}x"
    )
    print(f"audit verify: {checked}")
    print(
        f"audit replay: {replayed} in {t_replay:.1f} s"
        + ("" if replayed.ok else f"; first: {replayed.differences[0]}")
    )
    return 1 if n5xx or failed or not checked.ok or not replayed.ok else 0


if __name__ == "__main__":
    sys.exit(main())

"""Count what the hostile corpus does to a checkout of plo_risk (before/after figures).

    python benchmarks/hostile_counts.py                 # this checkout
    PYTHONPATH=/path/to/old/checkout python benchmarks/hostile_counts.py

For every file of ``tests/data/hostile/`` (CSV and Parquet scored, patient files
assessed, mappings ingested) and a set of forged bundles, prints one line per input
kind: cases, results, the package's own errors, foreign exceptions (a traceback
from pandas, pyarrow, json, yaml or Python itself), hangs (over 60 s), rows lost
(neither scored nor rejected) and forged bundles that loaded. Works against older
checkouts (it only uses the public API of the first wave).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "hostile"
LIMIT = 60.0
COLUMNS = (
    "ok",
    "own",
    "foreign",
    "hang",
    "rows lost",
    "forged loaded",
    "code executed",
)


def _run(fn, *args, **kwargs):
    box = {}

    def go():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - counted
            box["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(LIMIT)
    if t.is_alive():
        return "hang", None
    if "error" in box:
        own = type(box["error"]).__module__.split(".")[0] == "plo_risk"
        return ("own" if own else "foreign"), box["error"]
    return "ok", box.get("result")


def _rows_lost(summary, expected: int) -> int:
    import pyarrow.parquet as pq

    rows = set()
    for part in list(summary.parts) + list(summary.rejects):
        rows |= set(pq.read_table(part, columns=["row"]).column("row").to_pylist())
    return len(set(range(expected)) - rows)


def main() -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    from plo_risk import RiskModel, score_cohort
    from plo_risk.data.schema import validate_frame
    from plo_risk.data.synthetic import generate_cohort
    from plo_risk.model.bundle import save_bundle
    from plo_risk.model.zoo import make_model
    from plo_risk.registry import ingest

    tmp = Path(tempfile.mkdtemp(prefix="hostile-"))
    valid = validate_frame(generate_cohort(2000, seed=91)).valid
    X = valid.drop(columns=["patient_id", "fracture", "true_risk"])
    fitted = make_model(
        "xgboost",
        params={"n_estimators": 20},
        cv=3,
        thresholds={"moderate": 0.02, "high": 0.10},
    ).fit(X, valid["fracture"].to_numpy())
    bundle = save_bundle(fitted, tmp / "bundle", model_name="xgboost")
    model = RiskModel.load(bundle)
    counts: dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter
    )

    for i, path in enumerate(sorted((CORPUS / "csv").iterdir())):
        kind, result = _run(
            score_cohort,
            model,
            path,
            tmp / f"c{i}",
            chunk_rows=3,
            progress=False,
            unknown_columns="ignore",
        )
        counts["csv"][kind] += 1
        if kind == "ok":
            lines = path.read_bytes().split(b"\n")[1:]
            n = sum(1 for line in lines if line not in (b"", b"\r"))
            counts["csv"]["rows lost"] += _rows_lost(result, n)
    for i, path in enumerate(sorted((CORPUS / "parquet").iterdir())):
        kind, result = _run(
            score_cohort, model, path, tmp / f"p{i}", chunk_rows=3, progress=False
        )
        counts["parquet"][kind] += 1
        if kind == "ok":
            n = pq.ParquetFile(path).metadata.num_rows
            counts["parquet"]["rows lost"] += _rows_lost(result, n)
    for path in sorted((CORPUS / "patient").iterdir()):

        def assess(p=path):
            try:
                from plo_risk.data.patient_file import read_patient_file

                record = read_patient_file(p)
            except ImportError:  # the first wave read the file with json
                record = json.loads(p.read_text())
            return model.assess(record)

        counts["patient.json"][_run(assess)[0]] += 1
    frame = pd.DataFrame({"Age": [31.0], "Parity": [1], "PP": [3.0]})
    cwd = os.getcwd()
    os.chdir(tmp)
    for path in sorted((CORPUS / "mapping").iterdir()):
        counts["mapping"][_run(ingest, frame, path)[0]] += 1
    counts["mapping"]["code executed"] += int((tmp / "plo-risk-pwned").exists())
    os.chdir(cwd)

    def reseal(b: Path) -> None:
        from plo_risk.model.bundle import _canonical

        m = json.loads((b / "manifest.json").read_text())
        m.pop("manifest_sha256", None)
        m["files"] = {
            n: hashlib.sha256((b / n).read_bytes()).hexdigest()
            for n in m.get("files", {})
            if (b / n).is_file()
        }
        m["manifest_sha256"] = hashlib.sha256(_canonical(m)).hexdigest()
        (b / "manifest.json").write_bytes(_canonical(m))

    public = None
    try:  # signatures exist from issue 15 on
        from plo_risk import generate_signing_key, sign_bundle

        public = generate_signing_key(tmp / "signing.key")
        signed = tmp / "signed"
        shutil.copytree(bundle, signed)
        sign_bundle(signed, tmp / "signing.key")
    except ImportError:
        signed = None

    def forge(name: str, change, source=None, key=None) -> None:
        b = tmp / f"forged-{name}"
        shutil.copytree(source or bundle, b)
        change(b)
        kind, _ = _run(RiskModel.load, b, **({"public_key": key} if key else {}))
        counts["bundle"][kind] += 1
        counts["bundle"]["forged loaded"] += kind == "ok"

    def manifest_edit(fn):
        def change(b):
            m = json.loads((b / "manifest.json").read_text())
            fn(m)
            (b / "manifest.json").write_text(json.dumps(m))
            reseal(b)

        return change

    forge("slope-0", manifest_edit(lambda m: m["calibration"].update(slope=0.0)))
    forge(
        "thresholds",
        manifest_edit(lambda m: m.update(thresholds={"moderate": 0.98, "high": 0.99})),
    )
    forge(
        "prevalence", manifest_edit(lambda m: m["calibration"].update(prevalence=1.5))
    )
    forge("outside", manifest_edit(lambda m: m.update(model_file="/etc/passwd")))
    forge(
        "deep-features",
        lambda b: (
            (b / "features.json").write_text(
                '{"steps": ' + "[" * 50_000 + "]" * 50_000 + "}"
            ),
            reseal(b),
        ),
    )
    forge("fifo", lambda b: ((b / "model.json").unlink(), os.mkfifo(b / "model.json")))
    forge(
        "latin1", lambda b: (b / "manifest.json").write_bytes(b'{"format": "caf\xe9"}')
    )
    forge("list", lambda b: (b / "manifest.json").write_text("[1]"))
    if signed is not None:  # the everyone-"low" forgery of a signed bundle
        forge(
            "signed-thresholds",
            manifest_edit(
                lambda m: m.update(thresholds={"moderate": 0.98, "high": 0.99})
            ),
            source=signed,
            key=public,
        )

    print(f"{'input':<14}" + "".join(f"{k:>15}" for k in COLUMNS))
    for name, c in counts.items():
        print(f"{name:<14}" + "".join(f"{c.get(k, 0):>15}" for k in COLUMNS))
    shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # a hung case's thread must not keep the process alive


if __name__ == "__main__":
    main()

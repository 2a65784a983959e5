"""Smoke test at the dependency floors: every direct dependency used the way the
package uses it, against the *installed* plo_risk.

``make lower-bounds`` (run by ``make test``) installs the package into
``.venv-floor`` with every dependency at the lower bound ``pyproject.toml`` declares
(``tests/lower_bounds/floors.py``) and runs this script, so a declared floor cannot
drift from what the code needs. It runs from any folder, writes only to a temporary
directory and exits non-zero on the first failure.

Usage: .venv-floor/bin/python tests/lower_bounds/smoke.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from importlib.metadata import version
from pathlib import Path

# One OpenMP/BLAS thread: on a 2-core machine with any other load, OpenMP spin-waits
# make HistGradientBoosting 50x slower (0.5 s -> 25 s per fit). Set before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PLO_RISK_SKIP_BROWSER", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
T0 = time.perf_counter()
STEP = {"name": "start"}


def step(name: str) -> None:
    STEP["name"] = name
    print(f"[{time.perf_counter() - T0:6.1f}s] {name}", flush=True)


def main(tmp: Path) -> None:
    import numpy as np
    import pandas as pd

    step("versions")
    for d in (
        "numpy",
        "pandas",
        "pyarrow",
        "scikit-learn",
        "scipy",
        "xgboost-cpu",
        "shap",
        "mlflow",
        "pydantic",
        "pandera",
        "PyYAML",
        "typer",
        "click",
        "rich",
        "SQLAlchemy",
        "duckdb",
        "duckdb_engine",
        "openpyxl",
        "matplotlib",
        "skops",
        "scikit-survival",
        "threadpoolctl",
    ):
        try:
            print(f"    {d}=={version(d)}")
        except Exception:  # noqa: BLE001
            print(f"    {d}: not installed")

    step("import plo_risk (catalog, pydantic models, pyyaml)")
    import plo_risk
    from plo_risk import (
        RiskModel,
        ValidationError,
        compare,
        generate_cohort,
        make_model,
        score_cohort,
        validate_frame,
        validate_record,
    )

    step("generate_cohort(2000, seed=1) + validate_frame (pandera)")
    cohort = generate_cohort(2000, seed=1)
    assert len(cohort) == 2000 and "fracture" in cohort
    res = validate_frame(cohort)
    X = res.valid
    y = X["fracture"].astype(int)
    assert len(X) == 2000, (len(X), res.n_rejected)
    bad = validate_frame(
        pd.DataFrame(
            {
                "age_years": [31, 29, "?"],
                "parity": [1, 2, 1],
                "months_postpartum": [2, 40, 5],
            }
        )
    )
    assert len(bad.valid) == 1 and bad.n_rejected == 2, bad.rejects
    assert list(bad.rejects["field"]) == ["months_postpartum", "age_years"], bad.rejects
    rec = validate_record(
        {
            "age_years": 33,
            "parity": 2,
            "months_postpartum": 3,
            "lactation_months": 3,
            "vitamin_d_25oh": 45,
            "bmd_lumbar_spine": 0.852,
        },
        units={"vitamin_d_25oh": "nmol/L"},
    )
    assert round(rec["vitamin_d_25oh"], 1) == 18.0, rec
    try:
        validate_record(
            {
                "age_years": 33,
                "parity": 2,
                "months_postpartum": 3,
                "lactation_months": -3,
                "smokng": "yes",
            }
        )
    except ValidationError as exc:
        assert "smoking" in str(exc) and "lactation_months" in str(exc), str(exc)
    else:
        raise AssertionError("validate_record accepted a bad record")

    from plo_risk.explain import contributions
    from plo_risk.model import load_bundle, save_bundle

    small = {
        "xgboost": {"n_estimators": 20, "n_jobs": 1},
        "hist_gradient_boosting": {"max_iter": 20},
        "logistic_regression": {},
        "clinical_rule": {},
    }
    fitted = {}
    for name, params in small.items():
        step(f"make_model({name!r}).fit + bundle round trip + contributions")
        model = make_model(name, params=params, cv=2).fit(X, y)
        p = model.predict_proba(X)[:, 1]
        assert np.all((p > 0) & (p < 1)), name
        path = save_bundle(model, tmp / "bundles" / name, model_name=name)
        family = __import__("json").loads((path / "manifest.json").read_text())[
            "family"
        ]
        assert family == name, (name, family)
        loaded, info = load_bundle(path)
        p2 = loaded.predict_proba(X)[:, 1]
        np.testing.assert_allclose(p, p2, rtol=1e-6, atol=1e-9, err_msg=name)
        head = X.head(20)
        expl = contributions(loaded, head)
        assert np.allclose(expl.logit, loaded.decision_function(head), atol=1e-5), name
        assert expl.values.shape[0] == 20
        fitted[name] = loaded

    step("sign_bundle + load_bundle(public_key=...) (cryptography Ed25519)")
    from plo_risk import generate_signing_key, sign_bundle

    public = generate_signing_key(tmp / "signing.key")
    sign_bundle(tmp / "bundles" / "clinical_rule", tmp / "signing.key")
    load_bundle(tmp / "bundles" / "clinical_rule", public_key=public)

    step("compare (mlflow sqlite tracking, model registry, pyfunc models-from-code)")
    uri = f"sqlite:///{tmp}/mlflow.db"
    result = compare(
        {
            "name": "smoke",
            "seed": 1,
            "data": {
                "train": {"source": "synthetic", "n": 2000, "seed": 1},
                "test": {"source": "synthetic", "n": 2000, "seed": 2},
            },
            "models": [
                {"name": "xgboost", "params": {"n_estimators": 20}},
                {"name": "clinical_rule"},
            ],
            "cv": {"folds": 2},
            "evaluation": {"n_boot": 10},
        },
        tracking_uri=uri,
    )
    assert list(result.leaderboard()["model"]) == ["xgboost", "clinical_rule"], (
        result.leaderboard()
    )
    assert result.champion == "xgboost", result.champion

    step("RiskModel.load('models:/plo-risk@champion') + assess")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    rm = RiskModel.load("models:/plo-risk@champion")
    a = rm.assess(
        {
            "age_years": 35,
            "parity": 3,
            "months_postpartum": 2,
            "lactation_months": 2,
            "breastfeeding_now": True,
            "vitamin_d_25oh": 30,
            "bmd_lumbar_spine": 687,
        },
        units={"vitamin_d_25oh": "nmol/L", "bmd_lumbar_spine": "mg/cm2"},
    )
    assert 0 < a.risk < 1 and a.category in ("low", "moderate", "high"), a
    assert a.factors[0].field in (
        "bmd_lumbar_spine",
        "t_lumbar_spine",
        "z_lumbar_spine",
    )
    lo, hi = a.interval
    assert lo <= a.risk <= hi, (lo, a.risk, hi)
    str(a), a.to_dict()
    a.what_if(breastfeeding_now=False)

    step("mlflow pyfunc load + predict (the logged model)")
    import mlflow.pyfunc

    pyf = mlflow.pyfunc.load_model("models:/plo-risk@champion")
    out = pyf.predict(
        generate_cohort(50, seed=9).drop(columns=["fracture", "true_risk"])
    )
    assert len(out) == 50 and out["risk"].between(0, 1).all(), out

    step("score_cohort on a CSV (pyarrow csv streaming, parquet parts)")
    generate_cohort(600, seed=5).to_csv(tmp / "cohort.csv", index=False)
    s = score_cohort(
        rm, tmp / "cohort.csv", tmp / "scored", chunk_rows=200, progress=False
    )
    assert s.n_input == s.n_scored + s.n_rejected == 600 and len(s.parts) == 3, s
    cols = s.read().columns[:5].tolist()
    assert cols == ["row", "patient_id", "risk", "category", "model_version"], cols
    generate_cohort(300, seed=6).to_parquet(tmp / "cohort.parquet")
    s2 = score_cohort(
        rm,
        tmp / "cohort.parquet",
        tmp / "scored_pq",
        chunk_rows=1000,
        explain="all",
        progress=False,
    )
    assert s2.n_input == 300, s2

    step("registry.ingest: DataFrame, CSV and Excel (openpyxl) extracts")
    from plo_risk import ingest

    extract = generate_cohort(500, style="registry", seed=1)
    r = ingest(extract)
    assert len(r.frame) > 0 and r.quality.duplicates["n_rows_removed"] > 0, r
    n_flat = len(r.frame)
    extract.to_csv(tmp / "extract.csv", index=False)
    assert len(ingest(tmp / "extract.csv").frame) == n_flat
    extract.to_excel(tmp / "extract.xlsx", index=False)
    assert len(ingest(tmp / "extract.xlsx").frame) == n_flat
    r.quality.to_html(tmp / "quality.html")
    assert (tmp / "quality.html").stat().st_size > 0

    step("OMOP round trip through duckdb (sqlalchemy + duckdb-engine)")
    from plo_risk.data.ingest import to_omop

    url = f"duckdb:///{tmp}/omop.duckdb"
    written = to_omop(generate_cohort(500, seed=1), url)
    assert written["person"] == 500, written
    back = ingest(url)
    assert len(back.frame) == 500, (len(back.frame), back.rejects.head())

    step("evaluate.survival at a horizon (scikit-survival AUC and Brier)")
    from plo_risk.evaluate import survival as sv

    rng = np.random.default_rng(1)
    rate = np.exp(rng.normal(-4.5, 0.8, 600))
    fracture, end = rng.exponential(1 / rate), rng.uniform(3, 36, 600)
    s_time, s_event = np.minimum(fracture, end), fracture <= end
    s_risk = {h: 1 - np.exp(-h * rate) for h in (6, 12)}
    assert 0 < sv.km_risk(s_time, s_event, 12) < 1
    auc = sv.time_dependent_auroc(s_time, s_event, s_risk[12], 12)
    assert 0.5 < auc < 1, auc
    auc_train = sv.time_dependent_auroc(
        s_time, s_event, s_risk[12], 12, train_time=s_time, train_event=s_event
    )
    assert auc_train == auc, (auc_train, auc)
    assert 0 < sv.brier_at(s_time, s_event, s_risk[12], 12) < 0.25
    ibs = sv.integrated_brier(
        s_time, s_event, np.column_stack([s_risk[6], s_risk[12]]), [6, 12]
    )
    assert 0 < ibs < 0.25, ibs
    cal = sv.horizon_calibration(s_time, s_event, s_risk[12], 12)
    assert 0.5 < cal["o_e"] < 1.5 and cal["ici"] < 0.1, cal
    sv.net_benefit_at(s_time, s_event, s_risk[12], 12, 0.1)
    table = sv.evaluate_horizons(s_time, s_event, s_risk, n_boot=5)
    assert table.shape == (18, 5) and table.estimate.notna().all(), table
    sub = sv.evaluate_horizon_subgroups(
        s_time, s_event, s_risk, {"half": np.arange(600) % 2}, n_boot=0
    )
    assert len(sub) == 36 and not sub.suppressed.any(), sub

    step("report.model_card -> html (matplotlib, shap beeswarm/waterfall)")
    from plo_risk import external_validation, model_card

    card = model_card(
        rm,
        generate_cohort(1000, seed=3),
        tmp / "card" / "model_card.html",
        n_boot=10,
        log_to_mlflow=False,
    )
    html = Path(card.path).read_text()
    assert "<html" in html.lower() and "data:image/png;base64" in html, "no plots"
    ext = external_validation(fitted["xgboost"], generate_cohort(1000, seed=4))
    str(ext)

    step("CLI: plo-risk --help, catalog, generate (typer + rich)")
    exe = Path(sys.executable).with_name("plo-risk")
    env = {**os.environ, "COLUMNS": "100"}
    for args in (
        ["--help"],
        ["catalog"],
        ["catalog", "--markdown"],
        ["generate", "--n", "100", "--seed", "1", "--out", str(tmp / "gen.parquet")],
    ):
        cp = subprocess.run(
            [str(exe), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            timeout=120,
        )
        assert cp.returncode == 0, (args, cp.stdout[-2000:], cp.stderr[-3000:])
    assert len(pd.read_parquet(tmp / "gen.parquet")) == 100
    cp = subprocess.run(
        [
            str(exe),
            "assess",
            "--model",
            "models:/plo-risk@champion",
            "--patient",
            str(tmp / "nope.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=120,
    )
    assert cp.returncode != 0 and "Traceback" not in cp.stderr, cp.stderr[-3000:]
    del os.environ["MLFLOW_TRACKING_URI"]
    print(f"    plo_risk {plo_risk.__version__}")


def _record_warnings() -> list:
    """Record the warnings the suite's pytest config turns into errors
    (pyproject: error::FutureWarning from anywhere; DeprecationWarning and UserWarning
    attributed to plo_risk.*). Reported, not fatal, unless LB_SMOKE_STRICT=1."""
    import warnings

    seen: list = []
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FutureWarning) or (
            issubclass(category, (DeprecationWarning, UserWarning))
            and f"{os.sep}plo_risk{os.sep}" in filename
        ):
            text = " ".join(str(message).split())
            seen.append(f"{category.__name__} at {filename}:{lineno}: {text}")
        original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("default", FutureWarning)
    warnings.filterwarnings("default", category=DeprecationWarning, module="plo_risk")
    return seen


if __name__ == "__main__":
    WARNED = _record_warnings()
    with tempfile.TemporaryDirectory(prefix="lb_smoke_") as d:
        try:
            main(Path(d))
        except BaseException:  # noqa: BLE001
            print(f"SMOKE FAILED at step: {STEP['name']}", file=sys.stderr)
            traceback.print_exc()
            sys.exit(1)
    for w in dict.fromkeys(WARNED):
        print(f"WARNING (would fail the pytest suite): {w}"[:400])
    if WARNED and os.environ.get("LB_SMOKE_STRICT") == "1":
        print("SMOKE FAILED: warnings the suite treats as errors (LB_SMOKE_STRICT=1)")
        sys.exit(2)
    print(f"SMOKE OK in {time.perf_counter() - T0:.1f}s")

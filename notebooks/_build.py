"""Write the worked-example notebooks from the cells below (outputs are not stored).

    python notebooks/_build.py

The test suite (tests/test_notebooks.py) executes every notebook and fails on any
error, and checks that the committed notebooks equal what this script writes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# Shared first cell: a small quick model, tracked in MLflow in the working folder.
SETUP_MODEL = """\
import os
import tempfile

from plo_risk import compare

# Where MLflow keeps runs and the registry: MLFLOW_TRACKING_URI if set, else a
# SQLite file in a fresh temporary folder (no server needed).
tracking = os.environ.get("MLFLOW_TRACKING_URI") or (
    f"sqlite:///{tempfile.mkdtemp()}/mlflow.db"
)
os.environ["MLFLOW_TRACKING_URI"] = tracking
result = compare({
    "name": "notebook", "seed": 1,
    "data": {"train": {"source": "synthetic", "n": 4000, "seed": 1},
             "test": {"source": "synthetic", "n": 4000, "seed": 2}},
    "models": [{"name": "xgboost", "params": {"n_estimators": 80}}],
    "thresholds": {"moderate": 0.02, "high": 0.10},
    "cv": {"folds": 3}, "evaluation": {"n_boot": 20},
}, tracking_uri=tracking)
result.champion"""

NOTEBOOKS = {
    "01_train_and_compare.ipynb": [
        new_markdown_cell(
            "# 01 — Train and compare models\n\n"
            "For data scientists: generate a synthetic referral cohort, compare "
            "xgboost with the scikit-learn comparators and the ISCD clinical rule in "
            "MLflow, and look at calibration and the champion. Sizes are small so "
            "the notebook runs in CI; `training/compare.yaml` is the full-size "
            "experiment."
        ),
        new_code_cell(
            "from plo_risk import generate_cohort, validate_frame\n\n"
            "cohort = generate_cohort(4000, setting='referral', seed=1)\n"
            "res = validate_frame(cohort)\n"
            "print(f'{res.n_input:,} rows, {res.n_rejected} rejected, '\n"
            "      f'{int(cohort.fracture.sum())} fractures')\n"
            "cohort[['age_years', 'parity', 'lactation_months', 'z_lumbar_spine', "
            "'fracture']].describe()"
        ),
        new_code_cell(
            "import os\nimport tempfile\n\nfrom plo_risk import compare\n\n"
            "tracking = os.environ.get('MLFLOW_TRACKING_URI') or (\n"
            "    f'sqlite:///{tempfile.mkdtemp()}/mlflow.db')\n"
            "experiment = {\n"
            "    'name': 'notebook-01', 'seed': 1,\n"
            "    'data': {'train': {'source': 'synthetic', 'n': 4000, 'seed': 1},\n"
            "             'test': {'source': 'synthetic', 'n': 4000, 'seed': 2}},\n"
            "    'models': [{'name': 'xgboost', 'params': {'n_estimators': 80}},\n"
            "               {'name': 'hist_gradient_boosting'},\n"
            "               {'name': 'logistic_regression'},\n"
            "               {'name': 'clinical_rule'}],\n"
            "    'thresholds': {'moderate': 0.02, 'high': 0.10},\n"
            "    'cv': {'folds': 3}, 'evaluation': {'n_boot': 50},\n"
            "}\n"
            "result = compare(experiment, tracking_uri=tracking)\n"
            "result.leaderboard()"
        ),
        new_code_cell(
            "print('champion:', result.champion, '-', result.reason)\n"
            "assert set(result.leaderboard()['model']) == {\n"
            "    'xgboost', 'hist_gradient_boosting', 'logistic_regression', "
            "'clinical_rule'}\n"
            "print('browse the runs with: mlflow ui --backend-store-uri', tracking)"
        ),
        new_markdown_cell(
            "Calibration and decision curve of the champion on the held-out cohort "
            "(the same numbers `compare` logged to MLflow)."
        ),
        new_code_cell(
            "from plo_risk import validate_frame\n"
            "from plo_risk.evaluate import calibration_slope_intercept, evaluate\n\n"
            "best = next(r for r in result.results if r.name == result.champion)\n"
            "test = validate_frame(generate_cohort(4000, seed=2)).valid\n"
            "X = test.drop(columns=['patient_id', 'fracture', 'true_risk'])\n"
            "p = best.model.predict_proba(X)[:, 1]\n"
            "print(calibration_slope_intercept(test.fracture, p))\n"
            "evaluate(test.fracture.to_numpy(), p, thresholds={'high': 0.10}, "
            "n_boot=50)"
        ),
    ],
    "02_clinician_api.ipynb": [
        new_markdown_cell(
            "# 02 — The clinician API\n\n"
            "One patient in, a calibrated and explained risk out: "
            "`RiskModel.load(...).assess(record)`. The first cell trains a small "
            "model and registers it as `models:/plo-risk@champion` so the notebook "
            "stands alone; in practice the champion comes from `plo-risk compare`."
        ),
        new_code_cell(SETUP_MODEL),
        new_code_cell(
            "from plo_risk import RiskModel\n\n"
            "model = RiskModel.load('models:/plo-risk@champion')\n"
            "# Mishra et al. 2024, Table 3 row 9 (Cerit et al. 2020): 35 years, third pregnancy, 2 months postpartum,\n"
            "# lumbar spine 0.687 g/cm2, total hip 0.815 g/cm2 (lactation assumed).\n"
            "patient = {'age_years': 35, 'parity': 3, 'months_postpartum': 2,\n"
            "           'lactation_months': 2, 'breastfeeding_now': True,\n"
            "           'bmd_lumbar_spine': 0.687, 'bmd_total_hip': 0.815,\n"
            "           'vitamin_d_25oh': 30}\n"
            "a = model.assess(patient, units={'vitamin_d_25oh': 'nmol/L'})\n"
            "print(a)"
        ),
        new_code_cell("a  # renders as a table in a notebook"),
        new_code_cell(
            "for f in a.top_factors(3):\n"
            "    print(f.describe())\n"
            "print('next to measure:', a.missing[0].describe())\n"
            "for c in a.considerations:\n"
            "    print('-', c.topic, '(', c.source, ')')"
        ),
        new_code_cell(
            "weaned = a.what_if(breastfeeding_now=False)\n"
            "print(f'risk now {a.risk:.3f}; if weaned {weaned.risk:.3f}')\n"
            "assert 0 < weaned.risk < 1"
        ),
        new_markdown_cell(
            "Bad input is refused with a message naming the field, the value and "
            "what is allowed:"
        ),
        new_code_cell(
            "from plo_risk import ValidationError\n\n"
            "try:\n"
            "    model.assess({**patient, 'lactation_months': -3, 'smokng': 'yes'})\n"
            "except ValidationError as exc:\n"
            "    print(exc)"
        ),
    ],
    "03_batch_scoring.ipynb": [
        new_markdown_cell(
            "# 03 — Batch scoring a cohort\n\n"
            "For pipelines: `score_cohort` streams a CSV or Parquet file in chunks, "
            "writes scored and rejected rows (nothing lost), explains the flagged "
            "rows, and resumes after a crash. The first cell registers a small model "
            "so the notebook stands alone."
        ),
        new_code_cell(SETUP_MODEL),
        new_code_cell(
            "import tempfile\nfrom pathlib import Path\n\n"
            "from plo_risk import generate_cohort\n\n"
            "work = Path(tempfile.mkdtemp())\n"
            "cohort = generate_cohort(20_000, setting='referral', seed=5)\n"
            "cohort['parity'] = cohort['parity'].astype(object)\n"
            "cohort.loc[[3, 70, 900], 'parity'] = 'two'         # bad type\n"
            "cohort.loc[[11, 5000], 'age_years'] = 212          # out of range\n"
            "cohort.to_csv(work / 'cohort.csv', index=False)"
        ),
        new_code_cell(
            "from plo_risk import score_cohort\n\n"
            "summary = score_cohort('models:/plo-risk@champion', work / 'cohort.csv',\n"
            "                       work / 'scored', chunk_rows=5000)\n"
            "print(summary)\n"
            "assert summary.n_scored + summary.n_rejected == len(cohort)"
        ),
        new_code_cell(
            "scored = summary.read()\nscored[scored.category != 'low'].head()"
        ),
        new_code_cell(
            "summary.read(rejects=True)[['row', 'patient_id', 'field', 'value', 'reason']]"
        ),
        new_markdown_cell(
            "A rerun on the same folder skips the finished parts (after a crash it "
            "finishes the rest); another model or input on the same folder is "
            "refused rather than mixed."
        ),
        new_code_cell(
            "again = score_cohort('models:/plo-risk@champion', work / 'cohort.csv',\n"
            "                     work / 'scored', chunk_rows=5000)\n"
            "print('parts kept from the first run:', again.resumed_parts)\n"
            "assert again.resumed_parts == len(again.parts)"
        ),
        new_markdown_cell(
            "Beyond one machine: `score_cohort(..., engine='dask', "
            "scheduler='tcp://...')` runs the same per-chunk function on a "
            "`dask.distributed` cluster; Spark shops can use "
            "`mlflow.pyfunc.spark_udf` on the registered model (see the README)."
        ),
    ],
}


def build() -> dict[str, str]:
    """Notebook file name to its JSON text."""
    out = {}
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(
            cells=cells,
            metadata={
                "kernelspec": {
                    "display_name": "Python 3",
                    "language": "python",
                    "name": "python3",
                },
                "language_info": {"name": "python"},
            },
        )
        # Stable cell ids: the committed files are exactly what this script writes.
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"
        out[name] = nbformat.writes(nb) + "\n"
    return out


if __name__ == "__main__":
    for name, text in build().items():
        (HERE / name).write_text(text)
        print("wrote", HERE / name)

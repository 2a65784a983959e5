"""Outputs on fixed seeds stay the same across refactors.

A scored cohort (every model family, every row scored or rejected, top factors),
a ``compare`` leaderboard and the numbers of a model card, all from fixed seeds,
are compared with the values committed in ``tests/data/golden/``, which were
written by this module on the main branch before the layers were split (issue 13).
A change to these files is a change of behaviour: it belongs in a commit that
says which bug it fixes, and the diff shows which numbers moved.

Regenerate (only together with such a fix)::

    .venv/bin/python tests/test_outputs_unchanged.py --write
"""

from __future__ import annotations

import html
import json
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
THRESHOLDS = {"moderate": 0.02, "high": 0.10}
RTOL = 1e-9
EXPERIMENT = {
    "name": "golden",
    "seed": 3,
    "data": {
        "train": {"source": "synthetic", "n": 2500, "seed": 11},
        "test": {"source": "synthetic", "n": 1500, "seed": 12},
    },
    "models": [
        {"name": "xgboost", "params": {"n_estimators": 40, "n_jobs": 1}},
        {"name": "hist_gradient_boosting", "params": {"max_iter": 40}},
        {"name": "logistic_regression"},
        {"name": "clinical_rule"},
    ],
    "cv": {"folds": 3},
    "evaluation": {"n_boot": 20},
    "interval": {"n_models": 3},
    "thresholds": THRESHOLDS,
    "champion": {"register": False},
}


def _corrupted_cohort() -> pd.DataFrame:
    """600 population rows, a few of them bad in different ways."""
    from plo_risk.data.synthetic import generate_cohort

    df = generate_cohort(600, setting="population", seed=13)
    for col in ("parity", "age_years", "months_postpartum"):
        df[col] = df[col].astype(object)
    df.loc[3, "parity"] = "two"
    df.loc[10, "age_years"] = 212
    df.loc[42, "months_postpartum"] = None
    df.loc[77, "lactation_months"] = -3
    return df


def _produce() -> dict:
    """Every output the comparison covers, as plain data."""
    from plo_risk import compare, score_cohort
    from plo_risk.data.synthetic import generate_cohort
    from plo_risk.report import model_card
    from plo_risk.serve import RiskModel

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result = compare(EXPERIMENT, tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        board = result.leaderboard().drop(columns=["seconds", "run_id"])
        cohort = tmp / "cohort.csv"
        _corrupted_cohort().to_csv(cohort, index=False)
        scored, rejects = [], []
        for r in result.results:
            s = score_cohort(
                RiskModel(r.model),
                cohort,
                tmp / f"scored-{r.name}",
                chunk_rows=250,
                explain="all",
                progress=False,
            )
            scored.append(s.read().drop(columns=["model_version"]).assign(model=r.name))
            rejects.append(s.read(rejects=True).assign(model=r.name))
        xgb = next(r for r in result.results if r.name == "xgboost")
        card_path = tmp / "card.html"
        model_card(
            RiskModel(xgb.model),
            generate_cohort(1200, setting="referral", seed=14),
            card_path,
            n_boot=20,
            log_to_mlflow=False,
        )
        card = card_numbers(card_path.read_text(encoding="utf-8"))
    return {
        "leaderboard": board,
        "scored": pd.concat(scored, ignore_index=True),
        "rejects": pd.concat(rejects, ignore_index=True),
        "card": card,
    }


_NUMBER = re.compile(r"[-−+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?%?")


def card_numbers(text: str) -> dict[str, list[str]]:
    """The numbers of each card section, in reading order (plots and the
    generation time left out; the TRIPOD+AI checklist holds item ids, not numbers)."""
    text = re.sub(r'src="data:image/png;base64,[^"]*"', "", text)
    # dates and times (the card's, the model's creation) change every day
    text = re.sub(
        r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?(?: ?UTC|Z|[+-]\d\d:\d\d)?",
        "",
        text,
    )
    out = {}
    for anchor, body in re.findall(
        r'<section id="([\w-]+)">(.*?)</section>', text, flags=re.S
    ):
        if anchor == "tripod-ai":
            continue
        visible = html.unescape(re.sub(r"<[^>]+>", " ", body))
        out[anchor] = _NUMBER.findall(visible)
    return out


def _write(outputs: dict) -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    outputs["leaderboard"].to_csv(GOLDEN / "leaderboard.csv", index=False)
    outputs["scored"].to_csv(GOLDEN / "scored.csv", index=False, float_format="%.17g")
    outputs["rejects"].to_csv(GOLDEN / "rejects.csv", index=False)
    (GOLDEN / "card_numbers.json").write_text(
        json.dumps(outputs["card"], indent=1, sort_keys=True) + "\n"
    )


@pytest.fixture(scope="module")
def outputs() -> dict:
    return _produce()


def _assert_frames_equal(new: pd.DataFrame, golden_file: str) -> None:
    old = pd.read_csv(GOLDEN / golden_file)
    # Through the same CSV round trip as the golden file, so dtypes match.
    path = Path(tempfile.mkdtemp()) / golden_file
    new.to_csv(path, index=False, float_format="%.17g")
    new = pd.read_csv(path)
    assert list(new.columns) == list(old.columns)
    pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=RTOL, atol=1e-12)


def test_leaderboard_unchanged(outputs):
    _assert_frames_equal(outputs["leaderboard"], "leaderboard.csv")


def test_scored_cohort_unchanged(outputs):
    _assert_frames_equal(outputs["scored"], "scored.csv")


def test_rejects_unchanged(outputs):
    _assert_frames_equal(outputs["rejects"], "rejects.csv")


def test_model_card_numbers_unchanged(outputs):
    golden = json.loads((GOLDEN / "card_numbers.json").read_text())
    assert sorted(outputs["card"]) == sorted(golden)
    for section, numbers in golden.items():
        assert outputs["card"][section] == numbers, section


def test_every_row_is_scored_or_rejected(outputs):
    # The golden files themselves must describe a run that lost nothing.
    for model, scored in outputs["scored"].groupby("model"):
        rejected = outputs["rejects"].loc[outputs["rejects"]["model"] == model, "row"]
        rows = set(scored["row"]) | set(rejected)
        assert rows == set(range(600)), model
        assert not set(scored["row"]) & set(rejected), model


if __name__ == "__main__":  # pragma: no cover - regenerates the golden files
    if "--write" not in sys.argv:
        sys.exit("usage: python tests/test_outputs_unchanged.py --write")
    _write(_produce())
    print(f"wrote {GOLDEN}")

"""The literature check: the shipped table, the tolerance rule, the scorecard."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from plo_risk.data.literature import (
    DEFINITIONS,
    LiteratureError,
    Scorecard,
    check_statistics,
    default_literature_path,
    load_literature,
)
from plo_risk.data.references import cite_keys, load_references
from plo_risk.data.synthetic import episode_histories, reference_check

SHARED = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "plo_literature.yaml"
)


def test_shipped_table_is_the_published_one_with_keys():
    shipped = load_literature()
    assert len(shipped) == 13
    if SHARED.is_file():
        published = yaml.safe_load(SHARED.read_text())["statistics"]
        for a, b in zip(shipped, published, strict=True):
            # the same statistics; only the review's citation form differs
            # (cited by key, never by the shared folder's name)
            same = {k: v for k, v in b.items() if k != "source"}
            assert {k: a[k] for k in same} == same
            assert a["source"] == re.sub(
                r"seed Table 3 cohorts",
                "the cohorts of [@mishra2024, Table 3]",
                re.sub(r"^seed Table 3", "[@mishra2024, Table 3]", b["source"]),
            )
            assert "seed" not in a["source"]
    refs = load_references()
    for s in shipped:
        assert [k for k in cite_keys(s["cite"]) if k not in refs] == [], s["id"]
        assert s["id"] in DEFINITIONS


def test_generator_does_not_read_the_table():
    src = (default_literature_path().parent / "synthetic.py").read_text()
    episode = (default_literature_path().parent / "episode.py").read_text()
    assert "plo_literature" not in episode
    # synthetic.py only hands the table to the check, after the episodes exist.
    assert src.count("load_literature(") == 1


def _frames():
    episodes = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3", "P4"],
            "parity": [1, 2, 1, 1],
            "heparin": [False, True, False, False],
            "age_delivery": [30.0, 34.0, 28.0, 31.0],
            "lactation_total_months": [8.0, 0.0, 5.0, 6.0],
            "first_fracture_month": [1.0, -1.0, np.nan, 4.0],
            "z_lumbar_spine_at_first_fracture": [-3.0, -2.0, np.nan, -4.0],
            "n_fractures": [5, 1, 0, 3],
        }
    )
    events = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2", "P4"],
            "month": [1.0, 2.0, -1.0, 4.0],
            "site": ["vertebral", "vertebral", "hip", "other"],
        }
    )
    return episodes, events


def test_case_definitions_on_a_hand_made_cohort():
    episodes, events = _frames()
    card = check_statistics(episodes, events, load_literature())
    got = card.to_frame().set_index("id")["simulated"]
    assert got["incidence_claims"] == pytest.approx(2 / 4 * 1e6)  # P1, P2
    assert got["fracture_hospitalisation_2y"] == pytest.approx(2 / 4)  # P1, P4
    assert got["vertebral_share"] == pytest.approx(1 / 3)
    assert got["during_lactation_share"] == pytest.approx(2 / 3)  # P1 and P4
    assert got["third_trimester_share"] == pytest.approx(1 / 3)
    assert got["fractures_per_case"] == pytest.approx(3.0)
    assert got["five_or_more_share"] == pytest.approx(1 / 3)
    assert got["first_pregnancy_share"] == pytest.approx(2 / 3)
    assert got["age_at_fracture"] == pytest.approx(
        np.mean([30 + 1 / 12, 34 - 1 / 12, 31 + 4 / 12])
    )
    assert got["spine_t_at_diagnosis"] == pytest.approx(-3.0)
    assert got["heparin_exposed_share"] == pytest.approx(1 / 3)
    assert got["onset_near_delivery_share"] == pytest.approx(2 / 3)
    assert card.n_cases == 3 and card.n_episodes == 4


def test_tolerance_is_the_wilson_interval_widened_by_one_and_a_half():
    # 164/177 = 0.927: Wilson 95% 0.878 to 0.957 (Wilson 1927).
    stat = [s for s in load_literature() if s["id"] == "vertebral_share"]
    episodes, events = _frames()
    row = check_statistics(episodes, events, stat).rows[0]
    assert row.lower == pytest.approx(0.927 - 1.5 * (0.927 - 0.8782), abs=2e-3)
    assert row.upper == pytest.approx(0.927 + 1.5 * (0.9574 - 0.927), abs=2e-3)
    # A mean: value +- 1.5 x 1.96 SD / sqrt(n).
    stat = [s for s in load_literature() if s["id"] == "age_at_fracture"]
    row = check_statistics(episodes, events, stat).rows[0]
    half = 1.5 * 1.959964 * 5.0 / np.sqrt(177)
    assert (row.lower, row.upper) == pytest.approx((32 - half, 32 + half))
    assert row.z < 0 and row.passed  # 31.8 years: inside


def test_unknown_statistic_is_named():
    episodes, events = _frames()
    stats = [{**load_literature()[0], "id": "made_up"}]
    with pytest.raises(LiteratureError, match="no case definition for made_up"):
        check_statistics(episodes, events, stats)


def test_malformed_table_lists_every_problem(tmp_path):
    bad = tmp_path / "lit.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "statistics": [
                    {"id": "x", "kind": "mean", "value": 1},
                    {"id": "y", "kind": "odd"},
                ]
            }
        )
    )
    with pytest.raises(LiteratureError) as info:
        load_literature(bad)
    text = str(info.value)
    assert "x: missing 'sd'" in text and "y: kind='odd'" in text


def test_scorecard_prints_frames_and_escapes_html():
    episodes, events = _frames()
    card = check_statistics(episodes, events, load_literature())
    assert isinstance(card, Scorecard)
    text = str(card)
    assert "incidence_claims" in text and "within tolerance" in text
    frame = card.to_frame()
    assert list(frame.columns[:7]) == [
        "id",
        "published",
        "simulated",
        "lower",
        "upper",
        "z",
        "passed",
    ]
    html = card.to_html()
    assert html.startswith('<table class="reference-check">')
    assert "<script" not in html


def test_reference_check_runs_on_generated_episodes():
    h = episode_histories(200_000, seed=3)
    assert len(h.episodes) == 200_000
    assert set(h.events["site"]) <= {"vertebral", "hip", "other"}
    card = reference_check(h)
    assert len(card.rows) == 13
    frame = card.to_frame().set_index("id")
    # Structure, not the numbers of a small run: mostly vertebral, near delivery.
    assert frame.loc["vertebral_share", "simulated"] > 0.75
    assert frame.loc["onset_near_delivery_share", "simulated"] > 0.7
    assert frame.loc["spine_t_at_diagnosis", "simulated"] < -2.0

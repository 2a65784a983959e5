"""The horizon model against the generator's oracle: the numbers of issue 17.

Trains the horizon model as ``training/baseline.yaml`` does (referral cohort,
realistic missingness, optionally with a simulated trial), calibrates its
intervals on fresh generator cohorts, and prints, on held-out referral women:

1. the 90% interval's coverage of the true risk at 3, 6, 12 months and to 18
   months postpartum, overall and per tertile of the true risk, with the median
   width (2,000 women with every input observed);
2. calibration slope and calibration-in-the-large at 6 and 12 months (a held-out
   cohort with realistic missingness, observed outcomes);
3. the AUROC at 12 months against the oracle's, for a model trained with every
   input observed;
4. what-if against ``counterfactual_risk`` at 12 months: stop breastfeeding now,
   vitamin D to 35 ng/mL (women below 20), calcium to 1500 mg/day (below 800),
   stop smoking: the share whose direction agrees (a change under 2% relative is
   "no change" for both) and the median absolute error of the log risk ratio.

    python benchmarks/horizon_vs_oracle.py --train 20000 --trial 20000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.special import logit

from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import (
    counterfactual_risk,
    generate_cohort,
    oracle_risk,
    simulated_trial,
)
from plo_risk.evaluate.metrics import auroc, calibration_slope_intercept
from plo_risk.model.horizon import (
    END,
    HazardModel,
    follow_up,
    missing_group,
    model_inputs,
    simulate_interval,
)

ORACLE = {"3m": "true_risk_3m", "6m": "true_risk_6m", "12m": "true_risk_12m"}
NO_CHANGE = np.log(1.02)


def cohort(n: int, seed: int, missingness: str = "realistic"):
    df = generate_cohort(n, setting="referral", missingness=missingness, seed=seed)
    valid = validate_frame(df, unknown="ignore").valid
    rows = df.loc[valid.index]
    t, d = follow_up(rows)
    return model_inputs(valid), t, d, rows


def fit(n: int, trial_n: int, missingness: str, seed: int) -> HazardModel:
    X, t, d, _ = cohort(n, seed, missingness)
    changes = None
    if trial_n:
        trial = simulated_trial(trial_n, seed=seed + 1, missingness=missingness)
        valid = validate_frame(trial.frame, unknown="ignore").valid
        tt, td = follow_up(trial.frame.loc[valid.index])
        blank = pd.DataFrame(np.nan, index=range(len(X)), columns=trial.changes.columns)
        changes = pd.concat(
            [blank, trial.changes.loc[valid.index].reset_index(drop=True)],
            ignore_index=True,
        )
        X = pd.concat([X, model_inputs(valid)], ignore_index=True)
        t, d = np.r_[t, tt], np.r_[d, td]
    return HazardModel(random_state=0).fit(X, t, d, changes=changes)


def sign(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < NO_CHANGE, 0, np.sign(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=20_000)
    ap.add_argument("--trial", type=int, default=20_000)
    ap.add_argument("--held-out", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument(
        "--missingness",
        choices=("realistic", "none"),
        default="realistic",
        help="of the training cohort and the trial",
    )
    args = ap.parse_args()
    start = time.perf_counter()
    model = fit(args.train, args.trial, args.missingness, args.seed)
    interval = simulate_interval(model, n=20_000, seed=args.seed + 10)
    print(f"fitted in {time.perf_counter() - start:.0f} s: {model.interventions_}")

    X, _, _, rows = cohort(args.held_out, args.seed + 20, "none")
    risks = model.risk(X, [3, 6, 12, END])
    groups = missing_group(X)
    print("\n1. 90% interval vs the oracle (every input observed)")
    truths = {**{k: rows[v].to_numpy() for k, v in ORACLE.items()}}
    truths["end"] = rows["true_risk"].to_numpy()
    for label, o in truths.items():
        lo, hi = interval.interval(risks[f"risk_{label}"].to_numpy(), label, groups)
        inside = (o >= lo) & (o <= hi)
        tert = pd.qcut(o, 3, labels=False)
        per = [inside[tert == i].mean() for i in range(3)]
        print(
            f"  {label:>4}: coverage {inside.mean():.3f}; by tertile of true risk "
            + ", ".join(f"{v:.3f}" for v in per)
            + f"; median width {np.median(hi - lo):.4f}"
        )

    print("\n2. calibration on a held-out referral cohort (realistic missingness)")
    Xc, tc, dc, _ = cohort(40_000, args.seed + 30)
    rc = model.risk(Xc, [6, 12])
    for h in (6, 12):
        y = ((dc == 1) & (tc <= h)).astype(int)
        p = rc[f"risk_{h}m"].to_numpy()
        slope, _ = calibration_slope_intercept(y, p)
        print(
            f"  {h:>2} months: slope {slope:.3f}, "
            f"calibration-in-the-large {logit(y.mean()) - logit(p.mean()):+.3f}"
        )

    print("\n3. AUROC at 12 months, every input observed")
    complete = fit(args.train, 0, "none", args.seed + 40)
    Xa, ta, da, ra = cohort(10_000, args.seed + 50, "none")
    y = ((da == 1) & (ta <= 12)).astype(int)
    m_auc = auroc(y, complete.risk(Xa, [12])["risk_12m"])
    o_auc = auroc(y, ra["true_risk_12m"])
    print(f"  model {m_auc:.4f}, oracle {o_auc:.4f}, gap {o_auc - m_auc:.4f}")

    print("\n4. what-if at 12 months against counterfactual_risk")
    feeding = rows["breastfeeding_now"].astype(bool) & (rows["months_postpartum"] > 0)
    cases = [
        ("stop breastfeeding", {"breastfeeding_now": False}, feeding),
        ("vitamin D 35", {"vitamin_d_25oh": 35.0}, rows["vitamin_d_25oh"] < 20),
        (
            "calcium 1500",
            {"calcium_intake_mg_day": 1500.0},
            rows["calcium_intake_mg_day"] < 800,
        ),
        ("stop smoking", {"smoking": False}, rows["smoking"].astype(bool)),
    ]
    for name, change, mask in cases:
        sel = mask.to_numpy()
        sub, raw = X[sel], rows[sel]
        truth = np.log(
            np.clip(counterfactual_risk(raw, change, 12.0).to_numpy(), 1e-12, 1)
            / np.clip(oracle_risk(raw, 12.0).to_numpy(), 1e-12, 1)
        )
        course = {k: (0.0 if isinstance(v, bool) else v) for k, v in change.items()}
        factual = model.risk(sub, [12])["risk_12m"].to_numpy()
        changed = model.risk(sub, [12], changes=course)["risk_12m"].to_numpy()
        claim = np.log(changed / factual)
        print(
            f"  {name:>18} (n={sel.sum()}): true RR {np.exp(np.median(truth)):.3f}, "
            f"model {np.exp(np.median(claim)):.3f}; direction agrees "
            f"{np.mean(sign(truth) == sign(claim)):.3f}; median |log RR error| "
            f"{np.median(np.abs(truth - claim)):.3f}"
        )


if __name__ == "__main__":
    main()

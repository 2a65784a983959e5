"""The ``plo-risk`` command line.

Each verb maps one to one onto a Python function of the package; the CLI adds no
knobs of its own. It owns the terminal: library code never prints.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Fracture risk in pregnancy- and lactation-associated osteoporosis (PLO): "
    "synthetic cohorts, validation and the feature catalog.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# In pipes and CI logs there is no terminal width to fit; use a wide one so tables
# keep their numbers instead of truncating them.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _step(text: str, quiet: bool):
    """A spinner with elapsed time on a terminal; silent in CI and pipes."""
    start = time.perf_counter()
    if quiet or not console.is_terminal:
        yield
    else:
        with console.status(text):
            yield
    if not quiet:
        console.print(f"[green]✓[/] {text} ({time.perf_counter() - start:.1f} s)")


def _write_frame(df, out: Path) -> None:
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    if suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    elif suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        _fail(f"--out {out}: the file name must end in .csv or .parquet")
    tmp.replace(out)  # never leave a half-written file under the final name


@app.command()
def catalog(
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown", help="Print the Markdown of features/README.md instead."
        ),
    ] = False,
) -> None:
    """Show the feature catalog: every input field, its unit, range and source."""
    from plo_risk.catalog import catalog_markdown, load_catalog

    cat = load_catalog()
    if markdown:
        sys.stdout.write(catalog_markdown(cat))
        return
    table = Table(title=f"plo_risk feature catalog ({len(cat)} fields)")
    for col in ("field", "group", "unit", "range / values", "required", "direction"):
        table.add_column(col)
    for f in cat:
        table.add_row(
            f.name,
            f.group,
            f.unit,
            f.values_text(),
            "no" if f.missing else "yes",
            f.direction,
        )
    console.print(table)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Output file, .csv or .parquet.")],
    n: Annotated[
        int, typer.Option(help="Number of pregnancy episodes (rows).")
    ] = 10_000,
    setting: Annotated[
        str,
        typer.Option(help="'referral' (enriched) or 'population' (real prevalence)."),
    ] = "referral",
    prevalence: Annotated[
        float | None,
        typer.Option(
            help="Target fracture prevalence; default depends on the setting."
        ),
    ] = None,
    style: Annotated[
        str,
        typer.Option(
            help="'clean' (catalog columns) or 'registry' (a messy registry extract)."
        ),
    ] = "clean",
    missingness: Annotated[
        str, typer.Option(help="'realistic' or 'none' (every input observed).")
    ] = "realistic",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same cohort.")] = 0,
    params: Annotated[
        Path | None,
        typer.Option(
            help="Another generator parameter file (default: the shipped params.yaml)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Generate a synthetic PLO cohort with its ground-truth risk (the oracle)."""
    from plo_risk.synthetic import generate_cohort

    if out.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"--out {out}: the file name must end in .csv or .parquet")
    try:
        with _step(f"generating {n:,} {setting} rows ({style})", quiet):
            df = generate_cohort(
                n,
                setting=setting,
                prevalence=prevalence,
                style=style,
                missingness=missingness,
                seed=seed,
                params=params,
            )
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    with _step(f"writing {out}", quiet):
        _write_frame(df, out)
    if not quiet:
        if "fracture" in df:
            console.print(
                f"{len(df):,} rows, {int(df['fracture'].sum()):,} fractures → {out}"
            )
        else:
            console.print(f"{len(df):,} rows → {out}")


def _leaderboard_table(result) -> Table:
    board = result.leaderboard()
    metric = result.experiment.champion_metric
    table = Table(
        title=f"{result.experiment.name}: {len(board)} model(s), "
        f"{result.n_train:,} training / {result.n_test:,} held-out rows"
    )
    for col in (
        "model",
        "AUROC",
        "AUPRC",
        "Brier",
        "cal. slope",
        "cal. intercept",
        "ICI",
        "net benefit @high",
        "s",
    ):
        table.add_column(
            col, justify="left" if col == "model" else "right", no_wrap=col == "model"
        )

    def cell(row, name, digits=3):
        est, lo, hi = row.get(name), row.get(f"{name}_lower"), row.get(f"{name}_upper")
        if est is None or est != est:
            return "-"
        if lo is None or lo != lo:
            return f"{est:.{digits}f}"
        return f"{est:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"

    for _, row in board.iterrows():
        r = row.to_dict()
        name = r["model"] + (" ★" if r["model"] == result.champion else "")
        table.add_row(
            name,
            cell(r, "auroc"),
            cell(r, "auprc"),
            cell(r, "brier", 4),
            cell(r, "calibration_slope", 2),
            cell(r, "calibration_intercept", 2),
            cell(r, "ici", 4),
            cell(r, "net_benefit@high", 4),
            f"{r['seconds']:.0f}",
        )
    table.caption = f"95% bootstrap CIs; sorted by {metric}"
    return table


def _run_experiment(kind: str, config: Path, quiet: bool):
    from plo_risk import training

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    def progress(msg: str) -> None:
        if not quiet:
            console.print(f"[dim]…[/] {msg}")

    try:
        run = training.compare if kind == "compare" else training.train
        result = run(config, progress=progress)
    except (training.ConfigError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(_leaderboard_table(result))
    if result.champion:
        console.print(
            f"champion: [bold]{result.champion}[/] registered as "
            f"models:/{training.REGISTERED_NAME}@{training.CHAMPION_ALIAS} "
            f"(version {result.champion_version}) — {result.reason}",
            soft_wrap=True,
        )
    else:
        console.print(f"champion: {result.reason}", soft_wrap=True)
    uri = result.tracking_uri
    console.print(f"runs: {uri}", soft_wrap=True, highlight=False)
    console.print(
        f"open them with: mlflow ui --backend-store-uri {uri}",
        soft_wrap=True,
        highlight=False,
    )
    return result


@app.command()
def train(
    config: Annotated[
        Path, typer.Option(help="Experiment YAML (e.g. training/baseline.yaml).")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Train the experiment's model(s), evaluate them and log MLflow runs."""
    _run_experiment("train", config, quiet)


@app.command()
def compare(
    config: Annotated[
        Path, typer.Option(help="Experiment YAML (e.g. training/compare.yaml).")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Compare models in one MLflow run, print the leaderboard, promote a champion."""
    _run_experiment("compare", config, quiet)


@app.command()
def assess(
    patient: Annotated[
        Path,
        typer.Option(
            help='JSON file with one patient\'s fields; an optional "units" key maps '
            'fields to alternate units, e.g. {"vitamin_d_25oh": "nmol/L"}.'
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Bundle folder or MLflow URI.")
    ] = "models:/plo-risk@champion",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of text.")
    ] = False,
) -> None:
    """Explained fracture risk for one patient: risk, interval, reasons, next steps."""
    import json

    from plo_risk.assess import RiskModel
    from plo_risk.bundle import BundleError
    from plo_risk.schema import ValidationError

    try:
        record = json.loads(patient.read_text())
    except FileNotFoundError:
        _fail(f"--patient {patient}: no such file")
    except json.JSONDecodeError as exc:
        _fail(f"--patient {patient}: not valid JSON ({exc})")
    if not isinstance(record, dict):
        _fail(f"--patient {patient}: must hold one JSON object of field: value")
    units = record.pop("units", None)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        risk_model = RiskModel.load(model)
    except (BundleError, FileNotFoundError) as exc:
        _fail(f"--model {model}: {exc}")
    try:
        result = risk_model.assess(record, units=units)
    except ValidationError as exc:
        _fail(f"--patient {patient}: {exc}")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        console.print(str(result), soft_wrap=True, highlight=False)


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Folder for everything the demo writes.")
    ] = Path("plo-risk-demo"),
    n: Annotated[
        int,
        typer.Option(
            help="Rows of the synthetic referral cohorts (training and held-out)."
        ),
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Run every step that exists so far, end to end, and say where outputs are.

    Generates a synthetic referral cohort and validates it, compares the four
    models on it (tracked in a local MLflow), registers the champion and explains
    one patient with it.
    """
    from plo_risk import training
    from plo_risk.schema import validate_frame
    from plo_risk.synthetic import generate_cohort

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    with _step(f"generating a synthetic referral cohort of {n:,} rows", quiet):
        cohort = generate_cohort(n, setting="referral", seed=seed)
    path = out_dir / "cohort.parquet"
    _write_frame(cohort, path)
    outputs["synthetic cohort"] = str(path)

    with _step("validating it against the feature catalog", quiet):
        res = validate_frame(cohort)
    path = out_dir / "rejects.csv"
    _write_frame(res.rejects, path)
    outputs["rejected cells"] = str(path)
    if not quiet:
        console.print(
            f"  {res.n_input:,} rows: {len(res.valid):,} valid, "
            f"{res.n_rejected:,} rejected; {int(cohort['fracture'].sum()):,} "
            f"fractures (oracle mean risk {cohort['true_risk'].mean():.3f})"
        )

    uri = f"sqlite:///{(out_dir / 'mlflow.db').as_posix()}"
    exp = training.load_experiment(
        {
            "name": "demo",
            "seed": seed,
            "data": {
                "train": {
                    "source": "synthetic",
                    "n": n,
                    "setting": "referral",
                    "seed": seed,
                },
                "test": {
                    "source": "synthetic",
                    "n": n,
                    "setting": "referral",
                    "seed": seed + 1,
                },
            },
            "models": [
                {"name": m}
                for m in (
                    "xgboost",
                    "hist_gradient_boosting",
                    "logistic_regression",
                    "clinical_rule",
                )
            ],
            "evaluation": {"n_boot": 200},
            "mlflow": {"experiment": "plo-risk-demo"},
        }
    )
    with _step(
        "comparing xgboost, HistGradientBoosting, spline logistic "
        "regression and the clinical rule",
        quiet,
    ):
        result = training.compare(exp, tracking_uri=uri)
    console.print(_leaderboard_table(result))
    outputs["MLflow runs and registry"] = uri

    import json

    from plo_risk.assess import RiskModel

    # seed Table 3 row 9 (ref 12): 35 years, third pregnancy, 2 months postpartum,
    # lumbar spine 0.687 g/cm2, total femur 0.815 g/cm2; lactation assumed 2 months.
    patient = {
        "age_years": 35,
        "parity": 3,
        "months_postpartum": 2,
        "lactation_months": 2,
        "breastfeeding_now": True,
        "bmd_lumbar_spine": 0.687,
        "bmd_total_hip": 0.815,
    }
    os.environ["MLFLOW_TRACKING_URI"] = uri  # a location: the demo's own MLflow
    with _step("explaining one patient (seed Table 3 row 9) with the champion", quiet):
        champion = RiskModel.load(
            f"models:/{training.REGISTERED_NAME}@{training.CHAMPION_ALIAS}"
        )
        assessment = champion.assess(patient)
        path = out_dir / "assessment.json"
        path.write_text(json.dumps(assessment.to_dict(), indent=2))
    outputs["one patient's assessment"] = str(path)
    console.print(str(assessment), soft_wrap=True, highlight=False)
    outputs["champion"] = (
        f"models:/{training.REGISTERED_NAME}@"
        f"{training.CHAMPION_ALIAS} ({result.champion or 'kept'}, "
        f"version {result.champion_version})"
    )

    console.print("\n[bold]plo-risk demo: where everything is[/]")
    for name, where in outputs.items():
        console.print(f"  {name}: {where}", soft_wrap=True, highlight=False)
    console.print(
        f"  open the MLflow UI: mlflow ui --backend-store-uri {uri}",
        soft_wrap=True,
        highlight=False,
    )


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()

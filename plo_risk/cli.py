"""The ``plo-risk`` command line.

Each verb maps one to one onto a Python function of the package; the CLI adds no
knobs of its own. It owns the terminal: library code never prints.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from plo_risk import training
from plo_risk.data.catalog import catalog_markdown, load_catalog
from plo_risk.data.ingest import RegistryError
from plo_risk.data.ingest import ingest as run_ingest
from plo_risk.data.schema import ValidationError, validate_frame
from plo_risk.data.synthetic import generate_cohort, load_params
from plo_risk.evaluate.external import external_validation
from plo_risk.model.bundle import BundleError
from plo_risk.model.calibration import recalibrate
from plo_risk.report import SEED_CASE, metric_label, model_card
from plo_risk.serve.risk_model import RiskModel
from plo_risk.serve.scoring import ScoringError, score_cohort
from plo_risk.serve.tracking import CHAMPION_ALIAS, REGISTERED_NAME
from plo_risk.utils.atomic import atomic_path

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
    if suffix not in (".parquet", ".csv"):
        _fail(f"--out {out}: the file name must end in .csv or .parquet")
    with atomic_path(out) as tmp:  # never a half-written file under the final name
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


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


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Option(
            help="Registry extract (.csv, .parquet, .xlsx) or a database URL with "
            "OMOP CDM tables (e.g. duckdb:///registry.duckdb)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Validated cohort, .csv or .parquet.")],
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="Mapping YAML for a file (default: the shipped registry/mapping.yaml) "
            "or OMOP concept map for a URL (default: registry/omop_concepts.yaml)."
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write the data-quality report, .html or .json."),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Also write the rejected rows with reasons, .csv/.parquet."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Do not print the quality report.")
    ] = False,
) -> None:
    """Ingest a registry extract or an OMOP database into a validated cohort."""

    for name, path, allowed in (
        ("--out", out, (".csv", ".parquet")),
        ("--report", report, (".html", ".json")),
        ("--rejects", rejects, (".csv", ".parquet")),
    ):
        if path is not None and path.suffix.lower() not in allowed:
            _fail(f"{name} {path}: the file name must end in {' or '.join(allowed)}")
    try:
        with _step(f"ingesting {source}", quiet):
            result = run_ingest(source, mapping)
    except (RegistryError, ValidationError) as exc:
        _fail(str(exc))
    if not quiet:
        console.print(result.quality)
    if report is not None:
        if report.suffix.lower() == ".html":
            result.quality.to_html(report)
        else:
            result.quality.to_json(report)
    if rejects is not None:
        _write_frame(result.rejects, rejects)
    _write_frame(result.frame, out)
    if not quiet:
        console.print(
            f"{len(result.frame):,} rows → {out}"
            + (f"; {result.quality.n_rejected_rows:,} rejected" if rejects else "")
            + (f"; report → {report}" if report else ""),
            soft_wrap=True,
            highlight=False,
        )


def _leaderboard_table(result) -> Table:
    board = result.leaderboard()
    metric = result.experiment.champion.metric
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
            f"models:/{REGISTERED_NAME}@{CHAMPION_ALIAS} "
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

    try:
        record = json.loads(patient.read_text())
    except FileNotFoundError:
        _fail(f"--patient {patient}: no such file")
    except json.JSONDecodeError as exc:
        _fail(f"--patient {patient}: not valid JSON ({exc})")
    if not isinstance(record, dict):
        _fail(f"--patient {patient}: must hold one JSON object of field: value")
    units = record.pop("units", None)
    risk_model = _load_model_or_fail(model)
    try:
        result = risk_model.assess(record, units=units)
    except ValidationError as exc:
        _fail(f"--patient {patient}: {exc}")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        console.print(str(result), soft_wrap=True, highlight=False)


def _load_model_or_fail(model: str):

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return RiskModel.load(model)
    except (BundleError, FileNotFoundError) as exc:
        _fail(f"--model {model}: {exc}")


def _check_data_path(data: Path) -> None:
    if data.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"--data {data}: the file name must end in .csv or .parquet")
    if not data.is_file():
        _fail(f"--data {data}: no such file")


@app.command()
def report(
    data: Annotated[
        Path,
        typer.Option(
            help="Evaluation data (.csv or .parquet) with the observed outcome "
            "column 'fracture' (0/1)."
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Bundle folder or MLflow URI.")
    ] = "models:/plo-risk@champion",
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path(
        "report.html"
    ),
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap replicates of the confidence intervals.")
    ] = 200,
    mlflow_run_id: Annotated[
        str | None,
        typer.Option(
            help="Also log the card to this MLflow run (default: the model's own "
            "run when --model is an MLflow URI)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Write the model card: one self-contained HTML file with TRIPOD+AI items.

    Evaluates the model on --data (performance with CIs, calibration, ROC,
    decision curve, SHAP, subgroups, recalibration) and logs the card to the
    model's MLflow run when the model came from MLflow.
    """

    _check_data_path(data)
    risk_model = _load_model_or_fail(model)
    try:
        with _step(f"evaluating {model} on {data} and writing {out}", quiet):
            card = model_card(
                risk_model, data, out, n_boot=n_boot, mlflow_run_id=mlflow_run_id
            )
    except (ValueError, FileNotFoundError) as exc:
        _fail(f"--data {data}: {exc}")
    console.print(
        f"model card → {card.path} ({card.n:,} rows evaluated, {card.n_events:,} "
        f"fractures, {card.n_rejected:,} of {card.n_input:,} rows rejected by "
        "validation)",
        soft_wrap=True,
        highlight=False,
    )
    if card.mlflow_run_id:
        console.print(
            f"logged to MLflow run {card.mlflow_run_id} as model_card.html",
            soft_wrap=True,
            highlight=False,
        )


def _validation_table(result) -> Table:

    comp = result.comparison()
    table = Table(
        title=f"External validation on {result.description}: {result.n:,} rows, "
        f"{result.n_events:,} fractures ({result.n_rejected:,} rejected)"
    )
    table.add_column("measure")
    table.add_column("as trained", justify="right")
    table.add_column("intercept-recalibrated", justify="right")

    def cell(est, lo, hi):
        if est != est:
            return "-"
        digits = 4 if abs(est) < 0.1 and est != 0 else 3
        if lo != lo:
            return f"{est:.{digits}f}"
        return f"{est:.{digits}f} ({lo:.{digits}f} to {hi:.{digits}f})"

    for name, row in comp.iterrows():
        table.add_row(
            metric_label(str(name))[0],
            cell(row["estimate"], row["lower"], row["upper"]),
            cell(
                row["recalibrated"],
                row["recalibrated_lower"],
                row["recalibrated_upper"],
            ),
        )
    table.caption = "95% CIs (bootstrap; O/E: delta method)"
    return table


@app.command()
def validate(
    data: Annotated[
        Path,
        typer.Option(
            help="Validation data (.csv or .parquet) from another setting, with the "
            "observed outcome column 'fracture' (0/1)."
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Bundle folder or MLflow URI.")
    ] = "models:/plo-risk@champion",
    recalibrate: Annotated[
        bool,
        typer.Option(
            "--recalibrate",
            help="Save the intercept-recalibrated model as a bundle in --out.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the recalibrated bundle (with --recalibrate)."),
    ] = None,
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap replicates of the confidence intervals.")
    ] = 200,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Validate a model on data from another setting; offer intercept recalibration.

    Prints AUROC, Brier, calibration slope and intercept, O/E and ICI with CIs,
    as trained and after refitting the intercept to --data. With --recalibrate
    --out DIR the recalibrated model is saved as a bundle.
    """

    if recalibrate and out is None:
        _fail("--recalibrate needs --out DIR: the folder for the recalibrated bundle")
    if out is not None and not recalibrate:
        _fail("--out is the folder for the recalibrated bundle: add --recalibrate")
    if out is not None and out.exists():
        _fail(f"--out {out}: already exists; choose a new folder for the bundle")
    _check_data_path(data)
    risk_model = _load_model_or_fail(model)
    try:
        with _step(f"validating {model} on {data}", quiet):
            result = external_validation(risk_model, data, n_boot=n_boot)
    except (ValueError, FileNotFoundError) as exc:
        _fail(f"--data {data}: {exc}")
    console.print(_validation_table(result))
    shift = result.intercept_after - result.intercept_before
    console.print(
        f"calibration intercept {result.calibration_intercept:.2f} as trained; "
        "refitting the model's intercept to these data moves it from "
        f"{result.intercept_before:.4f} to {result.intercept_after:.4f} "
        f"(shift {shift:+.4f})",
        soft_wrap=True,
        highlight=False,
    )
    if not recalibrate:
        console.print(
            "to save the recalibrated model: add --recalibrate --out DIR",
            soft_wrap=True,
            highlight=False,
        )
        return
    saved = result.recalibrated.save(out)
    console.print(
        f"recalibrated model (new intercept {result.intercept_after:.4f}, version "
        f"{result.recalibrated.version}) → {saved}",
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def score(
    input: Annotated[
        Path,
        typer.Option(
            "--input", help="CSV or Parquet file, or a folder of Parquet files."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Output folder (part files, rejects, manifest)."),
    ],
    model: Annotated[
        str, typer.Option(help="Bundle folder or MLflow URI.")
    ] = "models:/plo-risk@champion",
    explain: Annotated[
        str,
        typer.Option(help="Top factors for: flagged (moderate/high) rows, all, none."),
    ] = "flagged",
    top_k: Annotated[int, typer.Option(help="Factors per explained row.")] = 3,
    chunk_rows: Annotated[
        int, typer.Option(help="Rows per chunk and part file.")
    ] = 100_000,
    engine: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address (tcp://...); default a LocalCluster."
        ),
    ] = None,
    unit: Annotated[
        list[str] | None,
        typer.Option(help="FIELD=UNIT for a column in an alternate unit; repeatable."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Skip parts a killed run of the same job finished.")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output.")] = False,
) -> None:
    """Score a whole cohort: every row scored or rejected with its reason; resumable."""

    units = {}
    for item in unit or []:
        field, sep, value = item.partition("=")
        if not sep or not field or not value:
            _fail(f"--unit {item!r}: use FIELD=UNIT, e.g. vitamin_d_25oh=nmol/L")
        units[field.strip()] = value.strip()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        summary = score_cohort(
            model,
            input,
            out,
            chunk_rows=chunk_rows,
            explain=explain,
            top_k=top_k,
            engine=engine,
            scheduler=scheduler,
            resume=resume,
            units=units or None,
            progress=False if quiet else None,
        )
    except (ScoringError, BundleError, FileNotFoundError) as exc:
        _fail(str(exc))
    if not quiet:
        console.print(str(summary), soft_wrap=True, highlight=False)
        if summary.resumed_parts:
            console.print(f"resumed: {summary.resumed_parts} finished part(s) kept")
        console.print(
            f"scored rows: {out}/part-*.parquet", soft_wrap=True, highlight=False
        )
        console.print(
            f"rejected rows with reasons: {out}/rejects/part-*.parquet",
            soft_wrap=True,
            highlight=False,
        )
        console.print(f"manifest: {summary.manifest}", soft_wrap=True, highlight=False)


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
    """The whole package end to end, and where every output is.

    Generates a synthetic referral cohort and validates it, compares the four
    models on it (tracked in a local MLflow), registers the champion, explains one
    patient, writes the model card, and scores a 100,000-row population cohort
    with some corrupted rows (scored or rejected with reasons, nothing lost).
    """

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

    patient = dict(SEED_CASE)  # seed Table 3 row 9 (ref 12)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # a location: the demo's own MLflow
    with _step("explaining one patient (seed Table 3 row 9) with the champion", quiet):
        champion = RiskModel.load(f"models:/{REGISTERED_NAME}@{CHAMPION_ALIAS}")
        assessment = champion.assess(patient)
        path = out_dir / "assessment.json"
        path.write_text(json.dumps(assessment.to_dict(), indent=2))
    outputs["one patient's assessment"] = str(path)
    console.print(str(assessment), soft_wrap=True, highlight=False)

    with _step("writing the model card (TRIPOD+AI) on the held-out cohort", quiet):
        held_out = generate_cohort(n, setting="referral", seed=seed + 1)
        card = model_card(champion, held_out, out_dir / "model_card.html")
    outputs["model card (HTML, also in the champion's MLflow run)"] = str(card.path)

    n_population = 100_000
    with _step(
        f"scoring a population cohort of {n_population:,} rows (0.5% corrupted)",
        quiet,
    ):
        population = _corrupted(
            generate_cohort(n_population, setting="population", seed=seed + 2),
            rate=0.005,
            seed=seed,
        )
        source = out_dir / "population_cohort.csv"
        _write_frame(population, source)
        # The champion learned referral risks; in the population the outcome is
        # rarer (params sheet B: 460 per 1,000,000 deliveries), so its intercept
        # moves to the population prevalence before scoring (prior shift).
        prevalence = load_params()["prevalence"]["population"]
        population_model = RiskModel(
            recalibrate(champion.model, prevalence=prevalence),
            champion.info,
            catalog=champion.catalog,
        )
        summary = score_cohort(
            population_model,
            source,
            out_dir / "scored",
            resume=False,
            progress=False,
        )
    if not quiet:
        console.print(f"  {summary}", soft_wrap=True, highlight=False)
        top = summary.read().nlargest(1, "risk").iloc[0]
        record = (
            population.loc[int(top["row"])]
            .drop(labels=["patient_id", "fracture", "true_risk"])
            .dropna()
            .to_dict()
        )
        highest = population_model.assess(record)
        factors = "; ".join(f.describe() for f in highest.top_factors(2))
        console.print(
            f"  highest risk in the population: {top['patient_id']} "
            f"{highest.risk:.2%} ({highest.category}); {factors}",
            soft_wrap=True,
            highlight=False,
        )
        console.print(
            f"  flagged (risk >= {min(champion.thresholds.values()):.0%}): "
            f"{summary.n_flagged:,} — at the population prevalence (460 per "
            "1,000,000 deliveries) few women reach the referral thresholds",
            soft_wrap=True,
            highlight=False,
        )
    outputs["population cohort (input)"] = str(source)
    outputs["scored population (risk, category, reasons)"] = (
        f"{summary.out_dir}/part-*.parquet"
    )
    outputs["rejected rows with reasons"] = f"{summary.out_dir}/rejects/part-*.parquet"
    outputs["champion"] = (
        f"models:/{REGISTERED_NAME}@"
        f"{CHAMPION_ALIAS} ({result.champion or 'kept'}, "
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


def _corrupted(df, *, rate: float, seed: int):
    """A copy with ``rate`` of rows broken as registries break them: a word for a
    number, an impossible age, a missing required value (for the demo's rejects)."""

    rng = np.random.default_rng(seed)
    df = df.copy()
    rows = rng.choice(len(df), size=int(len(df) * rate), replace=False)
    for col in ("parity", "age_years", "months_postpartum"):
        df[col] = df[col].astype(object)
    thirds = np.array_split(rows, 3)
    df.loc[df.index[thirds[0]], "parity"] = "two"
    df.loc[df.index[thirds[1]], "age_years"] = 212
    df.loc[df.index[thirds[2]], "months_postpartum"] = None
    return df


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()

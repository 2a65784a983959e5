"""The ``plo-risk`` command line.

Each verb maps one to one onto a Python function of the package; the CLI adds no
knobs of its own. It owns the terminal: library code never prints.

One vocabulary across verbs: ``--model`` (a bundle folder or an MLflow URI),
``--input`` (the data a verb reads), ``--out`` (what it writes: a file or a folder,
as each verb says), ``--unit FIELD=UNIT`` (a column in an alternate unit),
``--prevalence``/``--setting`` (move a model to another setting), ``--quiet``.
The first wave's names (``--source``, ``--data``, ``--out-dir``) still work.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from plo_risk import training, tuning, web
from plo_risk.data.catalog import catalog_markdown, load_catalog
from plo_risk.data.ingest import RegistryError
from plo_risk.data.ingest import ingest as run_ingest
from plo_risk.data.patient_file import PatientFileError, read_patient_file
from plo_risk.data.schema import ValidationError, validate_frame
from plo_risk.data.synthetic import (
    MISSINGNESS,
    STYLES,
    generate_cohort,
    shipped_reference_check,
    write_reference_check,
)
from plo_risk.data.synthetic import SETTINGS as COHORT_SETTINGS
from plo_risk.data.synthetic import reference_check as run_reference_check
from plo_risk.evaluate.external import external_validation
from plo_risk.model.bundle import BundleError, bundle_digest, sign_bundle
from plo_risk.model.signing import SigningKeyError, generate_signing_key
from plo_risk.planning import PlanningError, sample_size, simulation_check
from plo_risk.report import SEED_CASE, metric_label, model_card
from plo_risk.serve.risk_model import SETTINGS, RiskModel
from plo_risk.serve.scoring import ENGINES, EXPLAIN_OPTIONS, ScoringError, score_cohort
from plo_risk.serve.tracking import CHAMPION_ALIAS, REGISTERED_NAME
from plo_risk.utils.atomic import (
    DISK_FULL,
    DiskFullError,
    atomic_path,
    disk_full_message,
)

app = typer.Typer(
    help="Explained fracture risk in pregnancy- and lactation-associated "
    "osteoporosis (PLO): synthetic cohorts, registry ingestion, training and "
    "comparison tracked in MLflow, one patient's assessment, batch scoring, the "
    "model card, the clinician's web page.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# In pipes and CI logs there is no terminal width to fit; use a wide one so tables
# keep their numbers instead of truncating them.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
# Without a terminal, a long step says it is still running this often (seconds).
HEARTBEAT_SECONDS = 30.0


def Setting_value(value) -> str:  # noqa: N802 - reads like the Enum it unwraps
    """The plain string of an Enum choice (or of a string)."""
    return value.value if isinstance(value, Enum) else str(value)


def _choices(name: str, values) -> type[Enum]:
    """A str Enum of the allowed values, so --help lists them."""
    return Enum(name, {v: v for v in values}, type=str)


Explain = _choices("Explain", EXPLAIN_OPTIONS)
Engine = _choices("Engine", ENGINES)
Setting = _choices("Setting", SETTINGS)
CohortSetting = _choices("CohortSetting", COHORT_SETTINGS)
Style = _choices("Style", STYLES)
Missingness = _choices("Missingness", MISSINGNESS)

MODEL_HELP = "Bundle folder or MLflow URI (models:/name@alias, runs:/id/model)."
UNIT_HELP = "FIELD=UNIT: a column (or field) in an alternate unit; repeatable."
PREVALENCE_HELP = (
    "Move the model to a setting with this outcome prevalence first (intercept "
    "shift), e.g. 4.6e-4 for all deliveries."
)
SETTING_HELP = "Move the model to this setting's prevalence first."
PUBLIC_KEY_HELP = (
    "Require the bundle to be signed by this Ed25519 public key (the .pub file "
    "of plo-risk keygen); an unsigned or changed bundle is refused."
)
QUIET_HELP = "No progress output."


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _one_of(name: str, new, old, old_name: str):
    """The value of an option given under its name or its first-wave alias."""
    if new is not None and old is not None:
        _fail(f"{name} and {old_name} are the same option; give one")
    return new if new is not None else old


def _parse_units(items: list[str] | None) -> dict[str, str]:
    units = {}
    for item in items or []:
        field, sep, value = item.partition("=")
        if not sep or not field.strip() or not value.strip():
            _fail(f"--unit {item!r}: use FIELD=UNIT, e.g. vitamin_d_25oh=nmol/L")
        units[field.strip()] = value.strip()
    return units


@contextmanager
def _progress_lines(quiet: bool):
    """Without a terminal, the library's progress log lines go to stderr while the
    block runs (a caller that configured logging itself keeps its own handlers)."""
    logger = logging.getLogger("plo_risk")
    if quiet or sys.stderr.isatty() or logger.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def _step(text: str, quiet: bool):
    """A spinner with elapsed time on a terminal; without one, a line when the step
    starts and one every HEARTBEAT_SECONDS while it runs."""
    start = time.perf_counter()
    if quiet:
        yield
    elif console.is_terminal:
        with console.status(text):
            yield
    else:
        console.print(f"… {text}", soft_wrap=True, highlight=False)
        with _heartbeat(lambda: text, start):
            yield
    if not quiet:
        console.print(f"[green]✓[/] {text} ({time.perf_counter() - start:.1f} s)")


@contextmanager
def _heartbeat(current, start: float):
    """Print "still ..." every HEARTBEAT_SECONDS until the block ends."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            elapsed = time.perf_counter() - start
            console.print(
                f"… still {current()} ({elapsed / 60:.0f} min {elapsed % 60:.0f} s)",
                soft_wrap=True,
                highlight=False,
            )

    thread = threading.Thread(target=beat, name="plo-risk-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


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
        CohortSetting,
        typer.Option(help="referral (enriched) or population (the real prevalence)."),
    ] = "referral",
    prevalence: Annotated[
        float | None,
        typer.Option(
            help="Target fracture prevalence; default depends on the setting."
        ),
    ] = None,
    style: Annotated[
        Style,
        typer.Option(help="clean (catalog columns) or registry (a messy extract)."),
    ] = "clean",
    missingness: Annotated[
        Missingness, typer.Option(help="realistic, or none (every input observed).")
    ] = "realistic",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same cohort.")] = 0,
    params: Annotated[
        Path | None,
        typer.Option(
            help="Another generator parameter file (default: the shipped params.yaml)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """Generate a synthetic PLO cohort with its ground-truth risk (the oracle)."""

    if out.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"--out {out}: the file name must end in .csv or .parquet")
    setting, style, missingness = (
        Setting_value(v) for v in (setting, style, missingness)
    )
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
    out: Annotated[Path, typer.Option(help="Validated cohort, .csv or .parquet.")],
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="Registry extract (.csv, .parquet, .xlsx) or a database URL with "
            "OMOP CDM tables (e.g. duckdb:///registry.duckdb).",
        ),
    ] = None,
    source: Annotated[str | None, typer.Option("--source", hidden=True)] = None,
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

    source = _one_of("--input", input, source, "--source")
    if source is None:
        _fail("--input is required: a registry extract or an OMOP database URL")
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
    """The leaderboard in 80 columns: each cell the estimate over its 95% CI.

    ICI and Brier score are shown in percentage points, so every interval fits in
    12 characters; the unrounded values are in ``CompareResult.leaderboard()``.
    """
    board = result.leaderboard()
    metric = result.experiment.champion.metric
    table = Table(
        title=f"{result.experiment.name}: {len(board)} model(s), "
        f"{result.n_train:,} training / {result.n_test:,} held-out rows",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1),
    )
    # (title, metric key, digits of the interval, scale)
    columns = (
        ("AUROC", "auroc", 2, 1.0),
        ("calibration\nslope", "calibration_slope", 2, 1.0),
        ("ICI (%)", "ici", 1, 100.0),
        ("Brier\nscore (%)", "brier", 1, 100.0),
    )
    table.add_column("model", no_wrap=True)
    for title, *_ in columns:
        table.add_column(title, justify="right", no_wrap=True)
    for _, row in board.iterrows():
        r = row.to_dict()
        # the champion's mark on the cell's second line, so that a long model
        # name does not push the table past 80 columns
        cells = [
            str(r["model"]) + ("\n* champion" if r["model"] == result.champion else "")
        ]
        for _title, key, digits, scale in columns:
            cells.append(
                _ci_cell(
                    *(
                        _scaled(r.get(k), scale)
                        for k in (key, f"{key}_lower", f"{key}_upper")
                    ),
                    digits,
                )
            )
        table.add_row(*cells)
    table.caption = (
        f"estimate over its 95% bootstrap interval; sorted by {metric}; "
        "all metrics: CompareResult.leaderboard() or the MLflow runs"
    )
    return table


def _scaled(value, scale: float):
    return None if value is None else value * scale


def _ci_cell(est, lo, hi, digits: int) -> str:
    """``0.784`` over ``0.76 to 0.84`` (never ``(-0.13--0.01)``)."""
    if est is None or est != est:
        return "-"
    text = f"{est:.{digits + 1}f}"
    if lo is None or lo != lo or hi is None or hi != hi:
        return text
    return f"{text}\n{lo:.{digits}f} to {hi:.{digits}f}"


def _with_progress(run, quiet: bool):
    """Run ``run(say)``: each step it says is printed with the time so far, and
    without a terminal a "still ..." line comes every HEARTBEAT_SECONDS."""

    start = time.perf_counter()
    state = {"step": "starting"}

    def say(msg: str) -> None:
        state["step"] = msg
        if not quiet:
            elapsed = time.perf_counter() - start
            console.print(f"[dim]… {elapsed:5.0f} s[/] {msg}", soft_wrap=True)

    if quiet or console.is_terminal:
        return run(say)
    with _heartbeat(lambda: state["step"], start):
        return run(say)


def _run_experiment(kind: str, config: Path, quiet: bool):

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    run = {
        "compare": training.compare,
        "train": training.train,
        "tune": tuning.tune_experiment,
    }[kind]
    try:
        result = _with_progress(lambda say: run(config, progress=say), quiet)
    except (
        training.ConfigError,
        training.PromotionError,
        tuning.TuningError,
        FileNotFoundError,
    ) as exc:
        _fail(str(exc))
    if kind == "tune":
        console.print(_tuned_table(result))
        result = result.compare
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
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """Train the experiment's model(s), evaluate them and log MLflow runs."""
    _run_experiment("train", config, quiet)


def _tuned_table(result) -> Table:
    """Each search: its best cross-validated value and parameters."""
    table = Table(
        title="searches (CV inside the training data)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for title in ("model", "trials", "best CV", "best params"):
        table.add_column(title, overflow="fold")
    for t in result.tuned:
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in t.best_params.items()
        )
        table.add_row(
            t.name,
            f"{t.n_trials} ({t.n_pruned} pruned)",
            f"{t.metric} {t.best_value:.4f}",
            params,
        )
    return table


@app.command()
def tune(
    config: Annotated[
        Path,
        typer.Option(help="Experiment YAML with tune sections (training/tune.yaml)."),
    ],
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """Tune each model's hyperparameters (Optuna, CV on the training data), then
    refit the best and compare it with the given ones on the held-out data."""
    _run_experiment("tune", config, quiet)


@app.command()
def compare(
    config: Annotated[
        Path, typer.Option(help="Experiment YAML (e.g. training/compare.yaml).")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
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
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "models:/plo-risk@champion",
    public_key: Annotated[Path | None, typer.Option(help=PUBLIC_KEY_HELP)] = None,
    unit: Annotated[list[str] | None, typer.Option(help=UNIT_HELP)] = None,
    prevalence: Annotated[float | None, typer.Option(help=PREVALENCE_HELP)] = None,
    setting: Annotated[Setting | None, typer.Option(help=SETTING_HELP)] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of text.")
    ] = False,
) -> None:
    """Explained fracture risk for one patient: risk, interval, reasons, next steps."""

    try:
        record = read_patient_file(patient)
    except PatientFileError as exc:
        _fail(f"--patient {exc}")
    units = record.pop("units", None) or {}
    if not isinstance(units, dict):
        _fail(f'--patient {patient}: "units" must map fields to units')
    units = {**units, **_parse_units(unit)}
    risk_model = _in_setting(
        _load_model_or_fail(model, public_key), prevalence, setting
    )
    try:
        result = risk_model.assess(record, units=units or None)
    except ValidationError as exc:
        _fail(f"--patient {patient}: {exc}")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        console.print(str(result), soft_wrap=True, highlight=False)


def _load_model_or_fail(model: str, public_key: Path | None = None) -> RiskModel:

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return RiskModel.load(model, public_key=public_key)
    except SigningKeyError as exc:
        _fail(f"--public-key {exc}")
    except (BundleError, FileNotFoundError) as exc:
        _fail(f"--model {model}: {exc}")


def _model_or_checked(model: str, public_key: Path | None) -> str | RiskModel:
    """The --model as given, or, with --public-key, the model loaded and checked
    here (the verb then uses that model)."""
    return model if public_key is None else _load_model_or_fail(model, public_key)


def _in_setting(risk_model: RiskModel, prevalence, setting) -> RiskModel:
    """The model moved to --prevalence or --setting (itself without either)."""
    if prevalence is None and setting is None:
        return risk_model
    try:
        return risk_model.for_setting(
            prevalence=prevalence,
            setting=None if setting is None else Setting_value(setting),
        )
    except ValueError as exc:
        _fail(f"--prevalence/--setting: {exc}")


def _check_data_path(data: Path) -> None:
    if data.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"--input {data}: the file name must end in .csv or .parquet")
    if not data.is_file():
        _fail(f"--input {data}: no such file")


def _data_option(help_text: str):
    return typer.Option("--input", help=help_text)


HIDDEN_DATA = typer.Option("--data", hidden=True, help="Old name of --input.")


@app.command()
def report(
    data: Annotated[
        Path | None,
        _data_option(
            "Evaluation data (.csv or .parquet) with the observed outcome "
            "column 'fracture' (0/1)."
        ),
    ] = None,
    old_data: Annotated[Path | None, HIDDEN_DATA] = None,
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "models:/plo-risk@champion",
    public_key: Annotated[Path | None, typer.Option(help=PUBLIC_KEY_HELP)] = None,
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
    min_cell: Annotated[
        int,
        typer.Option(
            min=1,
            help="Subgroup cells of fewer patients, events or non-events show '<N' "
            "and no metrics.",
        ),
    ] = 5,
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """Write the model card: one self-contained HTML file with TRIPOD+AI items.

    Evaluates the model on --input (performance with CIs, calibration, ROC,
    decision curve, SHAP, subgroups, recalibration) and logs the card to the
    model's MLflow run when the model came from MLflow.
    """

    data = _one_of("--input", data, old_data, "--data")
    if data is None:
        _fail("--input is required: the evaluation data (.csv or .parquet)")
    _check_data_path(data)
    risk_model = _load_model_or_fail(model, public_key)
    try:
        with _step(f"evaluating {model} on {data} and writing {out}", quiet):
            card = model_card(
                risk_model,
                data,
                out,
                n_boot=n_boot,
                mlflow_run_id=mlflow_run_id,
                min_cell=min_cell,
            )
    except (ValueError, FileNotFoundError) as exc:
        _fail(f"--input {data}: {exc}")
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
        f"{result.n_events:,} fractures ({result.n_rejected:,} rejected)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("measure")
    table.add_column("as trained", justify="right")
    table.add_column("recalibrated", justify="right")
    for name, row in comp.iterrows():
        est = row["estimate"]
        digits = 4 if abs(est) < 0.1 and est != 0 else 3
        table.add_row(
            metric_label(str(name))[0],
            _ci_cell(est, row["lower"], row["upper"], digits),
            _ci_cell(
                row["recalibrated"],
                row["recalibrated_lower"],
                row["recalibrated_upper"],
                digits,
            ),
        )
    table.caption = (
        "estimate, then its 95% CI (bootstrap; O/E: delta method); recalibrated = "
        "intercept refitted to these data"
    )
    return table


@app.command()
def validate(
    data: Annotated[
        Path | None,
        _data_option(
            "Validation data (.csv or .parquet) from another setting, with the "
            "observed outcome column 'fracture' (0/1)."
        ),
    ] = None,
    old_data: Annotated[Path | None, HIDDEN_DATA] = None,
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "models:/plo-risk@champion",
    public_key: Annotated[Path | None, typer.Option(help=PUBLIC_KEY_HELP)] = None,
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
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """Validate a model on data from another setting; offer intercept recalibration.

    Prints AUROC, Brier, calibration slope and intercept, O/E and ICI with CIs,
    as trained and after refitting the intercept to --input. With --recalibrate
    --out DIR the recalibrated model is saved as a bundle.
    """

    data = _one_of("--input", data, old_data, "--data")
    if data is None:
        _fail("--input is required: the validation data (.csv or .parquet)")
    if recalibrate and out is None:
        _fail("--recalibrate needs --out DIR: the folder for the recalibrated bundle")
    if out is not None and not recalibrate:
        _fail("--out is the folder for the recalibrated bundle: add --recalibrate")
    if out is not None and out.exists():
        _fail(f"--out {out}: already exists; choose a new folder for the bundle")
    _check_data_path(data)
    risk_model = _load_model_or_fail(model, public_key)
    try:
        with _step(f"validating {model} on {data}", quiet):
            result = external_validation(risk_model, data, n_boot=n_boot)
    except (ValueError, FileNotFoundError) as exc:
        _fail(f"--input {data}: {exc}")
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
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "models:/plo-risk@champion",
    public_key: Annotated[Path | None, typer.Option(help=PUBLIC_KEY_HELP)] = None,
    explain: Annotated[
        Explain,
        typer.Option(help="Top factors for: flagged (moderate/high) rows, all, none."),
    ] = "flagged",
    top_k: Annotated[int, typer.Option(help="Factors per explained row.")] = 3,
    chunk_rows: Annotated[
        int, typer.Option(help="Rows per chunk and part file.")
    ] = 100_000,
    engine: Annotated[Engine, typer.Option(help="Where chunks run.")] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address (tcp://...); default a LocalCluster."
        ),
    ] = None,
    unit: Annotated[list[str] | None, typer.Option(help=UNIT_HELP)] = None,
    prevalence: Annotated[float | None, typer.Option(help=PREVALENCE_HELP)] = None,
    setting: Annotated[Setting | None, typer.Option(help=SETTING_HELP)] = None,
    ignore_unknown_columns: Annotated[
        bool,
        typer.Option(
            "--ignore-unknown-columns",
            help="Score even when the input has columns the catalog does not know "
            "(they are listed in the manifest); by default such a file is refused.",
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Skip parts a killed run of the same job finished.")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """Score a whole cohort: every row scored or rejected with its reason; resumable.

    On a terminal a progress bar shows rows per second; in a log (no terminal) a
    progress line is written every 10 seconds.
    """

    units = _parse_units(unit)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with _progress_lines(quiet):
            summary = score_cohort(
                _model_or_checked(model, public_key),
                input,
                out,
                chunk_rows=chunk_rows,
                explain=Setting_value(explain),
                top_k=top_k,
                engine=Setting_value(engine),
                scheduler=scheduler,
                resume=resume,
                units=units or None,
                progress=False if quiet else None,
                unknown_columns="ignore" if ignore_unknown_columns else "error",
                prevalence=prevalence,
                setting=None if setting is None else Setting_value(setting),
            )
    except (ScoringError, BundleError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for warning in summary.warnings:
        _warn(warning)
    if not quiet:
        console.print(str(summary), soft_wrap=True, highlight=False)
        if summary.resumed_parts:
            console.print(f"resumed: {summary.resumed_parts} finished part(s) kept")
        console.print(
            f"scored rows: {out}/part-*.parquet", soft_wrap=True, highlight=False
        )
        console.print(
            f"rejected rows with reasons: {out}/_rejects/part-*.parquet",
            soft_wrap=True,
            highlight=False,
        )
        console.print(f"manifest: {summary.manifest}", soft_wrap=True, highlight=False)


@app.command()
def demo(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for everything the demo writes."),
    ] = None,
    old_out: Annotated[
        Path | None, typer.Option("--out-dir", hidden=True, help="Old name of --out.")
    ] = None,
    n: Annotated[
        int,
        typer.Option(
            help="Rows of the synthetic referral cohorts (training and held-out)."
        ),
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """The whole package end to end, and where every output is.

    Generates a synthetic referral cohort and validates it, compares the four
    models on it (tracked in a local MLflow), registers the champion, explains one
    patient, writes the model card, and scores a 100,000-row population cohort
    with some corrupted rows (scored or rejected with reasons, nothing lost).
    """

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    out_dir = _one_of("--out", out, old_out, "--out-dir") or Path("plo-risk-demo")
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
            # Risk within 3, 6, 12 months and to 18 months postpartum, intervals
            # calibrated on generator cohorts, what-if learned from a simulated
            # trial (training/baseline.yaml explains each key).
            "horizon": {
                "enabled": True,
                "interval_n": max(n, 2_000),
                "trial_n": max(n, 2_000),
            },
        }
    )
    if not quiet:
        console.print(
            "comparing xgboost, HistGradientBoosting, spline logistic regression "
            "and the clinical rule",
            soft_wrap=True,
        )
    result = _with_progress(
        lambda say: training.compare(exp, tracking_uri=uri, progress=say), quiet
    )
    console.print(_leaderboard_table(result))
    outputs["MLflow runs and registry"] = uri

    patient = dict(SEED_CASE)  # Mishra et al. 2024, Table 3 row 9
    os.environ["MLFLOW_TRACKING_URI"] = uri  # a location: the demo's own MLflow
    with _step(
        "explaining one patient (Mishra et al. 2024, Table 3 row 9) with the champion",
        quiet,
    ):
        champion = RiskModel.load(f"models:/{REGISTERED_NAME}@{CHAMPION_ALIAS}")
        champion.save(out_dir / "champion", overwrite=True)
        assessment = champion.assess(patient)
        path = out_dir / "assessment.json"
        path.write_text(json.dumps(assessment.to_dict(), indent=2))
    outputs["one patient's assessment"] = str(path)
    outputs["champion bundle (for plo-risk serve)"] = str(out_dir / "champion")
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
        # rarer, so its intercept moves to the population prevalence first.
        population_model = champion.for_setting(setting="population")
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
        inputs = [c for c in population.columns if c in champion.catalog]
        record = population.loc[int(top["row"]), inputs].dropna().to_dict()
        highest = population_model.assess(record)
        factors = "; ".join(f.describe() for f in highest.top_factors(2))
        console.print(
            f"  highest risk in the population: {top['patient_id']} "
            f"{highest.risk:.2%} ({highest.category}); {factors}",
            soft_wrap=True,
            highlight=False,
        )
        console.print(
            f"  flagged (risk >= {min(population_model.thresholds.values()):.2%}): "
            f"{summary.n_flagged:,}",
            soft_wrap=True,
            highlight=False,
        )
    outputs["population cohort (input)"] = str(source)
    outputs["scored population (risk, category, reasons)"] = (
        f"{summary.out_dir}/part-*.parquet"
    )
    outputs["rejected rows with reasons"] = f"{summary.out_dir}/_rejects/part-*.parquet"
    outputs["champion"] = (
        f"models:/{REGISTERED_NAME}@"
        f"{CHAMPION_ALIAS} ({result.champion or 'kept'}, "
        f"version {result.champion_version})"
    )

    scorecard, current = shipped_reference_check()
    outputs["generator against published PLO statistics"] = (
        f"{scorecard.summary()} (data/synthetic/reference_check.json"
        + ("" if current else "; stale: run plo-risk reference-check --write")
        + ")"
    )

    console.print("\n[bold]plo-risk demo: where everything is[/]")
    for name, where in outputs.items():
        console.print(f"  {name}: {where}", soft_wrap=True, highlight=False)
    console.print(
        f"  open the MLflow UI: mlflow ui --backend-store-uri {uri}",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        "  open the clinician page: plo-risk serve --model "
        f"{out_dir / 'champion'} --card {card.path}, then http://127.0.0.1:8000/",
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def keygen(
    out: Annotated[
        Path,
        typer.Option(
            help="The private key file to write (mode 0600); the public key is "
            "written beside it as OUT.pub."
        ),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing key files.")
    ] = False,
) -> None:
    """Make an Ed25519 key pair for signing bundles (plo-risk sign)."""
    try:
        public = generate_signing_key(out, overwrite=overwrite)
    except FileExistsError as exc:
        _fail(f"--out {exc}")
    except OSError as exc:
        _fail(f"--out {out}: cannot be written ({exc.strerror})")
    console.print(f"private key (keep it secret): {out}", soft_wrap=True)
    console.print(
        f"public key (give it to whoever loads the bundles): {public}",
        soft_wrap=True,
    )


@app.command()
def sign(
    model: Annotated[Path, typer.Option(help="The bundle folder to sign.")],
    key: Annotated[Path, typer.Option(help="The private key file (plo-risk keygen).")],
) -> None:
    """Sign a bundle folder: writes signature.ed25519 over its digest.

    Load it with --public-key KEY.pub (or RiskModel.load(path, public_key=...)) to
    refuse any bundle that is unsigned or changed since.
    """
    try:
        signature = sign_bundle(model, key)
    except SigningKeyError as exc:
        _fail(f"--key {exc}")
    except BundleError as exc:
        _fail(f"--model {model}: {exc}")
    except OSError as exc:
        _fail(f"--model {model}: cannot write the signature ({exc.strerror})")
    console.print(
        f"signed {model} (digest {bundle_digest(model)}): {signature}",
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def plan(
    parameters: Annotated[
        int, typer.Option(help="Candidate predictor parameters (degrees of freedom).")
    ],
    prevalence: Annotated[
        float | None, typer.Option(help="Binary outcome: anticipated prevalence.")
    ] = None,
    c_statistic: Annotated[
        float | None,
        typer.Option(help="Anticipated C statistic (binary), when --r2 is unknown."),
    ] = None,
    r2: Annotated[
        float | None, typer.Option("--r2", help="Anticipated Cox-Snell R2.")
    ] = None,
    shrinkage: Annotated[
        float, typer.Option(help="Target global shrinkage factor (criterion 1).")
    ] = 0.9,
    rate: Annotated[
        float | None, typer.Option(help="Survival: event rate per time unit.")
    ] = None,
    timepoint: Annotated[
        float | None, typer.Option(help="Survival: time of the cumulative incidence.")
    ] = None,
    mean_follow_up: Annotated[
        float | None, typer.Option(help="Survival: anticipated mean follow-up.")
    ] = None,
    check: Annotated[
        int | None,
        typer.Option(
            "--check",
            help="Also fit a logistic model on this many synthetic cohorts of the "
            "planned N and print the share with calibration slope >= 0.9.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of --check.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """Minimum development sample size (Riley et al. 2019, BMJ 2020; pmsampsize)."""
    try:
        result = sample_size(
            parameters=parameters,
            prevalence=prevalence,
            c_statistic=c_statistic,
            r2=r2,
            shrinkage=shrinkage,
            rate=rate,
            timepoint=timepoint,
            mean_follow_up=mean_follow_up,
        )
    except PlanningError as exc:
        _fail(str(exc))
    console.print(str(result), soft_wrap=True, highlight=False)
    if check is not None:
        if result.outcome != "binary":
            _fail("--check: only for a binary outcome (give --prevalence)")
        try:
            with _step(f"fitting {check} synthetic cohorts of {result.n}", quiet):
                checked = simulation_check(
                    result.n, repetitions=check, prevalence=prevalence, seed=seed
                )
        except PlanningError as exc:
            _fail(str(exc))
        console.print(str(checked), soft_wrap=True, highlight=False)
        if checked.parameters and checked.parameters != parameters:
            _warn(
                f"the plan assumed {parameters} parameters; the model checked has "
                f"{checked.parameters}: plan with --parameters {checked.parameters} "
                "to check the pipeline's own N"
            )


@app.command("reference-check")
def reference_check_cmd(
    n: Annotated[
        int, typer.Option(help="Population episodes to simulate.")
    ] = 3_000_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 20240627,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Also write the scorecard to data/synthetic/reference_check.json "
            "(the one the model card shows).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> None:
    """Check the generator against published PLO statistics: the scorecard.

    Simulates --n population episodes, applies each statistic's own case
    definition (plo_risk/data/plo_literature.yaml, with its sources) and prints
    published value, simulated value, tolerance, standardized deviation and
    pass/fail. Exit status 1 when fewer than 80% pass or one is beyond 3 SD.
    """
    if n < 1000:
        _fail(f"--n {n}: too few episodes for the check; use at least 1000")
    with _step(f"simulating {n:,} population episodes", quiet):
        if write:
            card = write_reference_check(n=n, seed=seed)
        else:
            card = run_reference_check(n=n, seed=seed)
    console.print(str(card), soft_wrap=True, highlight=False)
    if write:
        console.print("written to data/synthetic/reference_check.json")
    if not card.acceptable:
        raise typer.Exit(1)


@app.command()
def serve(
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "models:/plo-risk@champion",
    public_key: Annotated[Path | None, typer.Option(help=PUBLIC_KEY_HELP)] = None,
    host: Annotated[
        str,
        typer.Option(help="Address to bind; any but loopback needs --token-file."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    token_file: Annotated[
        Path | None,
        typer.Option(help="File holding the access token (16+ characters)."),
    ] = None,
    audit_log: Annotated[
        Path, typer.Option(help="The hash-chained audit log (JSON lines).")
    ] = Path("plo-risk-audit") / "audit.jsonl",
    audit_key_file: Annotated[
        Path | None,
        typer.Option(help="Key for the records' MACs (created when missing)."),
    ] = None,
    keep_inputs: Annotated[
        bool,
        typer.Option(
            "--keep-inputs",
            help="Log each patient's inputs too, so `audit replay` can recompute "
            "the outputs (off: only a keyed hash of them).",
        ),
    ] = False,
    card: Annotated[
        Path | None, typer.Option(help="A model card HTML to serve at /model-card.")
    ] = None,
) -> None:
    """The clinician's web page: a form, the explained result, an audit trail.

    Opens http://HOST:PORT/ (on this machine: http://127.0.0.1:8000/). Every
    assessment is appended to --audit-log; check it with `plo-risk audit verify`.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    console.print(
        f"plo-risk web page: http://{host}:{port}/ (audit log {audit_log}); "
        "stop with Ctrl+C",
        soft_wrap=True,
        highlight=False,
    )
    try:
        web.serve(
            _model_or_checked(model, public_key),
            host=host,
            port=port,
            token_file=token_file,
            audit_log=audit_log,
            audit_key_file=audit_key_file,
            keep_inputs=keep_inputs,
            card=card,
        )
    except web.AccessError as exc:
        _fail(str(exc))
    except (BundleError, FileNotFoundError, ValueError, web.AuditError) as exc:
        _fail(f"--model {model}: {exc}")


audit_app = typer.Typer(
    help="Check the web page's audit log: intact (verify) and reproducible (replay).",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

AUDIT_LOG_OPTION = typer.Option(help="The audit log (JSON lines).")
KEY_OPTION = typer.Option(help="The audit key file: also checks each record's MAC.")


def _audit_key(key_file: Path | None) -> bytes | None:
    if key_file is None:
        return None
    try:
        return web.read_key(key_file)
    except (OSError, ValueError, web.AuditError) as exc:
        _fail(f"--key-file {key_file}: {exc}")


AUDIT_LOG_ARGUMENT = typer.Argument(
    help="The audit log (JSON lines); the same as --log.",
    show_default=False,
    metavar="LOG",
)
DEFAULT_AUDIT = Path("plo-risk-audit") / "audit.jsonl"


def _audit_log(given: Path | None, option: Path) -> Path:
    return given if given is not None else option


@audit_app.command("verify")
def audit_verify(
    log_file: Annotated[Path | None, AUDIT_LOG_ARGUMENT] = None,
    log: Annotated[Path, AUDIT_LOG_OPTION] = DEFAULT_AUDIT,
    key_file: Annotated[Path | None, KEY_OPTION] = None,
) -> None:
    """Every record intact, in order, none missing; exit 1 naming each problem.

    plo-risk audit verify LOG (or --log LOG).
    """
    log = _audit_log(log_file, log)
    try:
        result = web.verify(log, key=_audit_key(key_file))
    except FileNotFoundError as exc:
        _fail(str(exc))
    console.print(str(result), soft_wrap=True, highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("replay")
def audit_replay(
    log_file: Annotated[Path | None, AUDIT_LOG_ARGUMENT] = None,
    log: Annotated[Path, AUDIT_LOG_OPTION] = DEFAULT_AUDIT,
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "models:/plo-risk@champion",
    key_file: Annotated[Path | None, KEY_OPTION] = None,
) -> None:
    """Recompute every logged output whose inputs were kept; exit 1 on a difference.

    plo-risk audit replay LOG --model ... (or --log LOG).
    """
    log = _audit_log(log_file, log)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        result = web.replay(log, model, key=_audit_key(key_file))
    except (FileNotFoundError, BundleError) as exc:
        _fail(str(exc))
    console.print(str(result), soft_wrap=True, highlight=False)
    if not result.ok:
        raise typer.Exit(1)


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


def main() -> None:
    """The console script: the app, with a full disk said in one line (exit 1)."""
    try:
        app()
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        path = exc.filename or "a file"
        message = exc.strerror if isinstance(exc, DiskFullError) else None
        err_console.print(message or disk_full_message(path, exc), markup=False)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()

"""Batch scoring of whole cohorts: streamed, nothing lost, resumable, explained.

:func:`score_cohort` reads a CSV or Parquet input in chunks of ``chunk_rows`` rows
(memory is bounded by the chunk, not the input), and for each chunk validates the
rows, predicts, explains the flagged ones and writes::

    out_dir/
      part-00000.parquet           row, patient_id, risk, category, model_version,
      part-00001.parquet           factor_1, contribution_1, ... (explained rows)
      _rejects/part-00000.parquet  row, patient_id, field, value, reason, message
      _job.json                    what this folder is a run of (model, input, options)
      _manifest.json               counts, model version, input fingerprint (at the end)
      _SUCCESS                     written last

The folder is one Parquet dataset of the scored rows, one schema in every part:
readers skip names that begin with ``_`` or ``.`` (pyarrow, Spark, Hive), so
``pyarrow.dataset.dataset(out_dir)``, ``spark.read.parquet(out_dir)`` and DuckDB's
``read_parquet('out_dir/*.parquet')`` read exactly the parts; the rejects are
their own dataset, ``out_dir/_rejects``.

``row`` is the 0-based position of the row in the input, so every input row is
either in a ``part-*`` file or in a ``_rejects/part-*`` file with its reason
(``n_scored + n_rejected + n_unreadable == n_input``). A CSV line that cannot be
read (ragged, not UTF-8, a broken quote) is a reject naming its line number; a
Parquet row group that cannot be decoded is one reject entry covering exactly its
rows, counted as ``n_unreadable`` (:mod:`plo_risk.serve._input`). A part is written to a temporary name and
renamed, rejects first: a part that exists is complete. A rerun with ``resume=True``
skips finished parts, so a run killed at any point (``kill -9`` included) ends, when
rerun, with the same rows and values as an uninterrupted run. A different model,
input or set of options on the same ``out_dir`` is refused rather than mixed.

Explanation (exact TreeSHAP) is the expensive step: ``explain="flagged"`` (the
default) explains only the rows in a category above ``"low"``, which in a
population cohort is a small share; ``"all"`` explains every row and ``"none"``
none. ``benchmarks/bench_score.py`` measures the cost of each.

``engine="dask"`` runs the same per-chunk function over pieces of the input (row
groups, or blocks of CSV lines), each read on a worker by the same reader, on a
``dask.distributed`` cluster (``scheduler="tcp://..."``, or a
``LocalCluster`` when None). The model travels to the workers as its bundle's
files (JSON and skops, loaded there with :func:`plo_risk.model.bundle.load_bundle`; never
a pickled model); results come back to the client, which writes the parts.

Examples
--------
>>> from plo_risk.serve.scoring import score_cohort                     # doctest: +SKIP
>>> summary = score_cohort("models:/plo-risk@champion", "cohort.parquet",
...                        "scored/")                             # doctest: +SKIP
>>> summary.n_scored + summary.n_rejected == summary.n_input      # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from plo_risk.data.ids import ids_as_text
from plo_risk.data.schema import (
    ID_COLUMN,
    OUTCOME_COLUMN,
    OUTCOME_COLUMNS,
    PASSTHROUGH_COLUMNS,
    ValidationError,
    check_units,
    is_outcome_column,
    validate_frame,
)
from plo_risk.serve._input import (
    LINE_ERROR,
    LOST,
    Piece,
    Source,
    SourceError,
    chunks,
    fingerprint,
    open_source,
    pieces,
    read_piece,
)
from plo_risk.serve._input import columns as input_columns
from plo_risk.serve.risk_model import PreparedFrame, RiskModel
from plo_risk.utils.atomic import TEMP_GLOB, atomic_path, write_text_atomic
from plo_risk.utils.locks import LockHeld, exclusive_lock
from plo_risk.utils.version import package_version

__all__ = [
    "EXPLAIN_OPTIONS",
    "ScoreSummary",
    "ScoringError",
    "ScoringWarning",
    "score_cohort",
]

log = logging.getLogger(__name__)

EXPLAIN_OPTIONS = ("flagged", "all", "none")
ENGINES = ("local", "dask")
UNKNOWN_COLUMNS = ("error", "ignore")
# Without a terminal, a progress line at most this often (seconds).
_LOG_EVERY = 10.0
# A mean risk (or observed events, when the input has the outcome) this many
# times off the model's setting means the model does not fit the cohort.
_EXPECTED_WARN = 3.0
_PART = "part-{:05d}.parquet"
_JOB = "_job.json"
_MANIFEST = "_manifest.json"
_REJECTS = "_rejects"
# The layout before the folder was a dataset: removed when a folder is reused.
_LEGACY = ("manifest.json", "rejects/part-*.parquet")
_SUCCESS = "_SUCCESS"
_LOCK = ".lock"
# Row ids and counts of a part live in its Parquet footer, so a resumed run reads
# the footers of finished parts, never their data.
_META_KEY = b"plo_risk"
_REJECT_COLUMNS = ["row", ID_COLUMN, "field", "value", "reason", "message"]


class ScoringError(ValueError):
    """A batch-scoring run that cannot start or continue; the message says why."""


class ScoringWarning(UserWarning):
    """A scored cohort that the model's setting does not seem to fit (with the fix)."""


@dataclass(frozen=True)
class ScoreSummary:
    """What :func:`score_cohort` did.

    Attributes
    ----------
    n_input : int
        Rows read from the input.
    n_scored : int
        Rows scored (in ``parts``).
    n_rejected : int
        Rows rejected (in ``rejects``, one row per bad cell or per CSV line that
        cannot be read, with the reason).
    n_flagged : int
        Scored rows in a category above ``"low"``.
    seconds : float
        Wall time of this call (a resumed run counts only its own work).
    out_dir : Path
    parts : list of Path
        The scored part files, in input order.
    rejects : list of Path
        The rejects part files, in input order.
    manifest : Path
    resumed_parts : int
        Parts found finished and skipped.
    model_version : str
    n_resumed_rows : int
        Input rows of the parts found finished (not read again by this call).
    ignored_columns : list of str
        Input columns that are not catalog fields, ignored on request
        (``unknown_columns="ignore"``).
    empty_columns : list of str
        Catalog fields the input has as columns but that are empty in every row.
    mean_risk : float
        Mean risk of the scored rows.
    warnings : list of str
        Soft problems of the run (the model's setting does not fit the cohort,
        empty columns), each with what to do.
    n_unreadable : int
        Rows lost with a Parquet row group that cannot be decoded: counted from
        the file's footer, one entry per run of lost rows in ``rejects``
        (``n_scored + n_rejected + n_unreadable == n_input``).
    """

    n_input: int
    n_scored: int
    n_rejected: int
    n_flagged: int
    seconds: float
    out_dir: Path
    parts: list[Path] = field(repr=False)
    rejects: list[Path] = field(repr=False)
    manifest: Path
    resumed_parts: int
    model_version: str
    n_resumed_rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    empty_columns: list[str] = field(default_factory=list)
    mean_risk: float = float("nan")
    warnings: list[str] = field(default_factory=list)
    n_unreadable: int = 0

    @property
    def rows_per_second(self) -> float:
        """Rows this call read and scored per second of its wall time (a resumed
        run counts only the rows it did not find finished)."""
        rows = self.n_input - self.n_resumed_rows
        return rows / self.seconds if self.seconds > 0 else float("inf")

    def read(self, *, rejects: bool = False) -> pd.DataFrame:
        """All scored rows (or all rejects) as one frame, in input order."""
        files = self.rejects if rejects else self.parts
        frames = [pd.read_parquet(p) for p in files]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def __str__(self) -> str:
        lost = f"{self.n_unreadable:,} unreadable, " if self.n_unreadable else ""
        return (
            f"{self.n_input:,} rows: {self.n_scored:,} scored "
            f"({self.n_flagged:,} flagged), {self.n_rejected:,} rejected, {lost}"
            f"in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s) "
            f"-> {self.out_dir}"
        )


# --------------------------------------------------------------- the chunk


@dataclass
class _Chunk:
    """A chunk's rows: those read (``frame``, indexed by row id) and the reject
    entries of those that could not be read (``unread``)."""

    frame: pd.DataFrame
    unread: pd.DataFrame
    n_input: int
    n_unreadable: int


def _to_pandas(table: pa.Table, start: int) -> _Chunk:
    n = table.num_rows
    line = table.column(LINE_ERROR).is_valid().to_numpy(zero_copy_only=False)
    lost = table.column(LOST).is_valid().to_numpy(zero_copy_only=False)
    unread = _unread(table, start, line, lost)
    table = table.drop_columns([LINE_ERROR, LOST])
    bad = line | lost
    if bad.any():
        table = table.filter(pa.array(~bad))
    table = ids_as_text(table, ID_COLUMN)
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.name != ID_COLUMN:
            # A database's NUMERIC column: a number, read as one.
            table = table.set_column(i, f.name, table.column(i).cast(pa.float64()))
    df = table.to_pandas()
    df.index = pd.Index(np.flatnonzero(~bad) + start, dtype=np.int64)
    if not bad.any():
        df.index = pd.RangeIndex(start, start + n)
    return _Chunk(df, unread, n, int(lost.sum()))


def _unread(table: pa.Table, start: int, line: np.ndarray, lost: np.ndarray):
    """Reject entries for the rows that could not be read: one per bad CSV line,
    one per run of rows lost with an unreadable Parquet row group."""
    entries = []
    if line.any():
        pos = np.flatnonzero(line)
        for p, msg in zip(
            pos, table.column(LINE_ERROR).take(pa.array(pos)).to_pylist(), strict=True
        ):
            entries.append((start + int(p), "(row)", "", "unreadable_row", msg))
    if lost.any():
        pos = np.flatnonzero(lost)
        msgs = table.column(LOST).take(pa.array(pos)).to_pylist()
        breaks = np.flatnonzero((np.diff(pos) != 1) | (np.array(msgs[1:]) != msgs[:-1]))
        for a, b in zip(np.r_[0, breaks + 1], np.r_[breaks, len(pos) - 1], strict=True):
            first, last = start + int(pos[a]), start + int(pos[b])
            entries.append(
                (
                    first,
                    "(rows)",
                    f"rows {first}-{last}",
                    "unreadable",
                    f"rows {first:,} to {last:,} ({last - first + 1:,} rows) are "
                    f"lost: {msgs[a]}",
                )
            )
    frame = pd.DataFrame(
        entries, columns=["row", "field", "value", "reason", "message"]
    )
    frame.insert(1, ID_COLUMN, None)
    return frame.astype({"row": np.int64})


def score_frame(
    model,
    df: pd.DataFrame,
    *,
    explain: str = "flagged",
    top_k: int = 3,
    units: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score one chunk: the per-chunk function of both engines.

    Parameters
    ----------
    model : RiskModel
    df : pandas.DataFrame
        The chunk; its index labels are the global row ids.
    explain : {"flagged", "all", "none"}
    top_k : int
    units : Mapping, default=None

    Returns
    -------
    scored : pandas.DataFrame
        ``row, patient_id, risk, category, model_version``, ``risk_<horizon>``
        per horizon of a horizon model (``risk_3m``, ...) and, unless
        ``explain="none"``, ``factor_1, contribution_1, ...`` (None / NaN where
        a row is not explained).
    rejects : pandas.DataFrame
        ``row, patient_id, field, value, reason, message``, one row per bad cell.
    """
    return _finish_chunk(model, df, _validate_chunk(model, df, units), explain, top_k)


def _validate_chunk(model: RiskModel, df: pd.DataFrame, units) -> PreparedFrame:
    # The reader thread's part: validation and the model matrix.
    res = validate_frame(df, units=units, unknown="ignore", catalog=model.catalog)
    return model.prepare(res)


def _finish_chunk(
    model: RiskModel, df: pd.DataFrame, prep: PreparedFrame, explain: str, top_k: int
):
    """Predict, categorize and explain the valid rows; shape both output frames."""
    res = prep.res
    out = model.predict_frame(prep, explain=explain, top_k=top_k)
    out = out[res.valid_mask]
    scored = pd.DataFrame(
        {
            "row": res.valid.index.to_numpy(dtype=np.int64),
            ID_COLUMN: _ids(out[ID_COLUMN] if ID_COLUMN in out else None, len(out)),
            "risk": out["risk"].to_numpy(dtype=np.float64),
            "category": out["category"].to_numpy(dtype=object),
            "model_version": model.version,
        }
    )
    for label in model.horizons:
        scored[f"risk_{label}"] = out[f"risk_{label}"].to_numpy(dtype=np.float64)
    for k in range(1, top_k + 1) if explain != "none" else ():
        scored[f"factor_{k}"] = out[f"factor_{k}"].to_numpy(dtype=object)
        scored[f"contribution_{k}"] = out[f"contribution_{k}"].to_numpy(
            dtype=np.float64
        )
    rejects = res.rejects
    if len(rejects):
        rid = df[ID_COLUMN] if ID_COLUMN in df.columns else None
        rows = rejects["row"].to_numpy(dtype=np.int64)
        rejects = pd.DataFrame(
            {
                "row": rows,
                ID_COLUMN: _ids(None if rid is None else rid.loc[rows], len(rows)),
                "field": rejects["field"].astype(str).to_numpy(),
                "value": [None if v is None else str(v) for v in rejects["value"]],
                "reason": rejects["reason"].astype(str).to_numpy(),
                "message": rejects["message"].astype(str).to_numpy(),
            }
        )
    else:
        rejects = pd.DataFrame(
            {
                "row": np.empty(0, np.int64),
                ID_COLUMN: np.empty(0, dtype=object),
                **{c: np.empty(0, dtype=object) for c in _REJECT_COLUMNS[2:]},
            }
        )
    return scored, rejects


def _ids(ids: pd.Series | None, n: int) -> np.ndarray:
    """Patient ids as text (None when absent): one Parquet type in every part."""
    if ids is None:
        return np.full(n, None, dtype=object)
    missing = ids.isna().to_numpy()
    if pd.api.types.is_float_dtype(ids.dtype):
        # Integer ids read back as floats (a column with gaps): 17.0 -> "17".
        whole = np.isfinite(ids.to_numpy()) & (ids.to_numpy() % 1 == 0)
        text = (
            ids.astype(object).where(~whole, ids.fillna(0).astype("int64")).astype(str)
        )
    else:
        text = ids.astype(str)
    out = text.to_numpy(dtype=object)
    out[missing] = None
    return out


_SCORED_TYPES = {
    "row": pa.int64(),
    ID_COLUMN: pa.string(),
    "risk": pa.float64(),
    "category": pa.string(),
    "model_version": pa.string(),
}
_REJECT_TYPES = {
    "row": pa.int64(),
    ID_COLUMN: pa.string(),
    "field": pa.string(),
    "value": pa.string(),
    "reason": pa.string(),
    "message": pa.string(),
}


def _arrow(df: pd.DataFrame, types: Mapping[str, pa.DataType], meta: dict) -> pa.Table:
    fields = []
    for name in df.columns:
        if name in types:
            fields.append(pa.field(name, types[name]))
        elif name.startswith("factor_"):
            fields.append(pa.field(name, pa.string()))
        else:
            fields.append(pa.field(name, pa.float64()))
    schema = pa.schema(fields, metadata={_META_KEY: json.dumps(meta).encode()})
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)


def _write_atomic(table: pa.Table, path: Path) -> None:
    with atomic_path(path, fsync=True) as tmp:
        pq.write_table(table, tmp)


def _chunk_stats(df: pd.DataFrame, scored: pd.DataFrame, fields: list[str]) -> dict:
    """What the summary needs from a chunk, kept in its part's footer: the filled
    cells of each catalog column, the sum of risks and, when the input carries the
    outcome, observed and expected events of the scored rows."""
    stats: dict[str, Any] = {
        "non_missing": {c: int(df[c].notna().sum()) for c in fields if c in df.columns},
        "sum_risk": float(scored["risk"].sum()),
    }
    if OUTCOME_COLUMN in df.columns and len(scored):
        y = pd.to_numeric(
            df.loc[scored["row"].to_numpy(), OUTCOME_COLUMN], errors="coerce"
        )
        known = y.notna().to_numpy()
        stats["outcome"] = {
            "n": int(known.sum()),
            "observed": float(y[known].sum()),
            "expected": float(scored["risk"].to_numpy()[known].sum()),
        }
    return stats


def _write_part(
    out: Path, index: int, start: int, chunk: _Chunk, scored, rejects, stats: dict
):
    n_input, n_unreadable = chunk.n_input, chunk.n_unreadable
    n_rejected = n_input - len(scored) - n_unreadable
    n_flagged = int((scored["category"] != "low").sum())
    meta = {
        "part": index,
        "first_row": start,
        "n_input": n_input,
        "n_scored": len(scored),
        "n_rejected": n_rejected,
        "n_unreadable": n_unreadable,
        "n_flagged": n_flagged,
        "stats": stats,
    }
    # Rejects first: the scored part's existence marks the chunk as complete.
    _write_atomic(
        _arrow(rejects, _REJECT_TYPES, meta), out / _REJECTS / _PART.format(index)
    )
    _write_atomic(_arrow(scored, _SCORED_TYPES, meta), out / _PART.format(index))
    return meta


def _part_meta(path: Path) -> dict | None:
    try:
        md = pq.read_metadata(path).metadata or {}
        return json.loads(md[_META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowInvalid):
        return None


# ------------------------------------------------------------- job folder


def _model_fingerprint(model) -> str:
    """The model's identity: version, creation, training data and calibration."""
    info = model.info
    h = hashlib.sha256()
    h.update(str(model.version).encode())
    if info is not None:
        h.update(json.dumps([info.created, info.training_data], default=str).encode())
    h.update(
        json.dumps(
            [model.model.intercept_, model.model.slope_, model.thresholds],
            default=str,
        ).encode()
    )
    return h.hexdigest()


def _prepare_out_dir(out: Path, job: dict, resume: bool) -> None:
    job_file = out / _JOB
    if out.exists() and not out.is_dir():
        raise ScoringError(f"{out}: exists and is not a folder")
    if job_file.exists():
        try:
            previous = json.loads(job_file.read_text())
        except ValueError:
            previous = None
        if resume:
            if previous != job:
                diff = sorted(
                    k
                    for k in set(job) | set(previous or {})
                    if (previous or {}).get(k) != job.get(k)
                )
                raise ScoringError(
                    f"{out} holds a scoring run with a different "
                    f"{', '.join(diff) or 'job description'}; refusing to mix "
                    "outputs. Use a new --out folder, or resume=False "
                    "(--no-resume) to replace it."
                )
        else:
            _clear(out)
    elif any(out.glob("part-*.parquet")):
        if resume:
            raise ScoringError(
                f"{out} holds part files but no {_JOB}: not a plo_risk scoring "
                "folder; use an empty or new folder"
            )
        _clear(out)
    for pattern in _LEGACY:
        for old in out.glob(pattern):
            old.unlink()
    with contextlib.suppress(OSError):
        (out / "rejects").rmdir()
    (out / _REJECTS).mkdir(parents=True, exist_ok=True)
    if not job_file.exists():
        write_text_atomic(job_file, json.dumps(job, indent=2, sort_keys=True))
    # Leftovers of a killed run: temporary files are never complete.
    for stale in [*out.glob(TEMP_GLOB), *(out / _REJECTS).glob(TEMP_GLOB)]:
        stale.unlink(missing_ok=True)


def _clear(out: Path) -> None:
    for pattern in (
        "part-*.parquet",
        f"{_REJECTS}/part-*.parquet",
        _JOB,
        _MANIFEST,
        _SUCCESS,
    ):
        for p in out.glob(pattern):
            p.unlink()


def _finished(out: Path, index: int) -> dict | None:
    part = out / _PART.format(index)
    if not part.exists() or not (out / _REJECTS / _PART.format(index)).exists():
        return None
    return _part_meta(part)


# ---------------------------------------------------------------- progress


class _Progress:
    """Progress of a run: a rich bar with rows/s on a terminal; without one, a log
    line (logger ``plo_risk.serve.scoring``, INFO) at most every 10 s and at the
    end, with rows done, rows/s and the time left. Nothing when disabled."""

    def __init__(self, total: int | None, mode: str):
        self._bar = None
        self._mode = mode  # "bar", "log" or "off"
        self._total = total
        self._t0 = time.perf_counter()
        self._done = 0  # rows counted, resumed ones included
        self._rows = 0  # rows this run scored
        self._last_log = self._t0
        if mode != "bar":
            return
        self._bar = Progress(
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),  # stdout stays for the results
            transient=False,
        )
        self._task = self._bar.add_task("score", total=total, rate="")
        self._bar.start()

    def _rate(self) -> float:
        return self._rows / max(time.perf_counter() - self._t0, 1e-9)

    def advance(self, rows: int, *, work: bool = True) -> None:
        self._done += rows
        if work:
            self._rows += rows
        if self._bar is not None:
            self._bar.update(
                self._task, advance=rows, rate=f"{self._rate():,.0f} rows/s"
            )
        elif self._mode == "log" and time.perf_counter() - self._last_log >= _LOG_EVERY:
            self._log()

    def _log(self) -> None:
        self._last_log = time.perf_counter()
        rate = self._rate()
        total = f"/{self._total:,}" if self._total else ""
        left = ""
        if self._total and rate > 0:
            left = f", about {max(self._total - self._done, 0) / rate:,.0f} s left"
        log.info(
            "scored %s%s rows, %s rows/s%s",
            f"{self._done:,}",
            total,
            f"{rate:,.0f}",
            left,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._mode == "log":
            self._log()


# ------------------------------------------------------------------- public


def score_cohort(
    model,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    chunk_rows: int = 100_000,
    explain: str = "flagged",
    top_k: int = 3,
    engine: str = "local",
    scheduler: str | None = None,
    resume: bool = True,
    units: Mapping[str, str] | None = None,
    progress: bool | None = None,
    unknown_columns: str = "error",
    prevalence: float | None = None,
    setting: str | None = None,
) -> ScoreSummary:
    """Score a whole cohort file in chunks; every row is scored or rejected.

    Parameters
    ----------
    model : RiskModel or str or Path
        A loaded :class:`~plo_risk.RiskModel`, or what :meth:`RiskModel.load`
        accepts (a bundle folder, ``models:/plo-risk@champion``, ``runs:/…``).
    source : str or Path
        A CSV (``.csv``, ``.csv.gz``) or Parquet file, or a folder of Parquet
        files (read in name order). Columns are catalog fields, optionally
        ``patient_id`` (kept), ``fracture`` (compared with the risks) and
        ``true_risk``; any other column is refused (see ``unknown_columns``).
    out_dir : str or Path
        Output folder (see the module docstring for its layout).
    chunk_rows : int, default=100_000
        Rows per chunk and per part file; memory grows with it, not with the input.
    explain : {"flagged", "all", "none"}, default="flagged"
        Which rows get their ``top_k`` factors: those in a category above
        ``"low"``, every row, or none.
    top_k : int, default=3
    engine : {"local", "dask"}, default="local"
    scheduler : str, default=None
        With ``engine="dask"``: a ``tcp://`` scheduler address; None starts a
        ``LocalCluster`` for the call.
    resume : bool, default=True
        Skip parts a previous run of the same job finished. False replaces the
        folder's previous output.
    units : Mapping, default=None
        Field to unit of its whole column, as in :func:`plo_risk.validate_frame`.
    progress : bool, default=None
        True: a progress bar (on stderr). None: the bar on a terminal and a log
        line every 10 s otherwise (logger ``plo_risk.serve.scoring``, level INFO).
        False: nothing.
    unknown_columns : {"error", "ignore"}, default="error"
        An input column that is not a catalog field: stop before any output,
        naming it with the closest field ("did you mean"), or ignore it (listed in
        the manifest and the summary). A misspelled field read as missing would
        score every row without it.
    prevalence : float, default=None
        Move the model to a setting with this outcome prevalence before scoring
        (:func:`plo_risk.model.recalibrate`); the rows record the new version.
    setting : {"population", "referral"}, default=None
        The same by name: the prevalence of that setting
        (``data/synthetic/params.yaml``).

    Returns
    -------
    ScoreSummary
        With ``warnings`` when the cohort does not fit the model's setting (a mean
        risk, or observed fractures when the input has them, more than 3 times off
        the expected), or a catalog column is empty; each is also issued as a
        :class:`ScoringWarning`.

    Raises
    ------
    ScoringError
        Unreadable input, an input without the required columns or with columns
        that are not catalog fields, an ``out_dir`` holding another job, a bad
        option.
    """
    t0 = time.perf_counter()
    if unknown_columns not in UNKNOWN_COLUMNS:
        raise ScoringError(
            f"unknown_columns={unknown_columns!r} is not allowed; use one of "
            f"{', '.join(UNKNOWN_COLUMNS)}"
        )
    if explain not in EXPLAIN_OPTIONS:
        raise ScoringError(
            f"explain={explain!r} is not allowed; use one of {', '.join(EXPLAIN_OPTIONS)}"
        )
    if engine not in ENGINES:
        raise ScoringError(
            f"engine={engine!r} is not allowed; use one of {', '.join(ENGINES)}"
        )
    for name, value, low in (("chunk_rows", chunk_rows, 1), ("top_k", top_k, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ScoringError(
                f"{name}={value!r} is not allowed; use an integer >= {low}"
            )
    if scheduler is not None and engine != "dask":
        raise ScoringError("scheduler= is only used with engine='dask'")
    model = _at_prevalence(_load_model(model), prevalence, setting)
    n_fields = len(model.catalog.names)
    if explain != "none" and top_k > n_fields:
        raise ScoringError(f"top_k={top_k} is not allowed; at most {n_fields} fields")
    try:
        check_units(units, model.catalog)
    except ValidationError as exc:
        raise ScoringError(f"units: {exc}") from None

    try:
        src = open_source(source)
        columns = input_columns(src)
    except SourceError as exc:
        raise ScoringError(str(exc)) from None
    ignored = _check_columns(columns, model, units, src, unknown_columns)
    out = Path(out_dir)
    job = {
        "model_version": model.version,
        "model_fingerprint": _model_fingerprint(model),
        "prevalence": float(model.model.prevalence_),
        "input": [str(f.resolve()) for f in src.files],
        "input_fingerprint": fingerprint(src),
        "chunk_rows": chunk_rows,
        "explain": explain,
        "top_k": top_k,
        "units": dict(units or {}),
        "engine": engine,
        "ignored_columns": ignored,
        "fields": [c for c in columns if c in model.catalog],
    }
    if progress is None:
        mode = "bar" if sys.stderr.isatty() else "log"
    else:
        mode = "bar" if progress else "off"
    with _exclusive(out):
        _prepare_out_dir(out, job, resume)
        if engine == "local":
            metas, resumed = _run_local(model, src, out, job, mode)
        else:
            metas, resumed = _run_dask(model, src, out, job, scheduler, mode)
        return _finish(out, job, metas, resumed, model, time.perf_counter() - t0)


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output folder (``.lock``, with the pid).

    A second run on the same folder (another model, ``--no-resume``, or the same
    job) is refused at once, naming the holder, instead of mixing its parts with
    the first run's. The kernel drops the lock when the holder dies (kill -9).
    """
    if out.exists() and not out.is_dir():
        raise ScoringError(f"{out}: exists and is not a folder")
    held = contextlib.ExitStack()
    try:  # only taking the lock is translated here, not what runs under it
        out.mkdir(parents=True, exist_ok=True)
        held.enter_context(exclusive_lock(out / _LOCK))
    except LockHeld as other:
        raise ScoringError(
            f"{out} is being written by another scoring run (pid {other.pid}); "
            "wait for it to finish, or use another --out folder"
        ) from None
    except OSError as exc:
        raise ScoringError(f"{out}: cannot create the output folder ({exc})") from None
    with held:
        yield


def _at_prevalence(model: RiskModel, prevalence, setting) -> RiskModel:
    try:
        return model.for_setting(prevalence=prevalence, setting=setting)
    except ValueError as exc:
        raise ScoringError(str(exc)) from None


def _load_model(model):
    if isinstance(model, RiskModel):
        return model
    if isinstance(model, str | os.PathLike):
        return RiskModel.load(model)
    raise ScoringError(
        f"model must be a RiskModel, a bundle folder or an MLflow model URI; "
        f"got {type(model).__name__}"
    )


def _check_columns(
    columns: list[str], model, units, src: Source, unknown_columns: str
) -> list[str]:
    """Problems of the input as a whole stop it up front: a required column
    absent, or a column that is not a catalog field (a misspelled field would
    be scored as missing in every row). Returns the columns ignored on request."""
    where = ", ".join(map(str, src.files))
    known = [*model.catalog.names, *PASSTHROUGH_COLUMNS, *OUTCOME_COLUMNS]
    unknown = [c for c in columns if c not in known and not is_outcome_column(c)]
    if unknown and unknown_columns == "error":
        lines = []
        for c in unknown[:20]:
            close = difflib.get_close_matches(str(c), known, n=1, cutoff=0.6)
            lines.append(
                f"  {c!r}: not a catalog field"
                + (f"; did you mean {close[0]!r}?" if close else "")
            )
        more = f"\n  ... and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        raise ScoringError(
            f"{where}: {len(unknown)} column(s) are not catalog fields, so their "
            "values would be ignored and every row scored without them:\n"
            + "\n".join(lines)
            + more
            + "\nRename them, or pass unknown_columns='ignore' "
            "(--ignore-unknown-columns) to score without them."
        )
    try:
        validate_frame(
            pd.DataFrame(columns=[c for c in columns if c in known]),
            units=units,
            catalog=model.catalog,
        )
    except ValidationError as exc:
        raise ScoringError(f"{where}: {exc}") from None
    return unknown


def _run_local(model, src: Source, out: Path, job: dict, mode: str):
    """Chunks in order; the next chunk is read and validated while this one is
    predicted and written (xgboost and Parquet I/O release the GIL)."""
    bar = _Progress(src.n_rows, mode)
    metas: list[dict] = []
    resumed = 0

    def prepare(start: int, table: pa.Table):
        chunk = _to_pandas(table, start)
        return chunk, _validate_chunk(model, chunk.frame, job["units"])

    def todo() -> Iterator[tuple[int, int, pa.Table]]:
        nonlocal resumed
        for index, start, table in chunks(src, job["chunk_rows"]):
            done = _finished(out, index)
            if done is not None and done.get("n_input") == table.num_rows:
                metas.append({**done, "resumed": True})
                resumed += 1
                bar.advance(table.num_rows, work=False)
                continue
            yield index, start, table

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plo-read") as pool:
            pending = None
            for index, start, table in todo():
                future = pool.submit(prepare, start, table)
                if pending is not None:
                    metas.append(_score_and_write(model, out, job, *pending))
                    bar.advance(metas[-1]["n_input"])
                pending = (index, start, future)
            if pending is not None:
                metas.append(_score_and_write(model, out, job, *pending))
                bar.advance(metas[-1]["n_input"])
    finally:
        bar.close()
    metas.sort(key=lambda m: m["part"])
    return metas, resumed


def _score_and_write(model, out: Path, job: dict, index: int, start: int, future):
    chunk, res = future.result()
    scored, rejects = _finish_chunk(
        model, chunk.frame, res, job["explain"], job["top_k"]
    )
    stats = _chunk_stats(chunk.frame, scored, job["fields"])
    return _write_part(out, index, start, chunk, scored, _with(rejects, chunk), stats)


def _with(rejects: pd.DataFrame, chunk: _Chunk) -> pd.DataFrame:
    """The chunk's reject entries: bad cells and unreadable rows, in row order."""
    if not len(chunk.unread):
        return rejects
    both = pd.concat([rejects, chunk.unread], ignore_index=True)
    return both.sort_values("row", kind="stable").reset_index(drop=True)


# -------------------------------------------------------------------- dask


_WORKER_MODELS: dict[str, Any] = {}


def _bundle_files(model) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "bundle")
        return {
            str(p.relative_to(path)): p.read_bytes()
            for p in sorted(path.rglob("*"))
            if p.is_file()
        }


def _worker_model(key: str, files: Mapping[str, bytes]):
    """The model on a dask worker: its bundle's files, loaded once per process."""
    if key not in _WORKER_MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                target = Path(tmp) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            _WORKER_MODELS[key] = RiskModel.load(tmp)
    return _WORKER_MODELS[key]


def _dask_chunk(piece: Piece, key: str, files, job: dict):
    """A dask task: read one piece of the input and score it, on the worker."""
    model = _worker_model(key, files)
    chunk = _to_pandas(read_piece(piece), piece.start)
    scored, rejects = score_frame(
        model,
        chunk.frame,
        explain=job["explain"],
        top_k=job["top_k"],
        units=job["units"],
    )
    stats = _chunk_stats(chunk.frame, scored, job["fields"])
    return chunk, scored, _with(rejects, chunk), stats


def _run_dask(model, src: Source, out: Path, job: dict, scheduler, mode: str):
    try:
        # optional: the dask extra, only for engine="dask"
        from distributed import Client, KilledWorker, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - the test extras install it
        raise ScoringError(
            "engine='dask' needs dask.distributed: pip install 'plo-risk[dask]'"
        ) from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=min(2, os.cpu_count() or 1),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="5s")
        except OSError as exc:
            raise ScoringError(
                f"dask scheduler {scheduler}: cannot connect ({exc})"
            ) from None
    bar = None
    try:
        # Each worker reads its own piece of the input with the local engine's
        # reader; the pieces' row counts come from Parquet footers or one pass
        # over the CSV's line ends.
        plan = pieces(src, job["chunk_rows"])
        bar = _Progress(sum(p.rows for p in plan), mode)
        files = _bundle_files(model)
        key = job["model_fingerprint"]
        files_future = client.scatter(files, broadcast=True)
        metas: dict[int, dict] = {}
        resumed = 0
        futures = {}
        for index, piece in enumerate(plan):
            done = _finished(out, index)
            if done is not None and done.get("n_input") == piece.rows:
                metas[index] = {**done, "resumed": True}
                resumed += 1
                bar.advance(piece.rows, work=False)
                continue
            fut = client.submit(_dask_chunk, piece, key, files_future, job, pure=False)
            futures[fut] = (index, piece.start)
        for fut in as_completed(list(futures)):
            index, start = futures[fut]
            try:
                chunk, scored, rejects, stats = fut.result()
            except KilledWorker as exc:
                # Its workers died each time they ran it (the scheduler's
                # allowed-failures): the parts written so far are kept.
                raise ScoringError(
                    f"piece {index} (input rows {start}-{start + plan[index].rows - 1}) "
                    f"killed every dask worker that ran it ({exc}); the "
                    f"{len(metas)} parts finished are kept: run the same command "
                    "again to resume"
                ) from None
            metas[index] = _write_part(out, index, start, chunk, scored, rejects, stats)
            bar.advance(chunk.n_input)
    finally:
        if bar is not None:
            bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return [metas[i] for i in sorted(metas)], resumed


# ------------------------------------------------------------------- finish


def _finish(out: Path, job: dict, metas, resumed: int, model, seconds: float):
    n_input = sum(m["n_input"] for m in metas)
    n_scored = sum(m["n_scored"] for m in metas)
    n_rejected = sum(m["n_rejected"] for m in metas)
    n_flagged = sum(m["n_flagged"] for m in metas)
    n_unreadable = sum(m.get("n_unreadable", 0) for m in metas)
    if n_scored + n_rejected + n_unreadable != n_input:  # pragma: no cover
        raise ScoringError(  # an internal invariant
            f"{out}: {n_scored} scored + {n_rejected} rejected + {n_unreadable} "
            f"unreadable != {n_input} input rows"
        )
    n_resumed_rows = sum(m["n_input"] for m in metas if m.get("resumed"))
    empty, mean_risk, notes = _review(job, metas, model, n_scored)
    parts = [out / _PART.format(m["part"]) for m in metas]
    rejects = [out / _REJECTS / _PART.format(m["part"]) for m in metas]
    manifest = {
        **{k: job[k] for k in ("model_version", "input", "input_fingerprint")},
        "options": {
            k: job[k] for k in ("chunk_rows", "explain", "top_k", "units", "engine")
        },
        "n_input": n_input,
        "n_scored": n_scored,
        "n_rejected": n_rejected,
        "n_unreadable": n_unreadable,
        "n_flagged": n_flagged,
        "mean_risk": mean_risk,
        "ignored_columns": job["ignored_columns"],
        "empty_columns": empty,
        "warnings": notes,
        "parts": [p.name for p in parts],
        "plo_risk_version": package_version(),
    }
    write_text_atomic(out / _MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    (out / _SUCCESS).write_text("")
    for note in notes:
        warnings.warn(note, ScoringWarning, stacklevel=3)
    return ScoreSummary(
        n_input=n_input,
        n_scored=n_scored,
        n_rejected=n_rejected,
        n_flagged=n_flagged,
        seconds=seconds,
        out_dir=out,
        parts=parts,
        rejects=rejects,
        manifest=out / _MANIFEST,
        resumed_parts=resumed,
        model_version=model.version,
        n_resumed_rows=n_resumed_rows,
        ignored_columns=list(job["ignored_columns"]),
        empty_columns=empty,
        mean_risk=mean_risk,
        warnings=notes,
        n_unreadable=n_unreadable,
    )


def _review(job: dict, metas, model, n_scored: int):
    """Empty columns, the mean risk, and the warnings of a finished run."""
    filled: dict[str, int] = {}
    for m in metas:
        for c, k in (m.get("stats") or {}).get("non_missing", {}).items():
            filled[c] = filled.get(c, 0) + k
    empty = [c for c in job["fields"] if filled.get(c, 0) == 0] if metas else []
    sum_risk = sum((m.get("stats") or {}).get("sum_risk", 0.0) for m in metas)
    mean_risk = sum_risk / n_scored if n_scored else float("nan")
    notes = []
    if empty:
        notes.append(
            f"{len(empty)} catalog column(s) are empty in every row, so every row "
            f"was scored without them: {', '.join(empty)}"
        )
    base = float(getattr(model.model, "prevalence_", float("nan")))
    fix = (
        "if this cohort comes from another setting, score it with --prevalence "
        "(or --setting population), which moves the model's intercept"
    )
    if (
        n_scored
        and base > 0
        and not (1 / _EXPECTED_WARN <= mean_risk / base <= _EXPECTED_WARN)
    ):
        notes.append(
            f"the mean risk of this cohort ({mean_risk:.3%}) is "
            f"{mean_risk / base:.1f} times the model's setting ({base:.3%}); {fix}"
        )
    observed = expected = 0.0
    n_outcome = 0
    for m in metas:
        o = (m.get("stats") or {}).get("outcome")
        if o:
            n_outcome += o["n"]
            observed += o["observed"]
            expected += o["expected"]
    if n_outcome and expected > 0:
        ratio = observed / expected
        # With fewer than 10 events either way a 3-fold gap is chance (Poisson:
        # P(0 | 10 expected) < 5e-5, P(<= 3 | 10) = 0.01).
        off = not 1 / _EXPECTED_WARN <= ratio <= _EXPECTED_WARN
        if off and max(observed, expected) >= 10:
            notes.append(
                f"the cohort's observed fractures ({observed:,.0f}) are {ratio:.2f} "
                f"times the expected ({expected:,.1f}); {fix}"
            )
    return empty, mean_risk, notes

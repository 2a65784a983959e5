"""The data-quality report of an ingestion, and its last step: validation."""

from __future__ import annotations

import datetime as _dt
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console, Group
from rich.table import Table

from plo_risk.data.catalog import Catalog
from plo_risk.data.ingest.common import MappingError, Prepared, shown
from plo_risk.data.schema import (
    ID_COLUMN,
    OUTCOME_COLUMN,
    Problem,
    ValidationError,
    validate_frame,
)
from plo_risk.utils.atomic import write_text_atomic

__all__ = ["IngestResult", "QualityReport", "finish"]

_REJECT_COLUMNS = ("row", "field", "value", "reason", "message")
_UNRECOVERED_COLUMNS = ("row", ID_COLUMN, "field", "column", "value", "reason")


def _kind(reason: str) -> str:
    if reason.startswith(
        ("must be a number between", "must be a whole number between")
    ):
        return "out_of_range"
    if reason.startswith("is required"):
        return "missing_required"
    if reason.startswith("implies"):
        return "implausible_derived"
    if reason.startswith("unit"):
        return "unknown_unit"
    if "not a date" in reason:
        return "bad_date"
    return "invalid_value"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        x = float(value)
        return None if math.isnan(x) else x
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if value is pd.NA:
        return None
    return str(value)


@dataclass
class QualityReport:
    """What ingestion did to a registry source and what it could not recover.

    Attributes
    ----------
    source : str
        The file, ``DataFrame`` or the database URL (password hidden).
    n_source_rows, n_rows, n_rejected_rows : int
        Rows read, rows in the validated frame, rows sent to ``rejects``.
    missingness : dict
        ``{field: {"n_missing": int, "share": float}}`` over the validated frame,
        every catalog field (a field not mapped is missing everywhere).
    missing_by_site : dict
        ``{field: {site: share}}`` when the mapping names a ``site`` column.
    out_of_range : dict
        ``{field: n}`` cells outside the catalog range (blanked or rejected).
    unit_conversions : list of dict
        ``{field, column, from_unit, to_unit, n_cells}``.
    missing_tokens, recoded : dict
        ``{field: n}`` cells read as missing from a token (``"unknown"``...) and
        cells whose spelling the mapping recoded.
    duplicates : dict
        ``n_rows_removed``, ``n_patients`` (ids on more than one row) and
        ``conflicts`` (``{field: n}`` patients whose rows disagreed; the first
        non-missing value is kept).
    unmapped_columns, absent_columns : list of str
        Source columns the mapping does not read; optional mapped columns absent.
    rejected : pandas.DataFrame
        Counts of the rejected rows' problems: ``field``, ``reason``, ``n``.
    blanked : pandas.DataFrame
        Counts of the cells set missing (``invalid: blank``): ``field``, ``reason``,
        ``n``.
    unrecovered : pandas.DataFrame
        Every source cell that held a value but is not in the validated frame,
        when known: ``row``, ``patient_id``, ``field``, ``column``, ``value``,
        ``reason``. Cells of rejected rows are listed too.
    unmapped_concepts : list of dict
        OMOP sources: records that look like a fracture or a delivery (by concept
        name or ICD-10 source code) under a concept the concept map does not read,
        so not read as an outcome or a delivery. One entry per concept (per source
        value for concept 0): ``table``, ``concept_id``, ``concept_name``,
        ``source_value`` (an example), ``looks_like`` (``"fracture"`` or
        ``"delivery"``), ``n_records``, ``n_persons``; most records first.
    """

    source: str
    n_source_rows: int
    n_rows: int
    n_rejected_rows: int
    missingness: dict[str, dict[str, float]]
    missing_by_site: dict[str, dict[str, float]]
    out_of_range: dict[str, int]
    unit_conversions: list[dict[str, Any]]
    missing_tokens: dict[str, int]
    recoded: dict[str, int]
    duplicates: dict[str, Any]
    unmapped_columns: list[str]
    absent_columns: list[str]
    rejected: pd.DataFrame
    blanked: pd.DataFrame
    unrecovered: pd.DataFrame
    unmapped_concepts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready Python objects."""
        return _jsonable(
            {
                "source": self.source,
                "n_source_rows": self.n_source_rows,
                "n_rows": self.n_rows,
                "n_rejected_rows": self.n_rejected_rows,
                "missingness": self.missingness,
                "missing_by_site": self.missing_by_site,
                "out_of_range": self.out_of_range,
                "unit_conversions": self.unit_conversions,
                "missing_tokens": self.missing_tokens,
                "recoded": self.recoded,
                "duplicates": self.duplicates,
                "unmapped_columns": self.unmapped_columns,
                "absent_columns": self.absent_columns,
                "rejected": self.rejected.to_dict(orient="records"),
                "blanked": self.blanked.to_dict(orient="records"),
                "unrecovered": self.unrecovered.to_dict(orient="records"),
                "unmapped_concepts": self.unmapped_concepts,
            }
        )

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON (atomically: nothing half-written)."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    # -- text -----------------------------------------------------------------

    def _summary_rows(self) -> list[tuple[str, str]]:
        dup = self.duplicates
        conflicts = ", ".join(f"{k} {v}" for k, v in dup.get("conflicts", {}).items())
        rows = [
            ("source", self.source),
            ("rows read", f"{self.n_source_rows:,}"),
            ("rows out (validated)", f"{self.n_rows:,}"),
            ("rows rejected", f"{self.n_rejected_rows:,}"),
            (
                "duplicates merged",
                f"{dup.get('n_rows_removed', 0):,} rows of "
                f"{dup.get('n_patients', 0):,} patients"
                + (f" (disagreeing: {conflicts})" if conflicts else ""),
            ),
            ("cells set missing (unreadable)", f"{int(self.blanked['n'].sum()):,}"),
            ("cells not recovered (listed)", f"{len(self.unrecovered):,}"),
            (
                "unmapped source columns",
                ", ".join(self.unmapped_columns) or "none",
            ),
        ]
        if self.absent_columns:
            rows.append(("optional columns absent", ", ".join(self.absent_columns)))
        if self.unmapped_concepts:
            kinds: dict[str, int] = {}
            for u in self.unmapped_concepts:
                kinds[u["looks_like"]] = kinds.get(u["looks_like"], 0) + u["n_records"]
            rows.append(
                (
                    "records under unmapped concepts (not read)",
                    ", ".join(
                        f"{n:,} look like a {kind}" for kind, n in sorted(kinds.items())
                    )
                    + f" ({len(self.unmapped_concepts)} concept(s), listed below)",
                )
            )
        return rows

    _UNMAPPED_HEADER = (
        "table",
        "concept_id",
        "concept_name",
        "source value",
        "looks like",
        "records",
        "persons",
    )

    def _unmapped_rows(self) -> list[tuple[str, ...]]:
        return [
            (
                u["table"],
                str(u["concept_id"]),
                u["concept_name"] or "",
                u["source_value"] or "",
                u["looks_like"],
                f"{u['n_records']:,}",
                f"{u['n_persons']:,}",
            )
            for u in self.unmapped_concepts
        ]

    def _field_rows(self) -> list[tuple[str, ...]]:
        conv: dict[str, list[str]] = {}
        for c in self.unit_conversions:
            conv.setdefault(c["field"], []).append(
                f"{c['from_unit']}→{c['to_unit']} ({c['n_cells']:,})"
            )
        blanked = self.blanked.groupby("field")["n"].sum().to_dict()
        rejected = self.rejected.groupby("field")["n"].sum().to_dict()
        rows = []
        for name, miss in self.missingness.items():
            rows.append(
                (
                    name,
                    f"{100 * miss['share']:.1f}%",
                    str(self.out_of_range.get(name, 0) or ""),
                    "; ".join(conv.get(name, [])),
                    str(self.recoded.get(name, 0) or ""),
                    str(self.missing_tokens.get(name, 0) or ""),
                    str(blanked.get(name, 0) or ""),
                    str(rejected.get(name, 0) or ""),
                )
            )
        return rows

    _FIELD_HEADER = (
        "field",
        "missing",
        "out of range",
        "unit conversions (cells)",
        "recoded",
        "missing tokens",
        "set missing",
        "rejected",
    )

    def __rich__(self):

        summary = Table(title="Registry ingestion: data quality", show_header=False)
        summary.add_column("what")
        summary.add_column("value", overflow="fold")
        for k, v in self._summary_rows():
            summary.add_row(k, v)
        fields = Table(title="Per field")
        for col in self._FIELD_HEADER:
            fields.add_column(col, justify="left" if col == "field" else "right")
        for row in self._field_rows():
            fields.add_row(*row)
        parts = [summary, fields]
        if len(self.rejected) or len(self.blanked):
            why = Table(title="Unreadable cells by field and reason")
            for col in ("field", "reason", "set missing", "rows rejected"):
                why.add_column(col, justify="right" if "missing" in col else "left")
            for row in self._reason_rows():
                why.add_row(row[0], row[1], str(row[2] or ""), str(row[3] or ""))
            parts.append(why)
        if self.unmapped_concepts:
            unmapped = Table(
                title="Records under concepts the concept map does not read "
                "(fracture or delivery?)"
            )
            for col in self._UNMAPPED_HEADER:
                unmapped.add_column(
                    col, justify="right" if col in ("records", "persons") else "left"
                )
            for row in self._unmapped_rows():
                unmapped.add_row(*row)
            parts.append(unmapped)
        return Group(*parts)

    def _reason_rows(self) -> list[tuple[str, str, int, int]]:
        merged: dict[tuple[str, str], list[int]] = {}
        for frame, i in ((self.blanked, 0), (self.rejected, 1)):
            for rec in frame.itertuples(index=False):
                merged.setdefault((rec.field, rec.reason), [0, 0])[i] += int(rec.n)
        return [(f, r, b, j) for (f, r), (b, j) in merged.items()]

    def __str__(self) -> str:

        buf = io.StringIO()
        Console(file=buf, width=120, color_system=None, force_terminal=False).print(
            self
        )
        return buf.getvalue()

    # -- html -----------------------------------------------------------------

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML page of the report (atomically).

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Path
        """
        e = html.escape

        def table(header, rows) -> str:
            head = "".join(f"<th>{e(str(h))}</th>" for h in header)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>"
                for r in rows
            )
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

        sections = [
            "<h1>Registry ingestion: data quality</h1>",
            table(("what", "value"), self._summary_rows()),
            "<h2>Per field</h2>",
            table(self._FIELD_HEADER, self._field_rows()),
        ]
        if self.unit_conversions:
            sections += [
                "<h2>Unit conversions</h2>",
                table(
                    ("field", "column", "from", "to", "cells"),
                    [
                        (
                            c["field"],
                            c["column"],
                            c["from_unit"],
                            c["to_unit"],
                            f"{c['n_cells']:,}",
                        )
                        for c in self.unit_conversions
                    ],
                ),
            ]
        if len(self.rejected) or len(self.blanked):
            sections += [
                "<h2>Unreadable cells by field and reason</h2>",
                table(
                    ("field", "reason", "set missing", "rows rejected"),
                    self._reason_rows(),
                ),
            ]
        if self.unmapped_concepts:
            sections += [
                "<h2>Records under concepts the concept map does not read "
                "(fracture or delivery?)</h2>",
                table(self._UNMAPPED_HEADER, self._unmapped_rows()),
            ]
        if self.missing_by_site:
            sites = sorted({s for v in self.missing_by_site.values() for s in v})
            sections += [
                "<h2>Missing share by site</h2>",
                table(
                    ("field", *sites),
                    [
                        (f, *(f"{100 * v.get(s, float('nan')):.1f}%" for s in sites))
                        for f, v in self.missing_by_site.items()
                    ],
                ),
            ]
        limit = 500
        if len(self.unrecovered):
            shown = self.unrecovered.head(limit)
            sections += [
                f"<h2>Cells not recovered ({len(self.unrecovered):,}"
                + (f", first {limit} shown" if len(self.unrecovered) > limit else "")
                + ")</h2>",
                table(_UNRECOVERED_COLUMNS, shown.itertuples(index=False)),
            ]
        style = (
            "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
            "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
            "th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px;"
            "text-align:left}th{background:#f0f0f0}"
        )
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        doc = (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>plo_risk ingestion quality</title><style>{style}</style></head>"
            f"<body>{''.join(sections)}<p><small>plo_risk, {e(stamp)}</small></p>"
            "</body></html>\n"
        )
        return write_text_atomic(path, doc)


@dataclass
class IngestResult:
    """What :func:`ingest` returns.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``validate_frame(...).valid``: ``patient_id`` (when mapped), the catalog
        fields in canonical units, ``fracture`` (when mapped), indexed by the
        source row number (for OMOP: the person's position).
    rejects : pandas.DataFrame
        One row per bad cell of a rejected row: ``row``, ``field``, ``value``,
        ``reason``, ``message`` (the columns of ``validate_frame``'s rejects).
    quality : QualityReport
    """

    frame: pd.DataFrame
    rejects: pd.DataFrame
    quality: QualityReport

    def __repr__(self) -> str:
        return (
            f"IngestResult(frame={len(self.frame):,} rows, "
            f"rejects={self.quality.n_rejected_rows:,} rows)"
        )


# ------------------------------------------------------------------ the pipeline


def _merge_duplicates(prep: Prepared) -> dict[str, Any]:
    """Merge rows sharing a patient id in place: first non-missing value wins."""
    info: dict[str, Any] = {"n_rows_removed": 0, "n_patients": 0, "conflicts": {}}
    df = prep.frame
    if ID_COLUMN not in df.columns or prep.duplicates != "merge":
        return info
    ids = df[ID_COLUMN]
    dup = ids.notna() & ids.duplicated(keep=False)
    if not dup.any():
        return info
    sub = df[dup]
    grouped = sub.groupby(ID_COLUMN, sort=False)
    first = grouped.first()
    counts = grouped.nunique(dropna=True)
    conflicts = {
        c: int((counts[c] > 1).sum()) for c in counts.columns if (counts[c] > 1).any()
    }
    keep_rows = sub.index[~sub[ID_COLUMN].duplicated(keep="first")]
    drop_rows = sub.index[sub[ID_COLUMN].duplicated(keep="first")]
    first_of = pd.Series(keep_rows, index=sub.loc[keep_rows, ID_COLUMN].to_numpy())
    merged = first.loc[sub.loc[keep_rows, ID_COLUMN].to_numpy()]
    merged.index = keep_rows
    for col in merged.columns:
        df[col] = df[col].astype(object)
        df.loc[keep_rows, col] = merged[col].to_numpy(dtype=object)
    # A problem found on a dropped copy now belongs to the kept row, unless the
    # merged row got a value for that field from another copy.
    row_map = dict(
        zip(
            drop_rows,
            first_of.loc[df.loc[drop_rows, ID_COLUMN]].to_numpy(),
            strict=True,
        )
    )
    problems = []
    for row, name, value, reason in prep.problems:
        row = row_map.get(row, row)
        if row in row_map.values() and pd.notna(df.at[row, name]):
            continue
        problems.append((row, name, value, reason))
    prep.problems = problems
    if prep.site is not None:
        prep.site = prep.site.drop(index=drop_rows)
    prep.frame = df.drop(index=drop_rows)
    info.update(
        n_rows_removed=len(drop_rows),
        n_patients=len(keep_rows),
        conflicts=dict(sorted(conflicts.items())),
    )
    return info


def finish(prep: Prepared, catalog: Catalog) -> IngestResult:
    n_source = len(prep.frame)
    dup_info = _merge_duplicates(prep)
    work = prep.frame
    ids = work[ID_COLUMN] if ID_COLUMN in work.columns else None
    # Pre-validation problems (units, dates): their cells are already missing.
    pre = pd.DataFrame(prep.problems, columns=["row", "field", "value", "reason"])
    blanked_cells: list[dict[str, Any]] = []
    pre_reject_rows: set = set()
    for rec in pre.itertuples(index=False):
        feat = catalog[rec.field] if rec.field in catalog else None
        if prep.invalid == "blank" and feat is not None and feat.missing:
            blanked_cells.append(_cell(rec.row, rec.field, rec.value, rec.reason))
        else:
            pre_reject_rows.add(rec.row)
    try:
        res = validate_frame(work, units=prep.units, catalog=catalog)
        for _ in range(5):
            if prep.invalid != "blank" or not len(res.rejects):
                break
            optional = res.rejects["field"].map(
                lambda f: f in catalog and catalog[f].missing
            )
            fixable = res.rejects[optional.astype(bool)]
            if not len(fixable):
                break
            for rec in fixable.itertuples(index=False):
                blanked_cells.append(_cell(rec.row, rec.field, rec.value, rec.reason))
                work.at[rec.row, rec.field] = np.nan
            res = validate_frame(work, units=prep.units, catalog=catalog)
    except ValidationError as exc:  # frame-level: a mapping that does not fit
        raise MappingError(f"{prep.source_name}: {exc}") from None

    valid = res.valid
    rejects = res.rejects
    if pre_reject_rows:
        pre_rej = pre[pre["row"].isin(pre_reject_rows)]
        extra = pd.DataFrame(
            {
                "row": pre_rej["row"].to_numpy(),
                "field": pre_rej["field"].to_numpy(),
                "value": [shown(v) for v in pre_rej["value"]],
                "reason": pre_rej["reason"].to_numpy(),
                "message": [
                    Problem(f, v, r).message
                    for f, v, r in zip(
                        pre_rej["field"],
                        pre_rej["value"],
                        pre_rej["reason"],
                        strict=True,
                    )
                ],
            }
        )
        rejects = (
            pd.concat([rejects, extra], ignore_index=True)
            .sort_values("row", kind="stable")
            .reset_index(drop=True)
        )
        valid = valid.drop(index=[r for r in pre_reject_rows if r in valid.index])
    rejected_rows = sorted(set(rejects["row"]))

    # Unrecovered cells: blanked ones, and every given cell of a rejected row.
    unrecovered = [
        {
            **c,
            ID_COLUMN: _id_at(ids, c["row"]),
            "column": prep.columns.get(c["field"], ""),
        }
        for c in blanked_cells
    ]
    if rejected_rows:
        first_reason = rejects.groupby("row", sort=False)["message"].first()
        for row in rejected_rows:
            for name in work.columns:
                if name not in catalog and name != OUTCOME_COLUMN:
                    continue
                value = work.at[row, name]
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                unrecovered.append(
                    {
                        "row": row,
                        ID_COLUMN: _id_at(ids, row),
                        "field": name,
                        "column": prep.columns.get(name, ""),
                        "value": shown(value),
                        "reason": f"row rejected: {first_reason[row]}",
                    }
                )
    unrec = pd.DataFrame(unrecovered, columns=list(_UNRECOVERED_COLUMNS))
    unrec = unrec.sort_values(["row"], kind="stable").reset_index(drop=True)

    blanked_counts = _counts(
        pd.DataFrame(blanked_cells, columns=["row", "field", "value", "reason"])
    )
    rejected_counts = _counts(rejects)
    out_of_range: dict[str, int] = {}
    for frame in (blanked_counts, rejected_counts):
        for rec in frame.itertuples(index=False):
            if _kind(rec.reason) == "out_of_range":
                out_of_range[rec.field] = out_of_range.get(rec.field, 0) + int(rec.n)

    missingness = {}
    for feat in catalog:
        col = valid[feat.name]
        n_missing = int(col.isna().sum())
        missingness[feat.name] = {
            "n_missing": n_missing,
            "share": n_missing / len(valid) if len(valid) else float("nan"),
        }
    by_site: dict[str, dict[str, float]] = {}
    if prep.site is not None and len(valid):
        site = prep.site.reindex(valid.index).fillna("(none)").astype(str)
        shares = valid[catalog.names].isna().groupby(site.to_numpy()).mean()
        by_site = {
            f: {str(s): float(shares.at[s, f]) for s in shares.index}
            for f in catalog.names
        }
    quality = QualityReport(
        source=prep.source_name,
        n_source_rows=n_source,
        n_rows=len(valid),
        n_rejected_rows=len(rejected_rows),
        missingness=missingness,
        missing_by_site=by_site,
        out_of_range=dict(sorted(out_of_range.items())),
        unit_conversions=prep.conversions,
        missing_tokens=prep.missing_tokens,
        recoded=prep.recoded,
        duplicates=dup_info,
        unmapped_columns=prep.unmapped,
        absent_columns=prep.absent,
        rejected=rejected_counts,
        blanked=blanked_counts,
        unrecovered=unrec,
        unmapped_concepts=list(prep.unmapped_concepts),
    )
    return IngestResult(valid, rejects.loc[:, list(_REJECT_COLUMNS)], quality)


def _cell(row, name, value, reason) -> dict[str, Any]:
    return {"row": row, "field": name, "value": shown(value), "reason": reason}


def _id_at(ids: pd.Series | None, row) -> Any:
    if ids is None:
        return None
    return ids.get(row)


def _counts(frame: pd.DataFrame) -> pd.DataFrame:
    if not len(frame):
        return pd.DataFrame(
            {
                "field": pd.Series([], dtype=object),
                "reason": pd.Series([], dtype=object),
                "n": pd.Series([], dtype="int64"),
            }
        )
    out = (
        frame.groupby(["field", "reason"], sort=False).size().rename("n").reset_index()
    )
    return out.sort_values("n", ascending=False, kind="stable").reset_index(drop=True)

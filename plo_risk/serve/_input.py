"""Reading a cohort file for scoring: every row comes out, read or marked unreadable.

A CSV is cut into rows by its line ends, here and not by pyarrow, so that a row's
position is known whatever happens inside it: one non-empty line is one row (a
quoted value cannot hold a line end, as with pyarrow's default
``newlines_in_values=False``). Each block of ``chunk_rows`` lines is parsed by pyarrow
with every column as text; when pyarrow refuses the block (a ragged line, a byte
that is not UTF-8, an unterminated quote, a field larger than pyarrow's block), the
block is parsed again line by line, and each line that cannot be read becomes a row
marked with its line number and reason (:data:`LINE_ERROR`). The other rows of the
block are read exactly as pyarrow reads them (the same null tokens).

A Parquet input is read row group by row group. A row group that cannot be decoded
becomes as many rows as its footer counts, marked :data:`LOST` with the file, the row
group and the reason: the rows are lost, but counted. The files of a folder are
never cast to one another's types: a chunk holds the rows of one schema only.

Both markers are extra text columns of every chunk; the scoring turns marked rows
into reject entries (:mod:`plo_risk.serve.scoring`).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "LINE_ERROR",
    "LOST",
    "Piece",
    "Source",
    "SourceError",
    "chunks",
    "columns",
    "fingerprint",
    "open_source",
    "pieces",
    "read_piece",
]

# Marker columns: why a row could not be read (None for a row that was read).
LINE_ERROR = "__plo_risk_line_error__"
LOST = "__plo_risk_lost__"
# Only an empty cell is null here, in pyarrow and in the line-by-line fallback
# alike: which words mean missing (NA, NULL, ...) is decided by validation
# (plo_risk.data.schema.is_missing), so a file and a record get one verdict and
# a patient id "NA" stays "NA".
NULL_TOKENS = frozenset({""})
# Bytes read from a CSV at a time while looking for line ends.
_READ_BYTES = 16 << 20
# Python's csv module refuses longer fields; no catalog value comes near it.
_FIELD_LIMIT = csv.field_size_limit()
_ERRORS = (pa.ArrowException, OSError, ValueError, EOFError, gzip.BadGzipFile)


class SourceError(ValueError):
    """The input as a whole cannot be read (scoring raises it as a ScoringError)."""


@dataclass(frozen=True)
class Source:
    kind: str  # "parquet" or "csv"
    files: tuple[Path, ...]

    @property
    def n_rows(self) -> int | None:
        if self.kind != "parquet":
            return None
        return sum(_parquet(f).metadata.num_rows for f in self.files)


def open_source(source: str | os.PathLike) -> Source:
    """The input's kind and files; a folder is read as its ``*.parquet`` files."""
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".parquet")
        if not files:
            raise SourceError(f"{path}: a folder without *.parquet files")
        kind = "parquet"
    else:
        suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
        if suffix in (".parquet", ".pq"):
            kind = "parquet"
        elif suffix in (".csv", ".csv.gz"):
            kind = "csv"
        else:
            raise SourceError(
                f"{path}: unknown input type {suffix!r}; allowed: .csv, .csv.gz, "
                ".parquet or a folder of .parquet files"
            )
        files = [path]
    for f in files:
        if not f.is_file():
            raise SourceError(f"{f}: not a regular file")
        if kind == "parquet":
            _parquet(f)
    return Source(kind, tuple(files))


def _parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, pre_buffer=False)
    except _ERRORS as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None


def columns(src: Source) -> list[str]:
    """The input's column names, read from the Parquet schema or the CSV header."""
    if src.kind == "parquet":
        names = [_parquet(f).schema_arrow.names for f in src.files]
        for f, other in zip(src.files[1:], names[1:], strict=True):
            if other != names[0]:
                raise SourceError(
                    f"{f}: its columns differ from {src.files[0].name}'s; the files "
                    "of a folder must share one set of columns"
                )
        return [c for c in names[0] if not c.startswith("__index_level_")]
    return _header(src.files[0])[1]


def fingerprint(src: Source) -> str:
    """sha256 over the input files' names, sizes and contents."""
    h = hashlib.sha256()
    for f in src.files:
        h.update(f.name.encode())
        h.update(str(f.stat().st_size).encode())
        with open(f, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


# ----------------------------------------------------------------------- CSV


def _open_bytes(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def _header(path: Path) -> tuple[bytes, list[str]]:
    """The header line's bytes (with its line end) and the column names."""
    try:
        with _open_bytes(path) as fh:
            line = fh.readline(_FIELD_LIMIT)
    except _ERRORS as exc:
        raise SourceError(f"{path}: not a readable CSV file ({exc})") from None
    try:
        text = line.decode("utf-8-sig")
        names = next(csv.reader([text.rstrip("\r\n")], strict=True), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path}: the header line cannot be read ({exc})") from None
    if not names or (not line.endswith(b"\n") and len(line) >= _FIELD_LIMIT):
        raise SourceError(f"{path}: not a readable CSV file (no header line)")
    return line, names


def _nonblank(buf: bytes, ends: np.ndarray) -> np.ndarray:
    """Which lines ending at ``ends`` (positions of their newline) hold something."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    length = ends - starts
    return (length > 1) | (
        (length == 1) & (arr[np.minimum(starts, len(arr) - 1)] != 13)
    )


@dataclass(frozen=True)
class _Block:
    data: bytes  # whole lines
    offset: int  # byte offset of data in the (decompressed) file
    line: int  # physical line number (1-based) of its first line
    rows: int  # non-empty lines in it


def _line_blocks(
    path: Path, chunk_rows: int, *, offset: int | None = None, line: int = 2
) -> Iterator[_Block]:
    """Blocks of exactly ``chunk_rows`` non-empty lines (the last may be shorter)."""
    header, _ = _header(path)
    pos = len(header) if offset is None else offset
    pending = b""
    eof = False
    with _open_bytes(path) as fh:
        fh.seek(pos)
        while True:
            if not eof:
                data = fh.read(max(_READ_BYTES, chunk_rows * 400))
                eof = not data
                pending += data
            if eof and pending and not pending.endswith(b"\n"):
                pending += b"\n"
            ends = np.flatnonzero(np.frombuffer(pending, dtype=np.uint8) == 10)
            filled = np.cumsum(_nonblank(pending, ends)) if len(ends) else ends
            while len(ends) and (filled[-1] >= chunk_rows or eof):
                k = (
                    int(np.searchsorted(filled, chunk_rows))
                    if filled[-1] >= chunk_rows
                    else len(ends) - 1
                )
                cut = int(ends[k]) + 1
                rows = int(filled[k])
                if rows:
                    yield _Block(pending[:cut], pos, line, rows)
                pos += cut
                line += k + 1
                pending = pending[cut:]
                ends = ends[k + 1 :] - cut
                filled = filled[k + 1 :] - rows
            if eof:
                return


def _csv_table(block: _Block, names: list[str]) -> pa.Table:
    """The block's rows as text columns, plus the two marker columns."""
    try:
        table = pacsv.read_csv(
            pa.py_buffer(block.data),
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                null_values=sorted(NULL_TOKENS),
            ),
        )
    except _ERRORS:
        table = None
    if table is not None and table.num_rows == block.rows:
        n = table.num_rows
        return table.append_column(LINE_ERROR, pa.nulls(n, pa.string())).append_column(
            LOST, pa.nulls(n, pa.string())
        )
    return _csv_lines(block, names)


def _csv_lines(block: _Block, names: list[str]) -> pa.Table:
    """The block parsed line by line: the lines pyarrow refused are marked."""
    cells: list[list[str | None]] = [[] for _ in names]
    marks: list[str | None] = []
    lines = block.data.split(b"\n")[:-1]
    for i, raw in enumerate(lines):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if not raw:
            continue
        fields, reason = _csv_line(raw, len(names))
        number = f"line {block.line + i:,}"
        if reason is not None:
            marks.append(f"{number}: {reason}")
            for col in cells:
                col.append(None)
            continue
        marks.append(None)
        for col, value in zip(cells, fields, strict=True):
            col.append(None if value in NULL_TOKENS else value)
    arrays = [pa.array(col, pa.string()) for col in cells]
    arrays += [pa.array(marks, pa.string()), pa.nulls(len(marks), pa.string())]
    return pa.Table.from_arrays(arrays, names=[*names, LINE_ERROR, LOST])


def _csv_line(raw: bytes, n_columns: int) -> tuple[list[str], str | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], (
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}); "
            "save the file as UTF-8"
        )
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        return [], f"cannot be split into fields ({exc})"
    if len(fields) != n_columns:
        return [], f"{len(fields)} fields where the header has {n_columns}"
    return fields, None


# ------------------------------------------------------------------- Parquet


def _row_groups(path: Path, batch_rows: int) -> Iterator[pa.Table]:
    """The file's rows in tables of at most ``batch_rows``, each row group that
    cannot be decoded replaced by as many rows marked :data:`LOST`."""
    pf = _parquet(path)
    for group in range(pf.num_row_groups):
        n = pf.metadata.row_group(group).num_rows
        done = 0
        try:
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[group]):
                table = pa.Table.from_batches([batch])
                done += table.num_rows
                yield _marked(table, None)
        except _ERRORS as exc:
            yield _lost(pf, path, group, exc, n - done)


def _lost(pf: pq.ParquetFile, path: Path, group: int, exc: Exception, n: int):
    """``n`` rows of a row group that cannot be decoded, marked with the reason."""
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    reason = (
        f"{path.name}, row group {group + 1} of {pf.num_row_groups}: cannot be "
        f"read ({first})"
    )
    return _marked(pf.schema_arrow.empty_table(), reason, n, pf.schema_arrow)


def _marked(
    table: pa.Table, lost: str | None, n: int = 0, schema: pa.Schema | None = None
) -> pa.Table:
    if lost is not None:
        table, _ = _plain(
            pa.Table.from_arrays(
                [pa.nulls(n, f.type) for f in schema], schema=schema
            ).replace_schema_metadata(None)
        )
        marks = pa.array([lost] * n, pa.string())
        line = pa.nulls(n, pa.string())
    else:
        table, line = _plain(table.replace_schema_metadata(None))
        marks = pa.nulls(table.num_rows, pa.string())
    return table.append_column(LINE_ERROR, line).append_column(LOST, marks)


def _plain(table: pa.Table) -> tuple[pa.Table, pa.Array]:
    """Nested columns as their text (so a list cell is rejected like any bad
    value), bytes as UTF-8 text; a row with bytes that are not UTF-8 is marked."""
    bad: list[str | None] = [None] * table.num_rows
    for i, f in enumerate(table.schema):
        t = f.type
        if pa.types.is_nested(t):
            values = [
                None if v is None else json.dumps(v, default=str)
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, f.name, pa.array(values, pa.string()))
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            values = []
            for row, v in enumerate(table.column(i).to_pylist()):
                try:
                    values.append(None if v is None else v.decode("utf-8"))
                except UnicodeDecodeError:
                    values.append(None)
                    bad[row] = (
                        bad[row] or f"{f.name} holds bytes that are not UTF-8 text"
                    )
            table = table.set_column(i, f.name, pa.array(values, pa.string()))
    return table, pa.array(bad, pa.string())


# -------------------------------------------------------------------- chunks


def _tables(src: Source, chunk_rows: int) -> Iterator[pa.Table]:
    for f in src.files:
        if src.kind == "parquet":
            yield from _row_groups(f, chunk_rows)
        else:
            _, names = _header(f)
            for block in _line_blocks(f, chunk_rows):
                yield _csv_table(block, names)


def chunks(src: Source, chunk_rows: int) -> Iterator[tuple[int, int, pa.Table]]:
    """(index, first row, table) of consecutive chunks of ``chunk_rows`` rows.

    The reader's batch sizes depend on row groups and CSV blocks; re-slicing them
    makes the chunks, and so the part files, the same whatever the file layout.
    A chunk holds rows of one schema: where a file of a folder has other column
    types than the one before, the chunk ends early, so no value is ever cast to
    another file's type.
    """
    pending: list[pa.Table] = []
    n_pending = 0
    index = start = 0
    for table in _tables(src, chunk_rows):
        if pending and table.schema != pending[0].schema:
            yield index, start, pa.concat_tables(pending)
            index, start = index + 1, start + n_pending
            pending, n_pending = [], 0
        pending.append(table)
        n_pending += table.num_rows
        while n_pending >= chunk_rows:
            whole = pa.concat_tables(pending)
            yield index, start, whole.slice(0, chunk_rows)
            rest = whole.slice(chunk_rows)
            pending, n_pending = [rest], rest.num_rows
            index += 1
            start += chunk_rows
    if n_pending:
        yield index, start, pa.concat_tables(pending)


# --------------------------------------------------------- pieces for dask


@dataclass(frozen=True)
class Piece:
    """A part of the input a dask worker reads by itself: ``rows`` rows of a
    Parquet row group, or ``rows`` CSV lines from a byte offset."""

    file: str
    start: int  # the first row's position in the whole input
    rows: int
    row_group: int | None = None
    skip: int = 0  # rows of the row group before this piece
    offset: int | None = None
    line: int | None = None


def pieces(src: Source, chunk_rows: int) -> list[Piece]:
    """The input cut into pieces of at most ``chunk_rows`` rows: Parquet row
    groups, or CSV blocks of lines (found by one pass over the line ends)."""
    out: list[Piece] = []
    start = 0
    for f in src.files:
        if src.kind == "parquet":
            md = _parquet(f).metadata
            for group in range(md.num_row_groups):
                n = md.row_group(group).num_rows
                # A row group larger than a chunk is split, to bound a worker's
                # memory by the chunk as in the local engine.
                for skip in range(0, n, chunk_rows):
                    rows = min(chunk_rows, n - skip)
                    out.append(Piece(str(f), start, rows, row_group=group, skip=skip))
                    start += rows
        else:
            for block in _line_blocks(f, chunk_rows):
                out.append(
                    Piece(
                        str(f), start, block.rows, offset=block.offset, line=block.line
                    )
                )
                start += block.rows
    return out


def read_piece(piece: Piece) -> pa.Table:
    """One piece's rows, read as :func:`chunks` reads them."""
    path = Path(piece.file)
    if piece.row_group is not None:
        pf = _parquet(path)
        try:
            table = pf.read_row_group(piece.row_group)
        except _ERRORS as exc:
            return _lost(pf, path, piece.row_group, exc, piece.rows)
        return _marked(table.slice(piece.skip, piece.rows), None)
    _, names = _header(path)
    block = next(_line_blocks(path, piece.rows, offset=piece.offset, line=piece.line))
    return _csv_table(block, names)

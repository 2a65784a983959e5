"""Patient ids exactly as they came in: read as text, never through float.

A Parquet integer id column with one missing value becomes float64 in pandas, and
12345678901234567 then reads back as 12345678901234568: two patients can collide.
Readers therefore turn an integer (or decimal) id column into text in Arrow,
before pandas sees it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ids_as_text", "read_parquet_exact"]


def ids_as_text(table: pa.Table, column: str | None) -> pa.Table:
    """``table`` with its id ``column`` as text when it holds integers or decimals.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"patient_id": pa.array([12345678901234567, None], pa.int64())})
    >>> ids_as_text(t, "patient_id").column("patient_id").to_pylist()
    ['12345678901234567', None]
    >>> t.to_pandas()["patient_id"].tolist()  # what pandas alone would have made
    [1.2345678901234568e+16, nan]
    """
    if column is None or column not in table.column_names:
        return table
    i = table.column_names.index(column)
    kind = table.schema.field(i).type
    if pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        table = table.set_column(
            i, pa.field(column, pa.string()), table.column(i).cast(pa.string())
        )
    return table


def read_parquet_exact(path: str | Path, id_column: str | None) -> pd.DataFrame:
    """:func:`pandas.read_parquet`, with the id column read as text
    (:func:`ids_as_text`)."""
    return ids_as_text(pq.read_table(path), id_column).to_pandas()

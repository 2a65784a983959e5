"""Write the hostile-input corpus of tests/test_fuzz.py (run it to regenerate).

Each file is one thing an attacker or a broken export hands the package. The files
are committed so that a reader can open any of them; ``python make_corpus.py``
rewrites them byte for byte (no randomness). Inputs that git cannot hold (a FIFO,
a symlink) or that are large (megabytes) are made by the tests themselves.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
# A valid referral patient (seed Table 3 row 9's shape, typed inputs only).
PATIENT = {
    "patient_id": "H-0001",
    "age_years": 33,
    "parity": 1,
    "months_postpartum": 3,
    "lactation_months": 3,
    "breastfeeding_now": True,
    "z_lumbar_spine": -2.9,
}
HEADER = list(PATIENT)
ROW = ["H-0002", "31", "2", "4", "4", "true", "-2.1"]


def _csv(lines: list[bytes]) -> bytes:
    return b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)


def _head() -> bytes:
    return ",".join(HEADER).encode()


def csv_files() -> dict[str, bytes]:
    good = ",".join(ROW).encode()
    return {
        "empty.csv": b"",
        "header_only.csv": _head() + b"\n",
        "ragged.csv": _csv([_head(), good, b"H-3,31,2", good + b",extra,cells", good]),
        "latin1.csv": _csv([_head(), good, b"H-4,caf\xe9,2,4,4,true,-2.1", good]),
        "unterminated_quote.csv": _csv(
            [_head(), good, b'"H-5,31,2,4,4,true,-2.1', good]
        ),
        "stray_quote.csv": _csv([_head(), b'"H-6"x,31,2,4,4,true,-2.1', good]),
        "nul_bytes.csv": _csv([_head(), good, b"H-7,3\x001,2,4,4,true,-2.1", good]),
        "blank_lines.csv": _csv([_head(), b"", good, b"\r", b"   ", good]),
        "crlf.csv": _head() + b"\r\n" + good + b"\r\n" + good + b"\r\n",
        "cr_only.csv": _head() + b"\r" + good + b"\r" + good + b"\r",
        "bom.csv": b"\xef\xbb\xbf" + _csv([_head(), good]),
        "utf16.csv": ("\n".join([",".join(HEADER), ",".join(ROW)]) + "\n").encode(
            "utf-16"
        ),
        "duplicate_columns.csv": _csv([_head() + b",parity", good + b",3"]),
        "null_tokens.csv": _csv(
            [_head()]
            + [
                f"H-N{i},31,2,4,4,{t},{t}".encode()
                for i, t in enumerate(
                    ["NA", "N/A", "NULL", "None", "NaN", "nan", "null", "", " "]
                )
            ]
        ),
        "unknown_column.csv": _csv([_head() + b",vitamin_d", good + b",30"]),
        "bigint_ids.csv": _csv(
            [_head(), b"12345678901234567,31,2,4,4,true,-2.1", b",31,2,4,4,true,-2.1"]
        ),
        "huge_numbers.csv": _csv(
            [
                _head(),
                b"H-8," + b"9" * 400 + b",2,4,4,true,-2.1",
                b"H-9,1e999,2,4,4,true,-inf",
            ]
        ),
        "binary.csv": bytes(range(256)) * 4,
        "html_injection.csv": _csv(
            [_head(), b'"<script>alert(1)</script>",31,2,4,4,true,-2.1']
        ),
    }


def parquet_files() -> dict[str, bytes]:
    def write(table: pa.Table, **kwargs) -> bytes:
        buf = io.BytesIO()
        pq.write_table(table, buf, **kwargs)
        return buf.getvalue()

    base = {
        "patient_id": pa.array(["P1", "P2", "P3", "P4"]),
        "age_years": pa.array([31.0, 29.5, 35.0, 40.0]),
        "parity": pa.array([1, 2, 1, 3]),
        "months_postpartum": pa.array([4.0, 2.0, 6.0, 1.0]),
    }
    good = write(pa.table(base), row_group_size=2)
    corrupt = bytearray(good)
    md = pq.ParquetFile(io.BytesIO(good)).metadata.row_group(1)
    for c in range(md.num_columns):
        offset = md.column(c).data_page_offset
        corrupt[offset : offset + 12] = b"\xff" * 12
    return {
        "good.parquet": good,
        "corrupt_row_group.parquet": bytes(corrupt),
        "truncated.parquet": good[: len(good) // 2],
        "not_parquet.parquet": b"PAR1 this is not a parquet file PAR1",
        "empty.parquet": b"",
        "list_column.parquet": write(
            pa.table({**base, "parity": pa.array([[1], [2, 3], [], None])})
        ),
        "struct_column.parquet": write(
            pa.table({**base, "age_years": pa.array([{"a": 1}] * 4)})
        ),
        "bool_parity.parquet": write(
            pa.table({**base, "parity": pa.array([True] * 4)})
        ),
        "decimal.parquet": write(
            pa.table(
                {**base, "age_years": pa.array([31, 29, 35, 40], pa.decimal128(5, 1))}
            )
        ),
        "binary_ids.parquet": write(
            pa.table({**base, "patient_id": pa.array([b"\x00\xff", b"a", b"", None])})
        ),
        "int_ids_with_gap.parquet": write(
            pa.table(
                {
                    **base,
                    "patient_id": pa.array(
                        [12345678901234567, None, 7, 2**63 - 1], pa.int64()
                    ),
                }
            )
        ),
        "no_rows.parquet": write(pa.table(base).slice(0, 0)),
    }


def patient_files() -> dict[str, bytes]:
    text = json.dumps(PATIENT)
    deep = "[" * 20_000 + "]" * 20_000
    return {
        "valid.json": text.encode(),
        "latin1.json": text.replace("H-0001", "café").encode("latin-1"),
        "utf16.json": text.encode("utf-16"),
        "bom.json": b"\xef\xbb\xbf" + text.encode(),
        "deep.json": ('{"age_years": ' + deep + "}").encode(),
        "bigint.json": text.replace('"parity": 1', '"parity": ' + "9" * 5000).encode(),
        "duplicate_keys.json": text.replace("{", '{"parity": 2, ', 1).encode(),
        "a_list.json": f"[{text}]".encode(),
        "truncated.json": text[:-10].encode(),
        "nan.json": text.replace("-2.9", "NaN").encode(),
        "infinity.json": text.replace("-2.9", "-Infinity").encode(),
        "list_value.json": text.replace("-2.9", "[-2.9, -3.1]").encode(),
        "dict_value.json": text.replace("-2.9", '{"value": -2.9}').encode(),
        "null_tokens.json": text.replace("-2.9", '"N/A"').encode(),
        "underscored_number.json": text.replace(
            '"parity": 1', '"parity": "3_3"'
        ).encode(),
        "empty.json": b"",
        "binary.json": bytes(range(256)),
        "long_id.json": text.replace("H-0001", "x" * 10_000).encode(),
        "many_unknown_keys.json": json.dumps(
            {**PATIENT, **{f"unknown_{i}": i for i in range(2_000)}}
        ).encode(),
    }


def mapping_files() -> dict[str, bytes]:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    return {
        "a_list.yaml": b"- age_years\n- parity\n",
        "billion_laughs.yaml": laughs.encode(),
        "python_tag.yaml": b"columns: !!python/object/apply:os.system ['touch plo-risk-pwned']\n",
        "binary.yaml": bytes(range(256)),
        "latin1.yaml": "columns:\n  Âge: age_years\n".encode("latin-1"),
        "unknown_keys.yaml": b"colums:\n  Age: age_years\nversion: 1\n",
        "deep.yaml": ("columns: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
        "wrong_types.yaml": b"columns:\n  Age: {field: 3, unit: [1]}\ninvalid: maybe\n",
        "empty.yaml": b"",
        "tabs.yaml": b"columns:\n\tAge: age_years\n",
        "decimal_semicolon.yaml": b"decimal: ';'\ncolumns:\n  Age: age_years\n",
    }


def main() -> None:
    for folder, files in (
        ("csv", csv_files()),
        ("parquet", parquet_files()),
        ("patient", patient_files()),
        ("mapping", mapping_files()),
    ):
        (HERE / folder).mkdir(exist_ok=True)
        for name, data in files.items():
            (HERE / folder / name).write_bytes(data)


if __name__ == "__main__":
    main()

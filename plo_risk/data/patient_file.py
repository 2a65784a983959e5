"""Read one patient's JSON file (``plo-risk assess --patient``) safely.

Every way a file can be wrong is one :class:`PatientFileError` naming the file and
what is allowed: not a regular file (a folder, a FIFO), larger than
:data:`MAX_BYTES`, not UTF-8 (UTF-16 and UTF-8 with a byte-order mark are read),
not JSON, nested deeper than :data:`MAX_DEPTH`, a number of more than
:data:`MAX_DIGITS` digits, the same key twice (JSON keeps the last silently), or
not one object of field: value.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from plo_risk.utils import strict_json

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "PatientFileError",
    "read_patient_file",
]

#: A patient is a few dozen fields: a megabyte is far more than any real one.
MAX_BYTES = 1 << 20
#: Nesting allowed: the record and its "units" object.
MAX_DEPTH = 3
#: Digits of one number (a 5,000-digit integer is not a measurement).
MAX_DIGITS = 30


class PatientFileError(ValueError):
    """A patient file that cannot be read as one patient."""


def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise PatientFileError(f"{path}: not valid UTF-16 ({exc.reason})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PatientFileError(
            f"{path}: not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None


def read_patient_file(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object of one patient's file.

    Raises
    ------
    PatientFileError
        For anything but a regular UTF-8 (or UTF-16) JSON file holding one object,
        within the limits above.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.json"
    >>> _ = p.write_text('{"age_years": 33, "age_years": 34}')
    >>> read_patient_file(p)
    Traceback (most recent call last):
    ...
    plo_risk.data.patient_file.PatientFileError: ...: the key 'age_years' appears twice in one object
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PatientFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise PatientFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise PatientFileError(f"{path}: {what}; give a JSON file")
    if info.st_size > MAX_BYTES:
        raise PatientFileError(
            f"{path}: {info.st_size:,} bytes; a patient file holds at most "
            f"{MAX_BYTES:,} bytes"
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise PatientFileError(f"{path}: cannot be read ({exc.strerror})") from None
    text = _decode(raw, path)
    try:
        value = strict_json.loads(
            text, max_depth=MAX_DEPTH, max_digits=MAX_DIGITS, allow_nan=True
        )
    except ValueError as exc:
        raise PatientFileError(f"{path}: {exc}") from None
    if not isinstance(value, dict):
        raise PatientFileError(f"{path}: must hold one JSON object of field: value")
    return value

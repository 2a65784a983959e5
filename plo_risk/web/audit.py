"""The audit trail: one append-only, hash-chained JSON Lines record per assessment.

Every assessment the web app gives (page or API) appends one record to the log:
when, which model (name, version, the sha256 of its bundle's manifest), which
catalog and package version, an HMAC-SHA256 of the inputs under the operator's
key, the inputs themselves only when the operator turns that on
(``keep_inputs=True``), the outputs and the warnings shown. Automatic logs over a
system's lifetime are what the EU AI Act (Regulation (EU) 2024/1689, Art. 12)
asks of high-risk AI systems.

Each record is one line of canonical JSON (sorted keys, no spaces, floats as
Python's shortest repr, so every number round-trips exactly) and carries

* ``seq``: its position, from 0;
* ``prev``: the ``hash`` of the record before it (record 0: :data:`GENESIS`);
* ``hash``: the sha256 of its own canonical JSON without ``hash`` and ``mac``;
* ``mac``: an HMAC-SHA256 of the same bytes under the audit key, so that a
  rewritten chain cannot be made to verify without the key.

A ``<log>.head`` file beside the log holds the number of records and the last hash
(replaced atomically after each append), so that a removed last record is found
too. :func:`verify` names the first bad record (line number) and what happened
to it (changed, removed, reordered, truncated); :func:`replay` recomputes every
logged output whose inputs were kept and reports any difference.

>>> import tempfile, pathlib
>>> log = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
>>> trail = AuditLog(log, key=b"k" * 32)
>>> _ = trail.append({"event": "demo", "outputs": {"risk": 0.1}})
>>> _ = trail.append({"event": "demo", "outputs": {"risk": 0.2}})
>>> verify(log).ok, verify(log).n_records
(True, 2)
>>> lines = log.read_bytes().split(b"\\n")
>>> _ = log.write_bytes(lines[1] + b"\\n" + lines[0] + b"\\n")
>>> print(verify(log).first)
line 1: reordered: record seq 1 stands where seq 0 belongs (seq 0 is at line 2)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plo_risk.data.schema import ValidationError
from plo_risk.serve.risk_model import RiskModel
from plo_risk.utils.atomic import atomic_path
from plo_risk.web.identity import load_model, model_identity

__all__ = [
    "FORMAT_VERSION",
    "GENESIS",
    "AuditError",
    "AuditLog",
    "ReplayDifference",
    "ReplayResult",
    "VerifyProblem",
    "VerifyResult",
    "canonical_json",
    "inputs_hmac",
    "load_or_create_key",
    "read_key",
    "recompute",
    "replay",
    "verify",
]

#: Version of the record layout (``"v"`` of every record).
FORMAT_VERSION = 1
#: The ``prev`` of record 0: a fixed value, so that a removed first record shows.
GENESIS = "0" * 64
_KEY_BYTES = 32
# Keys every record must have to be checked at all.
_REQUIRED = ("v", "seq", "prev", "time", "hash", "mac")


class AuditError(RuntimeError):
    """The audit log cannot be written (damaged, or not ours); the message says why."""


# ------------------------------------------------------------------ encoding


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float as None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj``: sorted keys, no spaces, UTF-8.

    Floats are written as Python's shortest repr, which reads back to the same
    float, so a logged output compares exactly with a recomputed one. Non-finite
    floats become ``null``.

    >>> canonical_json({"b": 0.1, "a": [1, float("nan")]})
    b'{"a":[1,null],"b":0.1}'
    """
    return json.dumps(
        _finite(obj),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def _record_hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _record_mac(record: Mapping[str, Any], key: bytes) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def inputs_hmac(key: bytes, record: Mapping[str, Any]) -> str:
    """HMAC-SHA256 (hex) of a canonical record under the audit key.

    The same patient's values give the same hash, whatever units or spelling they
    were entered in, when ``record`` is the validated, canonical record; without
    the key the hash cannot be tested against guessed values.
    """
    return hmac.new(key, canonical_json(record), hashlib.sha256).hexdigest()


def load_or_create_key(path: str | os.PathLike) -> bytes:
    """The audit key in ``path``, created (32 random bytes, hex, mode 0600) if absent.

    Parameters
    ----------
    path : str or PathLike
        The key file the operator gives (``--audit-key-file``).

    Returns
    -------
    bytes

    Raises
    ------
    AuditError
        If the file exists but holds fewer than 16 bytes.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_hex(_KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    key = path.read_bytes().strip()
    if len(key) < 16:
        raise AuditError(
            f"{path}: the audit key must hold at least 16 bytes (it holds "
            f"{len(key)}); remove the file to have a new key generated"
        )
    return key


def read_key(path: str | os.PathLike) -> bytes:
    """The audit key in an existing key file (for ``audit verify --key-file``).

    Raises
    ------
    FileNotFoundError
        If there is no such file (unlike :func:`load_or_create_key`, nothing is
        created).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no audit key file here")
    return load_or_create_key(path)


# ------------------------------------------------------------------- writing


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _last_line(path: Path) -> bytes | None:
    """The last line of ``path`` (without its newline); None for an empty file.

    Raises AuditError when the file does not end with a newline (a write that
    did not finish).
    """
    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) != b"\n":
            raise AuditError(
                f"{path}: the last line is incomplete (a write did not finish); "
                f"check the log with `plo-risk audit verify {path}` and move it "
                "aside before starting again"
            )
        block = 4096
        end = size - 1
        data = b""
        while True:
            start = max(0, end - block)
            fh.seek(start)
            data = fh.read(end - start) + data
            cut = data.rfind(b"\n")
            if cut >= 0:
                return data[cut + 1 :]
            if start == 0:
                return data
            end = start
            block *= 2


class AuditLog:
    """An append-only, hash-chained JSON Lines audit log.

    Appends are serialised by a lock, written in one ``write`` with ``flush`` and
    ``fsync``; the head file is replaced atomically after each. One process
    writes a log (the server runs one worker).

    Parameters
    ----------
    path : str or PathLike
        The log file (``--audit-log``); created with its folder when absent. An
        existing log is continued after its last record.
    key : bytes
        The audit key (:func:`load_or_create_key`): for the inputs' HMAC and each
        record's ``mac``. Never written to the log.

    Raises
    ------
    AuditError
        If the existing log's last line is incomplete or not a record.
    """

    def __init__(self, path: str | os.PathLike, *, key: bytes):
        self.path = Path(path)
        self._key = bytes(key)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        last = _last_line(self.path)
        if last is None:
            self._seq, self._prev = 0, GENESIS
        else:
            try:
                rec = json.loads(last)
                self._seq, self._prev = int(rec["seq"]) + 1, str(rec["hash"])
            except (ValueError, KeyError, TypeError):
                raise AuditError(
                    f"{self.path}: the last line is not an audit record; check the "
                    f"log with `plo-risk audit verify {self.path}`"
                ) from None

    @property
    def n_records(self) -> int:
        """Records in the log (the ``seq`` the next record gets)."""
        return self._seq

    def inputs_hmac(self, record: Mapping[str, Any]) -> str:
        """:func:`inputs_hmac` under this log's key."""
        return inputs_hmac(self._key, record)

    def append(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Append one record: ``entry`` plus ``v``, ``seq``, ``prev``, ``time``,
        ``hash`` and ``mac``. Returns the record written."""
        with self._lock:
            record = {
                **{k: v for k, v in entry.items() if k not in _REQUIRED},
                "v": FORMAT_VERSION,
                "seq": self._seq,
                "prev": self._prev,
                "time": datetime.now(UTC).isoformat(timespec="microseconds"),
            }
            record = json.loads(canonical_json(record))  # exactly what is read back
            record["hash"] = _record_hash(record)
            record["mac"] = _record_mac(record, self._key)
            line = canonical_json(record) + b"\n"
            with open(self.path, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self._seq += 1
            self._prev = record["hash"]
            # The head is a hint for verify (a removed last record): replaced
            # atomically, not fsynced; the record itself is on disk already.
            with atomic_path(_head_path(self.path)) as tmp:
                tmp.write_bytes(
                    canonical_json({"records": self._seq, "hash": self._prev}) + b"\n"
                )
            return record


# ----------------------------------------------------------------- verifying


@dataclass(frozen=True)
class VerifyProblem:
    """One break in the log: where (1-based line) and what.

    ``kind`` is ``"changed"`` (a record's bytes differ from what was written),
    ``"removed"`` (records are missing), ``"reordered"`` (a record stands out of
    its place) or ``"truncated"`` (the last line is cut short).
    """

    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found.

    Attributes
    ----------
    path : Path
    n_records : int
        Lines that hold a readable record.
    problems : list of VerifyProblem
        Every break, in file order; empty when the log is intact.
    notes : list of str
        Facts that are not breaks (a head file one record behind after a crash).
    """

    path: Path
    n_records: int
    problems: list[VerifyProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no record was changed, removed, reordered or truncated."""
        return not self.problems

    @property
    def first(self) -> VerifyProblem | None:
        """The first bad record, or None."""
        return self.problems[0] if self.problems else None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.path}: {self.n_records} records, chain intact"
        return f"{self.path}: {len(self.problems)} problem(s); first: {self.first}"


def _read_record(raw: bytes, key: bytes | None) -> tuple[dict | None, str]:
    """The record on one line, or None and why it cannot be trusted."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "not valid JSON"
    if not isinstance(rec, dict) or any(k not in rec for k in _REQUIRED):
        return None, "not an audit record (keys missing)"
    if not isinstance(rec["seq"], int) or isinstance(rec["seq"], bool):
        return None, "its seq is not a whole number"
    try:
        again = canonical_json(rec)
    except (TypeError, ValueError):
        return None, "not canonical JSON"
    if again != raw:
        return None, "its bytes are not the canonical JSON written"
    if rec["hash"] != _record_hash(rec):
        return None, "its content does not match its hash"
    if key is not None and not hmac.compare_digest(
        str(rec["mac"]), _record_mac(rec, key)
    ):
        return None, "its mac does not match under the audit key"
    return rec, ""


def verify(path: str | os.PathLike, *, key: bytes | None = None) -> VerifyResult:
    """Check an audit log: every record intact, in order, none missing.

    Parameters
    ----------
    path : str or PathLike
        The log (``--audit-log``). Its head file (``<log>.head``), when present,
        shows a removed last record.
    key : bytes, default=None
        The audit key: also checks each record's ``mac``, which finds a record
        changed and re-hashed by someone without the key.

    Returns
    -------
    VerifyResult
        ``ok``, the number of records, and each problem with its 1-based line
        number and kind (changed, removed, reordered, truncated).

    Raises
    ------
    FileNotFoundError
        If there is no log at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no audit log here")
    data = path.read_bytes()
    problems: list[VerifyProblem] = []
    notes: list[str] = []
    complete = data.endswith(b"\n")
    lines = data.split(b"\n")
    if complete or not data:
        lines = lines[:-1]
    entries: list[tuple[int, dict | None]] = []
    for i, raw in enumerate(lines, start=1):
        last = i == len(lines)
        rec, why = _read_record(raw, key)
        if last and not complete:
            what = (
                "the last line has no newline: the write did not finish"
                if rec is not None
                else f"the last line is cut short ({len(raw)} bytes, {why})"
            )
            problems.append(VerifyProblem(i, "truncated", what))
            entries.append((i, rec))
            continue
        if rec is None:
            problems.append(VerifyProblem(i, "changed", why))
        entries.append((i, rec))
    where = {rec["seq"]: i for i, rec in entries if rec is not None}
    expected_seq, expected_prev, prev_line = 0, GENESIS, 0
    for i, rec in entries:
        if rec is None:
            expected_seq, expected_prev, prev_line = expected_seq + 1, None, i
            continue
        seq = rec["seq"]
        if seq == expected_seq:
            if expected_prev is not None and rec["prev"] != expected_prev:
                if prev_line:
                    problems.append(
                        VerifyProblem(
                            prev_line,
                            "changed",
                            f"its hash is not the prev of the next record (line {i}): "
                            "it was changed and re-hashed",
                        )
                    )
                else:
                    problems.append(
                        VerifyProblem(
                            i, "changed", "record 0 does not chain to the genesis value"
                        )
                    )
        elif seq > expected_seq:
            later = [s for s in range(expected_seq, seq) if where.get(s, 0) > i]
            if later:
                problems.append(
                    VerifyProblem(
                        i,
                        "reordered",
                        f"record seq {seq} stands where seq {expected_seq} belongs "
                        f"(seq {later[0]} is at line {where[later[0]]})",
                    )
                )
            else:
                gone = (
                    f"seq {expected_seq}"
                    if seq == expected_seq + 1
                    else f"seq {expected_seq} to {seq - 1}"
                )
                problems.append(
                    VerifyProblem(
                        i, "removed", f"record {gone} is missing before this line"
                    )
                )
        else:
            problems.append(
                VerifyProblem(
                    i,
                    "reordered",
                    f"record seq {seq} stands after seq {expected_seq - 1} "
                    f"(it belongs at line {seq + 1})",
                )
            )
            continue  # an earlier record out of place: the chain goes on after it
        expected_seq, expected_prev, prev_line = seq + 1, rec["hash"], i
    head = _head_path(path)
    if head.is_file():
        try:
            info = json.loads(head.read_bytes())
            n_head, hash_head = int(info["records"]), str(info["hash"])
        except (ValueError, KeyError, TypeError):
            notes.append(
                f"{head.name} is unreadable: a removed last record cannot be told"
            )
        else:
            n_log = (max(where) + 1) if where else 0
            if n_head > n_log:
                gone = n_head - n_log
                problems.append(
                    VerifyProblem(
                        len(lines) + 1,
                        "removed",
                        f"the last {gone} record(s) (seq {n_log} to {n_head - 1}) are "
                        f"missing: {head.name} counts {n_head} records",
                    )
                )
            elif n_head == n_log and n_log and where.get(n_log - 1):
                last = entries[where[n_log - 1] - 1][1]
                if last is not None and last["hash"] != hash_head:
                    problems.append(
                        VerifyProblem(
                            where[n_log - 1],
                            "changed",
                            f"its hash is not the one {head.name} recorded",
                        )
                    )
            elif n_head < n_log:
                notes.append(
                    f"{head.name} counts {n_head} records, the log {n_log}: the "
                    "server stopped between writing a record and its head"
                )
    problems.sort(key=lambda p: p.line)
    n_ok = sum(1 for _, rec in entries if rec is not None)
    return VerifyResult(path, n_ok, problems, notes)


# ----------------------------------------------------------------- replaying


@dataclass(frozen=True)
class ReplayDifference:
    """A logged output that the model no longer reproduces."""

    line: int
    seq: int
    where: str
    logged: Any
    recomputed: Any

    def __str__(self) -> str:
        return (
            f"line {self.line} (seq {self.seq}): {self.where}: logged "
            f"{self.logged!r}, recomputed {self.recomputed!r}"
        )


@dataclass(frozen=True)
class ReplayResult:
    """What :func:`replay` found.

    Attributes
    ----------
    n_records : int
        Readable records in the log.
    n_replayed : int
        Records recomputed (those whose inputs were kept).
    n_skipped : int
        Records without inputs (``keep_inputs`` was off) or of no assessment.
    n_other_model : int
        Replayed records that were logged by another bundle (sha256) than the
        model replaying them.
    differences : list of ReplayDifference
        The first difference of each record that was not reproduced exactly.
    verify : VerifyResult
        The chain check of the same log.
    """

    n_records: int
    n_replayed: int
    n_skipped: int
    n_other_model: int
    differences: list[ReplayDifference]
    verify: VerifyResult

    @property
    def ok(self) -> bool:
        """True when every replayed output was reproduced exactly."""
        return not self.differences

    def __str__(self) -> str:
        return (
            f"{self.n_replayed} of {self.n_records} records replayed "
            f"({self.n_skipped} without inputs), {len(self.differences)} differ"
        )


def _first_difference(a: Any, b: Any, where: str = "outputs") -> tuple[str, Any, Any]:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b or canonical_json(a[k]) != canonical_json(b[k]):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for j, (x, y) in enumerate(zip(a, b, strict=True)):
            if canonical_json(x) != canonical_json(y):
                return _first_difference(x, y, f"{where}[{j}]")
    return where, a, b


def recompute(model: RiskModel, event: str, inputs: Mapping[str, Any]) -> Any:
    """The outputs the web app logs for one event, recomputed from its inputs.

    ``event`` is ``"assess"`` (outputs: ``RiskAssessment.to_dict()``) or
    ``"what_if"`` (outputs: ``{"before", "after", "changes"}``).
    """
    record = inputs.get("record") or {}
    units = inputs.get("units") or None
    base = model.assess(record, units=units)
    if event == "what_if":
        changes = dict(inputs.get("changes") or {})
        after = base.what_if(**changes)
        return {"before": base.to_dict(), "after": after.to_dict(), "changes": changes}
    return base.to_dict()


def replay(
    path: str | os.PathLike,
    model: RiskModel | str,
    *,
    key: bytes | None = None,
    bundle_sha256: str | None = None,
) -> ReplayResult:
    """Recompute every logged output whose inputs were kept; report differences.

    Parameters
    ----------
    path : str or PathLike
        The audit log.
    model : RiskModel or str
        The model to replay with (a bundle folder or MLflow URI is loaded).
    key : bytes, default=None
        The audit key, passed to :func:`verify`.
    bundle_sha256 : str, default=None
        The replaying model's bundle digest, to count records logged by another
        bundle; by default that of ``model`` (see :func:`plo_risk.web.model_identity`).

    Returns
    -------
    ReplayResult
        Counts and the first difference of each record not reproduced exactly
        (outputs are compared as canonical JSON: every float to the last bit).
    """
    if not isinstance(model, RiskModel):
        model, ident = load_model(model)
    else:
        ident = model_identity(model)
    sha = bundle_sha256 or ident.get("bundle_sha256")
    path = Path(path)
    checked = verify(path, key=key)
    replayed = skipped = other = 0
    n_records = 0
    differences: list[ReplayDifference] = []
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            n_records += 1
            inputs, event = rec.get("inputs"), rec.get("event")
            if not isinstance(inputs, dict) or event not in ("assess", "what_if"):
                skipped += 1
                continue
            replayed += 1
            if sha and (rec.get("model") or {}).get("bundle_sha256") != sha:
                other += 1
            try:
                again = json.loads(canonical_json(recompute(model, event, inputs)))
            except (ValidationError, ValueError) as exc:
                differences.append(
                    ReplayDifference(i, rec.get("seq", -1), "inputs", "valid", str(exc))
                )
                continue
            logged = rec.get("outputs")
            if canonical_json(again) != canonical_json(logged):
                where, a, b = _first_difference(logged, again)
                differences.append(ReplayDifference(i, rec.get("seq", -1), where, a, b))
    return ReplayResult(n_records, replayed, skipped, other, differences, checked)

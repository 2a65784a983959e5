"""JSON from files we did not write ourselves: strict, bounded, one error type.

:func:`loads` reads UTF-8 bytes only, refuses NaN and Infinity (not JSON), the same
key twice in one object (JSON keeps the last silently), numbers of more than
:data:`MAX_DIGITS` digits, and nesting deeper than ``max_depth``: check a file here
before a parser that recurses reads it (xgboost's crashes the process on a model
file nested a few hundred thousand levels deep). Every problem is a ``ValueError``
that says what it is.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_DIGITS", "loads"]

#: Digits one number may have (a float of ours has 17).
MAX_DIGITS = 40


def _depth(value: Any) -> int:
    """The deepest nesting of objects and arrays in a parsed value, iteratively."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        deepest = max(deepest, level)
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))
    return deepest if isinstance(value, (dict, list)) else 0


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _number(kind, max_digits: int):
    def parse(text: str):
        digits = sum(c.isdigit() for c in text)
        if digits > max_digits:
            raise ValueError(
                f"a number of {digits:,} digits; at most {max_digits} are allowed"
            )
        return kind(text)

    return parse


def loads(
    raw: bytes | str,
    *,
    max_depth: int = 32,
    max_digits: int = MAX_DIGITS,
    allow_nan: bool = False,
) -> Any:
    """Parse JSON (UTF-8 bytes, or text already decoded) strictly.

    Parameters
    ----------
    raw : bytes or str
    max_depth : int, default=32
        Deepest nesting of objects and arrays allowed.
    max_digits : int, default=MAX_DIGITS
        Digits one number may have.
    allow_nan : bool, default=False
        Read ``NaN`` and ``Infinity`` (Python's extension of JSON) as floats.

    Returns
    -------
    The parsed value.

    Raises
    ------
    ValueError
        Not UTF-8, not JSON, NaN/Infinity, a duplicated key, a number of too many
        digits or nesting deeper than ``max_depth``; the message says which.

    Examples
    --------
    >>> loads(b'{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> loads(b'[[[1]]]', max_depth=2)
    Traceback (most recent call last):
    ...
    ValueError: nested 3 levels deep; at most 2 are allowed
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=float if allow_nan else _constant,
            parse_int=_number(int, max_digits),
            parse_float=_number(float, max_digits),
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(
            f"nested too deeply for the parser; at most {max_depth} levels are allowed"
        ) from None
    depth = _depth(value)
    if depth > max_depth:
        raise ValueError(f"nested {depth} levels deep; at most {max_depth} are allowed")
    return value

"""Typed configuration files: every problem reported at once, with its key path.

Each configuration file of the package (an experiment in ``training/``, a registry
mapping, the generator's parameters) is a pydantic model built on
:class:`ConfigModel` (unknown keys are errors, values are typed).
:func:`parse_config` validates a parsed YAML document against it and raises one
:class:`ConfigError` that lists every problem, each with its key path
(``data.train.n``), the value given and what is allowed, and "did you mean" for
an unknown key, before any work starts.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict

__all__ = [
    "ConfigError",
    "ConfigModel",
    "closest_name",
    "key_path",
    "parse_config",
    "read_yaml_file",
    "unknown_key_problem",
]

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration that does not fit its schema; lists every problem.

    Attributes
    ----------
    where : str
        The file (or ``"config"`` for a mapping given in Python).
    problems : list of str
        One line per problem, each starting with its key path.
    """

    def __init__(self, where: str, problems: Iterable[str]):
        self.where = str(where)
        self.problems = list(dict.fromkeys(problems))  # in order, without repeats
        if len(self.problems) == 1:
            text = f"{self.where}: {self.problems[0]}"
        else:
            text = f"{self.where}: {len(self.problems)} problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class ConfigModel(BaseModel):
    """Base of every configuration section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def key_path(loc: Iterable[Any]) -> str:
    """``("models", 2, "name")`` as ``models[2].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def closest_name(name: Any, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (for "did you mean"), or None."""
    if not isinstance(name, str):
        return None
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_problem(path: str, key: Any, known: Iterable[str]) -> str:
    """``path: unknown key 'x' (did you mean 'y'?); allowed: ...``."""
    known = sorted(known)
    hint = closest_name(key, known)
    where = f"{path}: " if path else ""
    text = f"{where}unknown key {key!r}"
    if hint:
        text += f" (did you mean {hint!r}?)"
    # A long list of allowed keys says nothing; the hint says what matters.
    if len(known) <= 12:
        text += f"; allowed: {', '.join(known)}"
    return text


def _fields_at(model: type[BaseModel], loc: tuple) -> set[str] | None:
    """The keys allowed in the mapping at ``loc`` of ``model``, if it is a model."""
    annotation: Any = model
    for part in loc:
        annotation = _strip(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            annotation = field.annotation
            continue
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (list, tuple) and args:
            annotation = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            annotation = args[1]
        else:
            return None
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return set(annotation.model_fields)
    return None


def _strip(annotation: Any) -> Any:
    # Optional[X] / X | None -> X
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _describe(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden" and loc:
        known = _fields_at(model, loc[:-1]) or set()
        return unknown_key_problem(key_path(loc[:-1]), loc[-1], known)
    if kind == "missing" and loc:
        parent = key_path(loc[:-1])
        return f"{parent + ': ' if parent else ''}missing key {loc[-1]!r}"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    path = key_path(loc)
    if (
        "input" in err
        and kind not in ("model_type", "dict_type", "list_type")
        and not isinstance(err["input"], Mapping)
    ):
        value = err["input"]
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"{path}={shown}: {msg}" if path else msg
    return f"{path}: {msg}" if path else msg


def parse_config(
    model: type[M],
    raw: Any,
    where: str,
    *,
    extra_problems: Iterable[str] = (),
    context: Mapping[str, Any] | None = None,
) -> M:
    """Validate a parsed document against a config model; every problem at once.

    Parameters
    ----------
    model : type of ConfigModel
    raw : Any
        The parsed YAML (or a mapping given in Python).
    where : str
        The file, for messages.
    extra_problems : iterable of str, default=()
        Problems found by checks of the caller that need more than one key (they
        are reported with pydantic's, in one error).
    context : Mapping, default=None
        Passed to the model's validators.

    Returns
    -------
    The validated model.

    Raises
    ------
    ConfigError
        Listing every problem with its key path.
    """
    problems = list(extra_problems)
    if not isinstance(raw, Mapping):
        raise ConfigError(
            where, [f"expected a mapping of keys, got {type(raw).__name__}"]
        )
    try:
        result = model.model_validate(raw, context=dict(context or {}))
    except pydantic.ValidationError as exc:
        problems += [_describe(err, model) for err in exc.errors(include_url=False)]
        raise ConfigError(where, problems) from None
    if problems:
        raise ConfigError(where, problems)
    return result


# A configuration file larger than this is not one (a mapping or an experiment is
# a few kilobytes).
MAX_YAML_BYTES = 1 << 20


def safe_yaml(raw: str | bytes, where: str) -> Any:
    """The document of YAML text, read with the safe loader (no Python tags).

    Raises
    ------
    ConfigError
        Not UTF-8, not YAML, nested too deeply to read, or over
        :data:`MAX_YAML_BYTES`; the message names ``where``.
    """
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(
            where, [f"{len(raw):,} bytes; a configuration file is at most 1 MiB"]
        )
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            where, [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(where, [f"not valid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(where, ["nested too deeply to be read"]) from None


def read_yaml_file(path: str | Path, what: str) -> Any:
    """A YAML file's document; FileNotFoundError or ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return safe_yaml(path.read_bytes(), str(path))

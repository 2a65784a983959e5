"""The bibliography: every source the package cites, and citations by key.

Sources live in BibTeX files, ``docs/references/*.bib`` in the repository (shipped in
the wheel as ``plo_risk/_data/references/``). Texts cite them pandoc style:
``[@mishra2024, Table 3 row 4]``, ``[@marshall1996]`` or ``[@a; @b, p. 3]``; the
locator after the comma stays readable in every rendering.

:func:`cite_keys` finds the keys in a text, :func:`format_citation` renders its
citations in short form ("Mishra et al. 2024, Table 3 row 4") and :func:`reference`
gives the full reference of a key. An unknown key raises
:class:`UnknownCitationError`, naming the key and the closest known one.

Only the BibTeX subset the bibliography uses is read: ``@type{key, field = {value},
...}`` with braced or double-quoted values (or bare numbers), inner braces for
protected capitals, a few accent macros (``{\\"o}``), and authors written
``Last, First and Last, First`` (``and others`` for et al.; ``{{Corporate}}``).
An entry starts with ``@`` at the start of a line; text outside entries is a comment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from plo_risk.utils.resources import REPO_ROOT

__all__ = [
    "BibliographyError",
    "Reference",
    "UnknownCitationError",
    "cite_keys",
    "format_citation",
    "load_references",
    "reference",
    "references_dir",
]

#: Where the .bib files are in a checkout (relative to the repository root).
REPO_PATH = Path("docs") / "references"

# A citation group in brackets: [@key], [@key, locator], [@a; @b, locator]. A key
# starts with a letter or digit and may hold the punctuation BibTeX keys use; a
# bracket that holds no @key (a Markdown link, "[1]") is left alone.
_KEY = r"[A-Za-z0-9_](?:[\w:.#$%&+?<>~/-]*\w)?"
_GROUP = re.compile(r"\[((?:[^\[\]@]*\s)?-?@" + _KEY + r"[^\[\]]*)\]")
_ITEM = re.compile(
    r"^\s*(?:(?P<prefix>[^@]*?)\s+)?(?P<suppress>-?)@(?P<key>" + _KEY + r")"
    r"(?P<locator>[^@]*)$",
    re.S,
)
_ACCENTS = {
    '"': {
        "a": "ä",
        "o": "ö",
        "u": "ü",
        "e": "ë",
        "i": "ï",
        "A": "Ä",
        "O": "Ö",
        "U": "Ü",
    },
    "'": {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú", "E": "É"},
    "`": {"a": "à", "e": "è", "i": "ì", "o": "ò", "u": "ù"},
    "^": {"a": "â", "e": "ê", "i": "î", "o": "ô", "u": "û"},
    "~": {"n": "ñ", "a": "ã", "o": "õ", "N": "Ñ"},
    "c": {"c": "ç", "C": "Ç"},
}
_ACCENT = re.compile(r"\{?\\([\"'`^~]|c\s)\s*\{?([A-Za-z])\}?\}?")


class BibliographyError(ValueError):
    """A .bib file is not in the BibTeX subset we read (names the file and line)."""


class UnknownCitationError(KeyError):
    """A citation key that no .bib file defines (names the closest known key)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Reference:
    """One bibliography entry.

    Attributes
    ----------
    key : str
        The citation key (``mishra2024``).
    entry_type : str
        The BibTeX type in lower case (``article``, ``book``, ``incollection``).
    fields : dict of str to str
        Field values with braces and accent macros resolved (``author`` as written).
    source : str
        The .bib file it comes from.
    label : str
        The short form used in text (``Mishra et al. 2024``); a letter is appended
        when two entries would read the same (``Kanis et al. 2004a``).
    """

    key: str
    entry_type: str
    fields: dict[str, str]
    source: str = ""
    label: str = field(default="", compare=False)

    @property
    def authors(self) -> list[tuple[str, str]]:
        """``(last, initials)`` per author; ``("others", "")`` stands for et al."""
        return _parse_names(self.fields.get("author", ""))

    @property
    def year(self) -> str:
        """The publication year as written."""
        return self.fields.get("year", "")

    def short(self) -> str:
        """Author-year form: ``Kovacs 2025``, ``Kalkwarf & Specker 1995``, ``Mishra et al. 2024``."""
        return self.label or _author_year(self)

    def full(self) -> str:
        """The full reference, Vancouver style.

        ``Authors. Title. Journal Year;Volume(Number):Pages. doi:...`` for articles;
        ``Authors. Title. Edition ed. Publisher; Year. doi:...`` for books.
        """
        f = self.fields
        parts = [_author_list(self.authors)]
        title = f.get("title", "").rstrip(".")
        parts.append(title + ("" if title.endswith(("?", "!")) else "."))
        if self.entry_type == "article":
            where = f"{f.get('journal', '')} {self.year}".strip()
            if f.get("volume"):
                where += f";{f['volume']}"
                if f.get("number"):
                    where += f"({f['number']})"
            if f.get("pages"):
                where += f":{f['pages']}" if f.get("volume") else f";{f['pages']}"
            parts.append(where + ".")
        else:
            if self.entry_type == "incollection" and f.get("booktitle"):
                editors = _author_list(_parse_names(f.get("editor", "")), final="")
                inn = f"In: {editors}, editors. " if editors else "In: "
                parts.append(inn + f["booktitle"].rstrip(".") + ".")
            if f.get("edition"):
                parts.append(f"{f['edition']} ed.")
            pub = "; ".join(x for x in (f.get("publisher", ""), self.year) if x)
            if f.get("pages") and self.entry_type == "incollection":
                pub += f":{f['pages']}"
            parts.append(pub + ".")
        if f.get("doi"):
            parts.append(f"doi:{f['doi']}")
        return " ".join(p for p in parts if p and p != ".")


def references_dir() -> Path:
    """The folder of the shipped .bib files (the wheel's, else the checkout's).

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        If neither the installed package nor a checkout has one.
    """
    packaged = resources.files("plo_risk") / "_data" / "references"
    if packaged.is_dir():
        return Path(str(packaged))
    repo = REPO_ROOT / REPO_PATH
    if repo.is_dir():
        return repo
    raise FileNotFoundError(
        f"no bibliography found in the installed package ({packaged}) nor at {repo}; "
        "reinstall plo_risk"
    )


def load_references(paths: Iterable[str | Path] | None = None) -> dict[str, Reference]:
    """Read the bibliography.

    Parameters
    ----------
    paths : iterable of str or Path, default=None
        .bib files to read. ``None`` reads every ``*.bib`` of :func:`references_dir`
        (cached).

    Returns
    -------
    dict of str to Reference
        By key, in file order.

    Raises
    ------
    BibliographyError
        On text outside the subset we read, or a key defined twice.

    Examples
    --------
    >>> refs = load_references()
    >>> refs["mishra2024"].short()
    'Mishra et al. 2024'
    >>> refs["mishra2024"].fields["doi"]
    '10.4274/tod.galenos.2023.24392'
    """
    if paths is None:
        return dict(_load_default())
    return _load([Path(p) for p in paths])


@lru_cache(maxsize=1)
def _load_default() -> dict[str, Reference]:
    found = sorted(references_dir().glob("*.bib"))
    if not found:
        raise FileNotFoundError(f"no .bib file in {references_dir()}")
    return _load(found)


def _load(paths: list[Path]) -> dict[str, Reference]:
    refs: dict[str, Reference] = {}
    for path in paths:
        for ref in _parse_bib(path.read_text(encoding="utf-8"), str(path)):
            if ref.key in refs:
                raise BibliographyError(
                    f"{path}: key {ref.key!r} is already defined in {refs[ref.key].source}"
                )
            refs[ref.key] = ref
    return _with_labels(refs)


def _with_labels(refs: dict[str, Reference]) -> dict[str, Reference]:
    # Same author-year for two sources: a, b, ... in title order, as citeproc does.
    by_label: dict[str, list[Reference]] = {}
    for ref in refs.values():
        by_label.setdefault(_author_year(ref), []).append(ref)
    out = {}
    for ref in refs.values():
        label = _author_year(ref)
        same = by_label[label]
        if len(same) > 1:
            order = sorted(
                same, key=lambda r: (r.fields.get("title", "").lower(), r.key)
            )
            label += "abcdefghijklmnopqrstuvwxyz"[order.index(ref)]
        out[ref.key] = Reference(ref.key, ref.entry_type, ref.fields, ref.source, label)
    return out


def reference(key: str, references: Mapping[str, Reference] | None = None) -> str:
    """The full formatted reference of a key.

    Parameters
    ----------
    key : str
        A citation key, with or without its leading ``@``.
    references : mapping, default=None
        ``None`` uses :func:`load_references`.

    Returns
    -------
    str
        ``Authors. Title. Journal Year;Vol(No):Pages. doi:...``

    Raises
    ------
    UnknownCitationError
        If no .bib file defines the key.

    Examples
    --------
    >>> print(reference("mishra2024"))
    Mishra N, Masroor H, Gupta M. Osteoporosis in Pregnant and Lactating Females: An Update. Turk J Osteoporos 2024;30(1):1-15. doi:10.4274/tod.galenos.2023.24392
    >>> reference("mishra2023")
    Traceback (most recent call last):
    ...
    plo_risk.data.references.UnknownCitationError: unknown citation key 'mishra2023': no docs/references/*.bib defines it; the closest known key is 'mishra2024'
    """
    return _lookup(key.lstrip("@"), references).full()


def cite_keys(text: str) -> list[str]:
    """The citation keys of a text, in order of first appearance.

    Citations are pandoc style, in brackets: ``[@key]``, ``[@key, Table 3]``,
    ``[@a; @b, p. 3]`` (``-@key`` suppresses the author and counts too). Brackets
    without an ``@key`` are not citations.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
        Each key once.

    Examples
    --------
    >>> cite_keys("BMD [@marshall1996]; ages [@mishra2024, Table 3; @kasahara2024]")
    ['marshall1996', 'mishra2024', 'kasahara2024']
    >>> cite_keys("see [the docs](https://x.org) and [1]")
    []
    """
    keys: list[str] = []
    for group in _GROUP.finditer(text):
        for _, _, key, _ in _items(group.group(1)):
            if key not in keys:
                keys.append(key)
    return keys


def format_citation(
    text: str,
    references: Mapping[str, Reference] | None = None,
    *,
    parentheses: bool = False,
) -> str:
    """The text with each citation in short, readable form.

    ``[@mishra2024, Table 3 row 4]`` becomes ``Mishra et al. 2024, Table 3 row 4``;
    the items of one group are joined by ``"; "``; text outside citations is kept.

    Parameters
    ----------
    text : str
    references : mapping, default=None
        ``None`` uses :func:`load_references`.
    parentheses : bool, default=False
        Wrap each citation group in parentheses (for running prose).

    Returns
    -------
    str

    Raises
    ------
    UnknownCitationError
        If a cited key is not in the bibliography.

    Examples
    --------
    >>> format_citation("[@mishra2024, Table 3 row 4]; [@marshall1996]")
    'Mishra et al. 2024, Table 3 row 4; Marshall et al. 1996'
    >>> format_citation("6% in 6 months [@mishra2024, Pathophysiology]", parentheses=True)
    '6% in 6 months (Mishra et al. 2024, Pathophysiology)'
    >>> format_citation("[@kalkwarf1995; -@kalkwarf2002]")
    'Kalkwarf & Specker 1995; 2002'
    """

    def render(match: re.Match) -> str:
        out = []
        for prefix, suppress, key, locator in _items(match.group(1)):
            ref = _lookup(key, references)
            item = ref.year if suppress else ref.short()
            item = f"{prefix} {item}" if prefix else item
            out.append(f"{item}, {locator}" if locator else item)
        joined = "; ".join(out)
        return f"({joined})" if parentheses else joined

    return _GROUP.sub(render, text)


def _items(group: str) -> list[tuple[str, bool, str, str]]:
    # (prefix, author suppressed, key, locator) per item of one bracketed group.
    items: list[tuple[str, bool, str, str]] = []
    for part in group.split(";"):
        m = _ITEM.match(part)
        if m is None:  # no @key: a ";" inside the previous item's locator
            if items:
                pre, sup, key, loc = items[-1]
                loc = f"{loc}; {part.strip()}" if loc else part.strip()
                items[-1] = (pre, sup, key, loc)
            continue
        items.append(
            (
                (m.group("prefix") or "").strip(),
                m.group("suppress") == "-",
                m.group("key"),
                m.group("locator").strip().removeprefix(",").strip(),
            )
        )
    return items


def _lookup(key: str, references: Mapping[str, Reference] | None) -> Reference:
    refs = load_references() if references is None else references
    try:
        return refs[key]
    except KeyError:
        raise UnknownCitationError(_unknown_message(key, refs)) from None


def _unknown_message(key: str, refs: Mapping[str, Reference]) -> str:
    close = difflib.get_close_matches(key, list(refs), n=1, cutoff=0.0)
    hint = f"; the closest known key is {close[0]!r}" if close else ""
    return f"unknown citation key {key!r}: no docs/references/*.bib defines it{hint}"


# ------------------------------------------------------------------ BibTeX subset


def _parse_bib(text: str, source: str) -> list[Reference]:
    refs = []
    # An entry starts with "@" at the start of a line; other text is a comment.
    starts = re.compile(r"^[ \t]*@", re.M)
    i = 0
    while True:
        start = starts.search(text, i)
        if start is None:
            return refs
        at = start.end() - 1
        m = re.compile(r"@\s*([A-Za-z]+)\s*([{(])").match(text, at)
        if m is None:
            raise BibliographyError(
                f"{source}:{_line(text, at)}: '@' not followed by type{{"
            )
        entry_type = m.group(1).lower()
        close = _matching(text, m.end() - 1, source)
        body = text[m.end() : close]
        i = close + 1
        if entry_type in ("comment", "preamble", "string"):
            continue
        key, sep, rest = body.partition(",")
        key = key.strip()
        if not sep or not re.fullmatch(_KEY, key):
            raise BibliographyError(
                f"{source}:{_line(text, at)}: @{entry_type} needs 'key,' first, got {key!r}"
            )
        fields = _parse_fields(rest, source, _line(text, at))
        refs.append(Reference(key, entry_type, fields, source))


def _matching(text: str, open_at: int, source: str) -> int:
    opener = text[open_at]
    closer = "}" if opener == "{" else ")"
    depth = 0
    for j in range(open_at, len(text)):
        c = text[j]
        if c == "{" or (opener == "(" and c == "("):
            depth += 1
        elif c == "}" or (opener == "(" and c == ")"):
            depth -= 1
            if depth == 0:
                if c != closer:
                    break
                return j
    raise BibliographyError(f"{source}:{_line(text, open_at)}: unbalanced braces")


def _parse_fields(body: str, source: str, line: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    j, n = 0, len(body)
    name_re = re.compile(r"\s*([A-Za-z][\w-]*)\s*=\s*")
    while True:
        while j < n and body[j] in " \t\r\n,":
            j += 1
        if j >= n:
            return fields
        m = name_re.match(body, j)
        if m is None:
            raise BibliographyError(
                f"{source}:{line}: expected 'field = {{value}}', got {body[j : j + 30]!r}"
            )
        name = m.group(1).lower()
        j = m.end()
        if j < n and body[j] == "{":
            end = _matching(body, j, source)
            raw = body[j + 1 : end]
            j = end + 1
        elif j < n and body[j] == '"':
            end = _closing_quote(body, j + 1)
            if end < 0:
                raise BibliographyError(f"{source}:{line}: unterminated quoted value")
            raw = body[j + 1 : end]
            j = end + 1
        else:
            v = re.compile(r"[\w.-]+").match(body, j)
            if v is None:
                raise BibliographyError(f"{source}:{line}: field {name!r} has no value")
            raw = v.group(0)
            j = v.end()
        if name in fields:
            raise BibliographyError(f"{source}:{line}: field {name!r} given twice")
        fields[name] = raw if name in ("author", "editor") else _clean(raw)


def _closing_quote(body: str, start: int) -> int:
    # The '"' that ends a quoted value is the first one outside braces.
    depth = 0
    for j in range(start, len(body)):
        c = body[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == '"' and depth == 0:
            return j
    return -1


def _clean(value: str) -> str:
    value = _ACCENT.sub(
        lambda m: _ACCENTS[m.group(1).strip()].get(m.group(2), m.group(2)), value
    )
    value = value.replace("{", "").replace("}", "").replace("\\&", "&")
    value = value.replace("--", "-")
    return re.sub(r"\s+", " ", value).strip()


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _split_and(names: str) -> list[str]:
    # "and" separates names only at brace depth 0.
    parts, depth, start = [], 0, 0
    for m in re.finditer(r"[{}]|\s+and\s+", names):
        tok = m.group(0)
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        elif depth == 0:
            parts.append(names[start : m.start()])
            start = m.end()
    parts.append(names[start:])
    return [p.strip() for p in parts if p.strip()]


def _parse_names(names: str) -> list[tuple[str, str]]:
    out = []
    for name in _split_and(names):
        if name == "others":
            out.append(("others", ""))
            continue
        if (
            name.startswith("{")
            and name.endswith("}")
            and _matching(name, 0, "") == len(name) - 1
        ):
            out.append((_clean(name), ""))  # a corporate author, never abbreviated
            continue
        parts = [_clean(p) for p in _split_commas(name)]
        if len(parts) == 1:
            words = parts[0].split()
            last, first, jr = words[-1], " ".join(words[:-1]), ""
        elif len(parts) == 2:
            last, first, jr = parts[0], parts[1], ""
        else:
            last, jr, first = parts[0], parts[1], parts[2]
        initials = "".join(_initials(w) for w in re.split(r"[\s.]+", first) if w)
        out.append((last, " ".join(x for x in (initials, jr) if x)))
    return out


def _split_commas(name: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for j, c in enumerate(name):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(name[start:j])
            start = j + 1
    parts.append(name[start:])
    return [p.strip() for p in parts]


def _initials(word: str) -> str:
    # Hyphenated given names keep one initial per part ("Lu-jiao" -> "LJ").
    return "".join(p[0].upper() for p in word.split("-") if p)


def _author_year(ref: Reference) -> str:
    names = [last for last, _ in ref.authors]
    real = [n for n in names if n != "others"]
    if not real:
        who = ref.fields.get("publisher", ref.key)
    elif len(names) == 1:
        who = real[0]
    elif len(names) == 2 and "others" not in names:
        who = f"{real[0]} & {real[1]}"
    else:
        who = f"{real[0]} et al."
    return f"{who} {ref.year}".strip()


def _author_list(authors: list[tuple[str, str]], *, final: str = ".") -> str:
    shown = [a for a in authors if a[0] != "others"]
    more = len(shown) != len(authors) or len(shown) > 6
    names = [f"{last} {ini}".strip() for last, ini in shown[:6]]
    if not names:
        return ""
    text = ", ".join(names) + (", et al" if more else "")
    return text.rstrip(".") + final

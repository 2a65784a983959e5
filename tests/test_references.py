"""The bibliography: every citation in the package resolves; the resolver's rules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from plo_risk.data.catalog import CatalogError, load_catalog
from plo_risk.data.references import (
    BibliographyError,
    UnknownCitationError,
    cite_keys,
    format_citation,
    load_references,
    reference,
    references_dir,
)

REPO = Path(__file__).resolve().parents[1]
BIB_DIR = REPO / "docs" / "references"
REFS = load_references()
CATALOG_YAML = yaml.safe_load((REPO / "features" / "catalog.yaml").read_text())
# The resolver's own docstrings show the syntax with placeholder keys (@key, @a).
RESOLVER = REPO / "plo_risk" / "data" / "references.py"


def _unknown(keys):
    return sorted(k for k in keys if k not in REFS)


# ------------------------------------------------------- every citation resolves


@pytest.mark.parametrize(
    "field", CATALOG_YAML["fields"], ids=lambda f: f.get("name", "?")
)
def test_catalog_references_resolve(field):
    assert _unknown(cite_keys(field["reference"])) == []


def test_catalog_cites_the_review_by_key_not_by_nickname():
    # "seed Table 3", "params sheet B" and "DESIGN.md" named no publication.
    for field in CATALOG_YAML["fields"]:
        text = field["reference"]
        for old in ("seed ", "params sheet", "DESIGN.md", "PMC"):
            assert old not in text, f"{field['name']}: {text}"


def _strings(node, under_source=False):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, under_source or k in ("source", "reference"))
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, under_source)
    elif isinstance(node, str) and under_source:
        yield node


def test_generator_parameter_citations_resolve():
    # Only the keys already there: the generator's sources are being converted.
    params = yaml.safe_load((REPO / "data" / "synthetic" / "params.yaml").read_text())
    keys = [k for s in _strings(params) for k in cite_keys(s)]
    assert _unknown(keys) == []


def _code_files():
    for path in sorted((REPO / "plo_risk").rglob("*")):
        if path.suffix in (".py", ".yaml", ".md") and path != RESOLVER:
            yield path


@pytest.mark.parametrize(
    "path",
    [*_code_files(), REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_citations_in_code_and_docs_resolve(path):
    assert _unknown(cite_keys(path.read_text(encoding="utf-8"))) == []


# ------------------------------------------------------------- the entries


@pytest.mark.parametrize("key", sorted(REFS))
def test_entry_has_author_title_year_and_venue(key):
    f = REFS[key].fields
    assert f.get("author", "").strip(), key
    assert f.get("title", "").strip(), key
    assert re.fullmatch(r"\d{4}", f.get("year", "")), key
    assert f.get("journal") or f.get("publisher"), key


@pytest.mark.parametrize("key", sorted(REFS))
def test_doi_is_well_formed_or_its_absence_is_said(key):
    f = REFS[key].fields
    if "doi" in f:
        assert re.fullmatch(r"10\.\d{4,9}/\S+", f["doi"]), f["doi"]
    else:
        assert "DOI" in f.get("note", ""), f"{key}: no doi and no note saying why"


def test_no_two_entries_share_a_doi():
    seen: dict[str, str] = {}
    for key, ref in REFS.items():
        doi = ref.fields.get("doi", "").lower()
        if doi:
            assert doi not in seen, f"{key} and {seen[doi]} have doi {doi}"
            seen[doi] = key


def test_core_keys_read_as_first_author_and_year():
    core = load_references([BIB_DIR / "core.bib"])
    for key in core:
        assert re.fullmatch(r"[a-z]+\d{4}[a-z]*", key), key


def test_short_labels_are_unique():
    labels = [r.short() for r in REFS.values()]
    assert len(labels) == len(set(labels))


def test_the_review_is_named():
    assert reference("mishra2024") == (
        "Mishra N, Masroor H, Gupta M. Osteoporosis in Pregnant and Lactating "
        "Females: An Update. Turk J Osteoporos 2024;30(1):1-15. "
        "doi:10.4274/tod.galenos.2023.24392"
    )


# ------------------------------------------------------------- the resolver


def test_unknown_key_names_the_closest():
    with pytest.raises(UnknownCitationError, match=r"'mishra2023'.*'mishra2024'"):
        reference("mishra2023")
    with pytest.raises(KeyError):
        format_citation("[@marshal1996]")


def test_catalog_refuses_an_unknown_key_naming_field_and_key(tmp_path):
    field = {
        "name": "x",
        "group": "nutrition",
        "dtype": "float",
        "unit": "mg",
        "range": [0, 1],
        "missing": True,
        "label": "x",
        "modifiable": False,
        "direction": "none",
        "reference": "[@mishra2024, Table 2]; [@marshal1996]",
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "fields": [field]}))
    with pytest.raises(
        CatalogError,
        match=r"x\.reference: unknown citation key 'marshal1996'.*'marshall1996'",
    ):
        load_catalog(path)


@pytest.mark.parametrize(
    ("text", "keys", "short"),
    [
        ("[@mishra2024]", ["mishra2024"], "Mishra et al. 2024"),
        (
            "[@mishra2024, Table 3 row 4]; [@marshall1996]",
            ["mishra2024", "marshall1996"],
            "Mishra et al. 2024, Table 3 row 4; Marshall et al. 1996",
        ),
        (
            "[@kalkwarf1995; @kovacs2025, p. 3]",
            ["kalkwarf1995", "kovacs2025"],
            "Kalkwarf & Specker 1995; Kovacs 2025, p. 3",
        ),
        (
            "[see @iom2011 chapter 5]",
            ["iom2011"],
            "see Institute of Medicine 2011, chapter 5",
        ),
        ("[-@kalkwarf2002]", ["kalkwarf2002"], "2002"),
        ("[@kanis2004family]", ["kanis2004family"], "Kanis et al. 2004a"),
        ("a [link](https://x.org), [1], a@b.org, [x@y.z]", [], None),
    ],
    ids=["bare", "locator", "group", "prefix", "suppress", "disambiguated", "none"],
)
def test_cite_keys_and_format_citation(text, keys, short):
    assert cite_keys(text) == keys
    assert format_citation(text) == (short if short is not None else text)


def test_parentheses_for_prose():
    assert (
        format_citation("loss [@mishra2024, Pathophysiology].", parentheses=True)
        == "loss (Mishra et al. 2024, Pathophysiology)."
    )


def test_full_forms_of_other_entry_types():
    assert reference("iom2011") == (
        "Institute of Medicine. Dietary Reference Intakes for Calcium and Vitamin D. "
        "The National Academies Press; 2011. doi:10.17226/13050"
    )
    assert reference("platt1999").startswith(
        "Platt JC. Probabilistic outputs for support vector machines"
    )
    assert "In: Smola A, Bartlett P, Schölkopf B, Schuurmans D, editors." in reference(
        "platt1999"
    )
    assert reference("harrell2015rms").startswith("Harrell FE Jr. Regression")


# ------------------------------------------------------------- the BibTeX subset


def _bib(tmp_path, text, name="x.bib"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_quotes_numbers_accents_and_corporate_authors(tmp_path):
    path = _bib(
        tmp_path,
        "% a comment with an @ sign\n"
        '@Article{muller2001,\n  author = "M{\\"u}ller, Hans and {{World Health Organization}}",\n'
        "  title = {The {DXA} scan}, journal = {Bone}, year = 2001,\n"
        "  pages = {1--5}}\n",
    )
    (ref,) = load_references([path]).values()
    assert ref.entry_type == "article"
    assert ref.fields["title"] == "The DXA scan"
    assert ref.fields["pages"] == "1-5"
    assert ref.authors == [("Müller", "H"), ("World Health Organization", "")]
    assert ref.short() == "Müller & World Health Organization 2001"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("@article{a2001, title = {x}", "unbalanced braces"),
        ("@article{, title = {x}}", "needs 'key,' first"),
        ("@article{a2001, title {x}}", "expected 'field = {value}'"),
        ("@article{a2001, title = {x}, title = {y}}", "field 'title' given twice"),
        ('@article{a2001, title = "x}', "unterminated quoted value|unbalanced"),
    ],
    ids=["unbalanced", "no-key", "no-equals", "twice", "unterminated"],
)
def test_malformed_bib_is_refused_with_file_and_line(tmp_path, text, match):
    path = _bib(tmp_path, "\n" + text)
    with pytest.raises(BibliographyError, match=match) as err:
        load_references([path])
    assert f"{path}:2" in str(err.value)


def test_a_key_defined_twice_is_refused(tmp_path):
    one = _bib(tmp_path, "@misc{a2001, title = {x}}", "one.bib")
    two = _bib(tmp_path, "@misc{a2001, title = {y}}", "two.bib")
    with pytest.raises(BibliographyError, match="'a2001' is already defined in"):
        load_references([one, two])


# ------------------------------------------------------------- properties

_KEYS = sorted(REFS)
_LOCATOR = st.text(
    st.characters(blacklist_characters="[]@;", blacklist_categories=("Cs", "Cc")),
    max_size=20,
)
_PROSE = st.text(
    st.characters(blacklist_characters="[]@", blacklist_categories=("Cs",)), max_size=30
)
_ITEM = st.tuples(st.sampled_from(_KEYS), _LOCATOR)
_GROUPS = st.lists(
    st.tuples(_PROSE, st.lists(_ITEM, min_size=1, max_size=3)), max_size=4
)


def _render(groups, tail):
    text, expected, keys = "", "", []
    for prose, items in groups:
        cites, shorts = [], []
        for key, loc in items:
            cites.append(f"@{key}, {loc}" if loc else f"@{key}")
            label = REFS[key].short()
            shorts.append(f"{label}, {loc.strip()}" if loc.strip() else label)
            if key not in keys:
                keys.append(key)
        text += prose + "[" + "; ".join(cites) + "]"
        expected += prose + "; ".join(shorts)
    return text + tail, expected + tail, keys


@settings(max_examples=200, deadline=None)
@given(_GROUPS, _PROSE)
def test_property_keys_and_short_form_of_generated_texts(groups, tail):
    text, expected, keys = _render(groups, tail)
    assert cite_keys(text) == keys
    assert format_citation(text) == expected
    assert "@" not in format_citation(text)


@settings(max_examples=200, deadline=None)
@given(_PROSE)
def test_property_text_without_citations_is_untouched(text):
    assert cite_keys(text) == []
    assert format_citation(text) == text


@settings(max_examples=100, deadline=None)
@given(_GROUPS, _PROSE)
def test_property_formatting_is_idempotent(groups, tail):
    once = format_citation(_render(groups, tail)[0])
    assert format_citation(once) == once


# ------------------------------------------------------------- shipped in the wheel


def test_checkout_reads_every_bib_of_docs_references():
    assert references_dir() == BIB_DIR
    sources = {Path(r.source).name for r in REFS.values()}
    assert sources <= {p.name for p in BIB_DIR.glob("*.bib")}
    assert "core.bib" in sources


def test_every_bib_file_is_force_included_in_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    included = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for path in BIB_DIR.glob("*.bib"):
        rel = f"docs/references/{path.name}"
        assert included.get(rel) == f"plo_risk/_data/references/{path.name}", rel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        + ["--wheel-dir", str(out), str(REPO)],
        check=True,
    )
    (path,) = out.glob("plo_risk-*.whl")
    return path


@pytest.mark.parametrize("name", ["core.bib", "generator.bib"])
def test_wheel_ships_the_bibliography(wheel, name):
    shipped = zipfile.ZipFile(wheel).read(f"plo_risk/_data/references/{name}")
    assert shipped == (BIB_DIR / name).read_bytes()


def test_installed_wheel_resolves_citations_from_another_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet"]
        + ["--target", str(target), str(wheel)],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "from plo_risk.data.references import references_dir, reference; "
        "d = references_dir(); print(d); assert 'site' in str(d); "
        "print(reference('mishra2024'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "doi:10.4274/tod.galenos.2023.24392" in done.stdout

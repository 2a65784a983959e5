"""The package's seams: one-way layers, no cycles, no private names across stages,
and only optional heavy libraries imported inside functions."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.import_contracts import private_name_imports

REPO = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
# What may be imported inside a function, and why: optional or slow to import, and
# only needed by some calls (MLflow runs and URIs, SHAP plots, dask, matplotlib).
LAZY_OK = ("mlflow", "shap", "dask", "distributed", "matplotlib")


def _lint(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    assert LINT, "lint-imports is not installed (pip install -e '.[test]')"
    env = {"PYTHONPATH": f"{cwd}:{REPO}", "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [LINT, "--config", str(config), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_every_import_contract():
    run = _lint(REPO, REPO / ".importlinter")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Contracts: 5 kept, 0 broken." in run.stdout, run.stdout[-2000:]


TOY = {
    "toy/__init__.py": "",
    "toy/low/__init__.py": "",
    "toy/low/a.py": "from toy.low import b\ndef _helper(): pass\n",
    "toy/low/b.py": "from toy.low import a\n",  # a cycle with a
    "toy/high/__init__.py": "",
    "toy/high/c.py": "from toy.low.a import _helper\n",  # a private name
    "toy/low/d.py": "def f():\n    from toy.high import c\n",  # upward, in a function
}


def test_the_contracts_catch_each_kind_of_violation(tmp_path):
    for name, text in TOY.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    # The same contract types and options as .importlinter, on a toy package.
    ours = (REPO / ".importlinter").read_text()
    toy_config = tmp_path / ".importlinter"
    toy_config.write_text(
        ours.split("[importlinter:contract:layers]")[0].replace("plo_risk", "toy")
        + TOY_CONTRACTS
    )
    run = _lint(tmp_path, toy_config)
    assert run.returncode != 0
    out = run.stdout
    assert "Layers BROKEN" in out
    assert "toy.low.d -> toy.high.c" in out
    assert "Acyclic BROKEN" in out
    assert "Private names BROKEN" in out
    assert "toy.high.c (l.1) imports the private name _helper from toy.low.a" in out


TOY_CONTRACTS = """
[importlinter:contract:layers]
name = Layers
type = layers
containers = toy
layers =
    high
    low

[importlinter:contract:acyclic]
name = Acyclic
type = acyclic_siblings
ancestors = toy

[importlinter:contract:private-names]
name = Private names
type = private_names
root = toy
"""


def test_private_names_rule_allows_the_same_subpackage(tmp_path, monkeypatch):
    for name, text in {
        "toy2/__init__.py": "",
        "toy2/low/__init__.py": "",
        "toy2/low/a.py": "def _helper(): pass\n",
        "toy2/low/b.py": "from toy2.low.a import _helper\nfrom .a import _helper\n",
        "toy2/up.py": "from .low.a import _helper\n",
    }.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert private_name_imports("toy2") == [("toy2.up", 1, "toy2.low.a", "_helper")]


def _function_imports() -> list[tuple[str, int, str, bool]]:
    found = []
    for path in sorted((REPO / "plo_risk").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom):
                    module = sub.module or ""
                elif isinstance(sub, ast.Import):
                    module = sub.names[0].name
                else:
                    continue
                # The reason is a comment on the import, or on the consecutive
                # imports above it, or on the line just above them.
                k = sub.lineno - 1
                reason = "#" in lines[k]
                while not reason and k > 0:
                    k -= 1
                    above = lines[k].strip()
                    reason = "#" in above
                    if not above.startswith(("import ", "from ")):
                        break
                rel = str(path.relative_to(REPO))
                found.append((f"{rel}:{sub.lineno}", sub.lineno, module, reason))
    return found


@pytest.mark.parametrize(
    ("where", "module", "reason"),
    [(w, m, r) for w, _, m, r in _function_imports()],
    ids=[w for w, *_ in _function_imports()],
)
def test_only_optional_heavy_libraries_are_imported_in_functions(where, module, reason):
    assert module.split(".")[0] in LAZY_OK, (
        f"{where}: 'import {module}' inside a function; move it to the top of the "
        f"module (only {', '.join(LAZY_OK)} may be imported lazily)"
    )
    assert reason, f"{where}: a lazy import of {module} needs a one-line reason"


def test_function_imports_are_found():
    # The parametrized check above must not pass by finding nothing.
    assert any(m.startswith("mlflow") for _, _, m, _ in _function_imports())


def test_first_wave_module_names_still_work():
    code = textwrap.dedent(
        """
        from plo_risk.synthetic import generate_cohort
        from plo_risk.schema import validate_frame
        from plo_risk.models import make_model, recalibrate
        from plo_risk.bundle import BundleError, load_bundle
        from plo_risk.assess import RiskModel
        from plo_risk.registry import ingest
        from plo_risk.scoring import score_cohort
        from plo_risk.evaluation import auroc
        from plo_risk.features import build_pipeline
        from plo_risk.catalog import load_catalog
        from plo_risk.omop import to_omop
        import plo_risk.data.synthetic as new
        assert generate_cohort is new.generate_cohort
        print("ok")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr

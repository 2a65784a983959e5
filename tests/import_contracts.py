"""A custom import-linter contract: no private names imported across subpackages.

import-linter's own ``private_modules`` contract covers private *modules*
(``plo_risk.model._checks``); this one covers private *names*: ``from
plo_risk.model.features import _helper`` in a module of another stage
(``plo_risk.explain``, ``plo_risk.serve``, ...) is a violation. STYLE.md: if a
second stage needs ``_helper``, it becomes a public function of the lower stage.
Within one subpackage (``plo_risk.data.ingest.flat`` and ``.omop``) it is allowed.

Used from ``.importlinter`` (``lint-imports`` runs from the repository root, which
it puts on ``sys.path``); ``tests/test_layers.py`` runs it.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _stage(module: str, root: str) -> str:
    """``plo_risk.model.features`` -> ``plo_risk.model`` (its subpackage)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[0] == root else module


def private_name_imports(root: str) -> list[tuple[str, int, str, str]]:
    """Every ``(importer, line, imported module, name)`` that breaks the rule."""
    spec = importlib.util.find_spec(root)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{root!r} is not an importable package")
    base = Path(next(iter(spec.submodule_search_locations)))
    found = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        importer = ".".join(parts)
        package = importer if path.name == "__init__.py" else importer.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:  # relative: resolve against the importer's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                imported = ".".join(anchor + ([node.module] if node.module else []))
            else:
                imported = node.module or ""
            if not imported.startswith(root + ".") and imported != root:
                continue
            if _stage(imported, root) == _stage(importer, root):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append((importer, node.lineno, imported, alias.name))
    return found


class PrivateNamesContract(Contract):
    """No ``from <pkg>.<stage>... import _name`` from another stage of the package.

    Configuration options:

        - root: the package to check (its subpackages are the stages).
    """

    type_name = "private_names"

    root = fields.StringField()

    def check(self, graph, verbose: bool) -> ContractCheck:
        violations = private_name_imports(str(self.root))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, line, imported, name in check.metadata["violations"]:
            output.print_error(
                f"{importer} (l.{line}) imports the private name {name} from "
                f"{imported}: make it public in that stage, or move the code"
            )
            output.new_line()

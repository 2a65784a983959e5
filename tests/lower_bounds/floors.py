"""Print the dependency floors of pyproject.toml as pip constraints (``name==floor``).

``make lower-bounds`` installs with these, so the floors that are tested are the
floors that are declared. Only the package's own dependencies (not the extras).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def floors(path: Path = PYPROJECT) -> list[str]:
    """``name==floor`` for every ``name>=floor`` dependency; others are refused."""
    deps = tomllib.loads(path.read_text())["project"]["dependencies"]
    out = []
    for dep in deps:
        m = _FLOOR.match(dep)
        if m is None:
            raise SystemExit(f"{path}: {dep!r} has no '>=' lower bound to test")
        out.append(f"{m.group(1)}=={m.group(2)}")
    return out


if __name__ == "__main__":
    sys.stdout.write("\n".join(floors()) + "\n")

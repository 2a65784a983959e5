"""Hostile inputs shared by the tests: bundles forged as anyone with write access
can, and values nested deeper than any parser recurses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from plo_risk.model.bundle import MANIFEST, _canonical


def reseal(path: Path) -> None:
    """Recompute every digest of the manifest after its files were changed (the
    files that are no longer regular files are dropped from the list)."""
    manifest = json.loads((path / MANIFEST).read_text())
    manifest.pop("manifest_sha256", None)
    manifest["files"] = {
        name: hashlib.sha256((path / name).read_bytes()).hexdigest()
        for name in manifest.get("files", {})
        if (path / name).is_file()
    }
    manifest["manifest_sha256"] = hashlib.sha256(_canonical(manifest)).hexdigest()
    (path / MANIFEST).write_bytes(_canonical(manifest))


def deep_list(depth: int) -> list:
    """``[[[...]]]`` nested ``depth`` levels, built without recursion."""
    top: list = []
    inner = top
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return top

"""The README's Python examples run and print what it says."""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    result = doctest.testfile(
        str(README),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
    )
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


# ------------------------------------------------- the shell commands, outside


# Verbs that run until stopped or need a service: tested where they are started
# and stopped (tests/test_web_browser.py serves a real uvicorn, test_scoring a
# Dask cluster); `demo` is `make demo`.
_NOT_HERE = ("demo", "serve", "audit")
# Rows per generated cohort: few, but enough fractures to evaluate on (the
# population's risk is about 1 in 10,000).
_SMALL_N = {"referral": 3000, "population": 100_000}

# A small experiment in the user's own training/ folder: the README's command,
# verbatim, reads it (the shipped compare.yaml takes minutes).
_SMALL_COMPARE = """\
name: compare
data:
  train: {source: synthetic, n: 2000, setting: referral, seed: 1}
  test: {source: synthetic, n: 2000, setting: referral, seed: 2}
models:
  - {name: xgboost, params: {n_estimators: 40}}
  - {name: logistic_regression}
cv: {folds: 2}
evaluation: {n_boot: 20}
champion: {register: true, allow_weak: true}
"""


def readme_commands(text: str) -> list[str]:
    """Every ``plo-risk`` line of the README's bash blocks, continuations joined
    and comments dropped; ``...`` stands for the arguments of the line before."""
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #", 1)[0].strip()
            if not line.startswith("plo-risk "):
                continue
            if " ... " in line and out:
                line = line.replace("plo-risk score ...", out[-1], 1)
            out.append(line)
    return out


def test_readme_commands_run_from_a_folder_outside_the_clone(tmp_path):
    exe = Path(sys.executable).with_name("plo-risk")
    assert exe.is_file(), exe
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "compare.yaml").write_text(_SMALL_COMPARE)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    ran = []
    for command in readme_commands(README.read_text()):
        args = shlex.split(command)
        if args[1] in _NOT_HERE or "dask" in args:
            continue
        if "--n" in args:
            i = args.index("--n") + 1
            setting = args[args.index("--setting") + 1] if "--setting" in args else ""
            args[i] = str(min(int(args[i]), _SMALL_N.get(setting, 3000)))
        done = subprocess.run(
            [str(exe), *args[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        assert "Traceback" not in done.stderr, command
        ran.append(args[1])
    # the README's whole path: compare, generate, report, validate, score
    assert {"compare", "generate", "report", "validate", "score"} <= set(ran), ran
    assert (tmp_path / "mlflow.db").is_file()
    assert (tmp_path / "report.html").is_file()
    assert any((tmp_path / "scored").iterdir())


def test_a_shipped_experiment_is_found_from_any_folder(tmp_path, monkeypatch):
    from plo_risk.training import load_experiment

    monkeypatch.chdir(tmp_path)
    for given in ("training/compare.yaml", "compare"):
        assert load_experiment(given).name == "compare"
    with pytest.raises(FileNotFoundError):
        load_experiment("training/no_such_experiment.yaml")

# The README's two commands: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs, pinned by
# constraints.txt (the lock) so an install is reproducible.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[test]'
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/plo-risk demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check plo_risk tests benchmarks

# Re-resolve the lock from pyproject.toml's lower bounds (run after changing deps).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet -e '.[test]'
	.lockvenv/bin/python -m pip freeze --exclude-editable | grep -v '^plo-risk' > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) build dist *.egg-info

# The README's two commands: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs, pinned by
# constraints.txt (the lock) so an install is reproducible.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint lock clean chromium

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

# The model-card test renders the report in Debian's chromium (driven by playwright;
# no browser download): installed when missing if we are root with apt-get.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "chromium is missing: install it with 'sudo apt-get install chromium'" \
	      "(or set PLO_RISK_SKIP_BROWSER=1 to skip the browser test)"; \
	  fi; }

test: $(VENV)/.installed-test chromium
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check plo_risk tests benchmarks

# Re-resolve the lock from pyproject.toml's lower bounds (run after changing deps).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet -e '.[test]'
	{ echo '# Lock: exact versions resolved from pyproject.toml lower bounds (make lock), used as pip -c.'; \
	  .lockvenv/bin/python -m pip freeze --exclude-editable | grep -v '^plo-risk'; } > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) build dist *.egg-info

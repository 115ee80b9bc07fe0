# The two commands a fresh machine needs: `make demo` and `make test`.
# Each creates .venv when it is missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint typecheck unit bench clean postgresql chromium sandbox

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $@

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $(STAMP) $@

demo: $(DEMO_STAMP) sandbox
	$(BIN)/aios demo

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# The state tests also run on PostgreSQL: they start Debian's server (initdb, pg_ctl) on
# loopback, so install it when it is missing. CI is a fresh Debian machine running as
# root; elsewhere, without root or apt-get, the PostgreSQL variants skip (and fail
# where CI is set).
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's postgresql for the tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
		else \
			echo "no PostgreSQL server (initdb) and no root apt-get to install it"; \
		fi; \
	fi

# The dashboard's tests drive Debian's chromium with Playwright (whose own browser
# download is not available here), so install it when it is missing, as for PostgreSQL.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the dashboard tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
		else \
			echo "no /usr/bin/chromium and no root apt-get to install it"; \
		fi; \
	fi

# Every job runs in a bubblewrap sandbox (util-linux's unshare and setpriv are on every
# Debian machine); the image tests build an OCI image from Debian's busybox-static. As
# for PostgreSQL, both are installed when missing where root can apt-get; elsewhere
# the control plane runs jobs unsandboxed (and says so) and those tests skip.
sandbox:
	@if ! command -v bwrap >/dev/null || ! dpkg -s busybox-static >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's bubblewrap and busybox-static for the sandbox"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends bubblewrap busybox-static >/dev/null; \
		else \
			echo "no bwrap (bubblewrap) and no root apt-get to install it: jobs run unsandboxed"; \
		fi; \
	fi

unit: $(TEST_STAMP) postgresql chromium sandbox
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_cycle.py
	$(BIN)/python benchmarks/bench_replay.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache

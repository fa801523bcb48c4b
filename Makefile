# Tollgate: `make run` serves the console, admin and API; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint chromium node-clients bench

$(VENV)/.installed: requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Tollgate needs Python 3.11"'
	$(PYTHON) -m venv $(VENV) || (echo "Could not create a virtualenv: apt-get install python3.11-venv" && false)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py bootstrap
	$(PY) manage.py serve --host $(HOST) --port $(PORT) --celery

test: install chromium node-clients
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

# The static checks of `make test` alone (mypy reads [tool.mypy] in pyproject.toml).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Browser tests drive Debian's Chromium; install it where missing (needs root or sudo).
chromium:
	@sh scripts/ensure-chromium.sh

# The official Node SDKs (tests/node) and the real agents (tests/agents: Codex CLI),
# pinned by their lockfiles; their tests are skipped, visibly, without npm.
node-clients:
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/node --no-audit --no-fund --loglevel=error && \
		npm ci --prefix tests/agents --no-audit --no-fund --loglevel=error; \
	else echo "warning: npm not found: the Node SDK and agent tests will be skipped" >&2; fi

bench: install
	$(PY) bench/overhead.py
	$(PY) bench/overhead.py --upstream-delay-ms 200 --upstream-chunk-delay-ms 10 --concurrency 16,64

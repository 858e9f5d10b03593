# learnsail developer tasks.  `make run` installs everything into .venv and
# starts the server; `make test` runs the suite (SQLite), `make test-mariadb`
# runs it against a throw-away MariaDB.

PY ?= python3
VENV = .venv
VENV_BIN = $(VENV)/bin
PIP = $(VENV_BIN)/python -m pip

# every plugins/<dir>/ that is a Python project (may be empty)
PLUGIN_DIRS := $(patsubst %/setup.cfg,%,$(wildcard plugins/*/setup.cfg))

PYTEST_ARGS ?=
ARGS ?=

.PHONY: venv install run install-test test test-mariadb bench clean

venv:
	@test -x $(VENV_BIN)/python || $(PY) -m venv $(VENV)
	@$(PIP) install --quiet --upgrade pip

install: venv
	$(PIP) install -e . $(foreach d,$(PLUGIN_DIRS),-e $(d))

# `learnsail serve` also starts the realtime WebSocket gateway, printing its
# URL (ws://127.0.0.1:6544/ws by default; ARGS="--realtime-port N" moves it).
run: install
	$(VENV_BIN)/learnsail init
	$(VENV_BIN)/learnsail serve $(ARGS)

install-test: venv
	$(PIP) install -e '.[test]' $(foreach d,$(PLUGIN_DIRS),-e '$(d)[test]')

test: install-test
	$(VENV_BIN)/python -m pytest $(PYTEST_ARGS)

test-mariadb: install-test
	LEARNSAIL_TEST_DB=mariadb $(VENV_BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(VENV_BIN)/python bench/startup_and_overhead.py

clean:
	rm -rf $(VENV) var build dist .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +

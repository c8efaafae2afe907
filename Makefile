# `make test` is the one test command: on a fresh machine it makes a virtualenv, installs nbchat
# with its test tools, installs Debian's chromium for the browser tests when it is missing,
# then runs the linters, the type checker and the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
LINTED := nbchat tests benchmarks notebooks/run_headless.py

.PHONY: test lint typecheck pytest install browser-deps bench quickstart clean

test: install browser-deps lint typecheck pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

browser-deps:
	@sh .ci/ensure-chromium

lint: install
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)

typecheck: install
	$(PY) -m mypy

# Exit code 5 means pytest collected no tests: not a failure of the code under test.
pytest: install
	$(PY) -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: install
	$(PY) benchmarks/stream_parse.py
	$(PY) benchmarks/render_stream.py
	$(PY) benchmarks/load_time.py
	$(PY) benchmarks/frame_summary.py

# Runs the quickstart notebook headless and writes it as HTML to build/notebooks/: against
# your API when a key is configured, otherwise against the bundled loopback server.
quickstart: install
	$(PY) notebooks/run_headless.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

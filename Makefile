# `make test` is the one test command: on a fresh machine it makes a virtualenv, installs nbchat
# with its test tools, installs Debian's chromium for the browser tests when it is missing,
# then runs the linters, the type checker and the test suite. `make quickstart` and `make lab`
# use a smaller virtualenv of their own (.venv-notebooks) with what the notebooks need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
LINTED := nbchat tests benchmarks notebooks/run_headless.py notebooks/run_lab.py
# The notebooks' own virtualenv (`make quickstart`, `make lab`): nbchat with its `lab` and
# `examples` extras only, none of the test tools.
# LiteLLM's proxy, a real OpenAI-compatible gateway the tests talk to, lives in a virtualenv of
# its own: litellm[proxy] pins polars and python-dateutil versions nbchat must not be held to.
# 1.108.8 and later pin litellm-enterprise/litellm-proxy releases the package index lacks.
LITELLM_VENV ?= .venv-litellm
LITELLM_SPEC ?= litellm[proxy]>=1.108,<1.108.8
# llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`), another real server the
# tests talk to, serving a tiny random-weight model tests/make_tiny_gguf.py writes. PyPI has it
# only as an sdist that compiles llama.cpp: one portable CPU build (AVX2, not -march=native) of
# the libraries the server loads, without the multimodal library, tests or examples, two jobs at
# the lowest priority so the machine stays usable.
LLAMA_VENV ?= .venv-llama
LLAMA_SPEC ?= llama-cpp-python[server]>=0.3.36,<0.4
GGUF_SPEC ?= gguf>=0.17,<1
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_CCACHE=OFF
NB_VENV ?= .venv-notebooks
NB_PY := $(NB_VENV)/bin/python
LAB_ARGS ?=

.PHONY: test lint typecheck pytest install litellm llama browser-deps bench notebooks-install quickstart lab \
	clean

test: install litellm llama browser-deps lint typecheck pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

litellm: $(LITELLM_VENV)/.installed

$(LITELLM_VENV)/.installed:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LITELLM_VENV)/bin/python -m pip install --quiet "$(LITELLM_SPEC)"
	touch $@

llama: $(LLAMA_VENV)/.installed

$(LLAMA_VENV)/.installed:
	$(PYTHON) -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
		nice -n 19 $(LLAMA_VENV)/bin/python -m pip install --quiet "$(LLAMA_SPEC)" "$(GGUF_SPEC)"
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

notebooks-install: $(NB_VENV)/.installed

$(NB_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(NB_VENV)
	$(NB_PY) -m pip install --quiet --upgrade pip
	$(NB_PY) -m pip install --quiet -e ".[lab,examples]"
	touch $@

# Runs the notebooks headless and writes them as HTML to build/notebooks/: against your API when
# a key is configured, otherwise against the bundled loopback server. Their conversations go to
# a temporary NBCHAT_HOME, not to your history file.
quickstart: notebooks-install
	$(NB_PY) notebooks/run_headless.py

# JupyterLab on notebooks/, talking to the loopback server (canned replies, no key needed);
# the server stops when JupyterLab exits. Options for `jupyter lab` go in LAB_ARGS.
lab: notebooks-install
	$(NB_PY) notebooks/run_lab.py $(LAB_ARGS)

clean:
	rm -rf $(VENV) $(NB_VENV) $(LITELLM_VENV) $(LLAMA_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

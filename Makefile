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
# llama.cpp's OpenAI-compatible servers, more real servers the tests talk to, serving a tiny
# random-weight model tests/make_tiny_gguf.py writes: `python -m llama_cpp.server` and the C++
# `llama-server`. PyPI has llama-cpp-python only as an sdist that compiles llama.cpp: one
# portable CPU build (AVX2, not -march=native) without the multimodal library, tests, examples or
# web UI, two jobs at the lowest priority so the machine stays usable. Its source and build
# directory are kept in the virtualenv, so that `llama-server` then compiles only the server's
# own files on top of the libraries the Python package was built with.
LLAMA_VENV ?= .venv-llama
LLAMA_VERSIONS ?= >=0.3.36,<0.4
GGUF_SPEC ?= gguf>=0.17,<1
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_CCACHE=OFF
LLAMA_SERVER_CMAKE_ARGS ?= -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
	-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF
LLAMA_BUILD := nice -n 19 env CMAKE_BUILD_PARALLEL_LEVEL=2
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
	@sh .ci/ensure-build-tools
	rm -rf $(LLAMA_VENV)
	$(PYTHON) -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LLAMA_VENV)/bin/python -m pip download --quiet --no-deps --no-binary llama-cpp-python \
		-d $(LLAMA_VENV)/src "llama-cpp-python$(LLAMA_VERSIONS)"
	tar -xzf $(LLAMA_VENV)/src/llama_cpp_python-*.tar.gz -C $(LLAMA_VENV)/src
	source=$$(find $(abspath $(LLAMA_VENV))/src -maxdepth 1 -type d -name 'llama_cpp_python-*') && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(LLAMA_BUILD) $(LLAMA_VENV)/bin/python -m pip install \
		--quiet -C build-dir=$(abspath $(LLAMA_VENV))/build "$${source}[server]" "$(GGUF_SPEC)"
	cmake $(LLAMA_SERVER_CMAKE_ARGS) $(LLAMA_VENV)/build > $(LLAMA_VENV)/server-build.log 2>&1 && \
		$(LLAMA_BUILD) cmake --build $(LLAMA_VENV)/build --target llama-server \
		>> $(LLAMA_VENV)/server-build.log 2>&1 || { tail -40 $(LLAMA_VENV)/server-build.log; exit 1; }
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
	$(PY) benchmarks/request_building.py
	$(PY) benchmarks/explain_context.py

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

# The course's two commands: `make book` and `make test`. Both set themselves up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
STAMP  := $(VENV)/.installed-stamp
ASSETS := book/_assets/node_modules/.installed-stamp

# Small models on two busy cores run fastest single-threaded; numpy's BLAS threads would otherwise
# spin against torch's (a 0.2 ms attention call became 4 ms).
export OPENBLAS_NUM_THREADS := 1
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help setup lab execute book epub test test-lib test-notebooks test-book test-browser clean-book lint freeze bench cpu-robust

help:
	@echo "make book   build the book into _build/html (sets everything up first), and its EPUB"
	@echo "make epub   build the whole book as _build/epub/attention-executed.epub"
	@echo "make test   lint, library tests, nbval over every notebook, a clean -W book build, browser tests"
	@echo "make lab    open the chapters in JupyterLab (widgets live, any input)"
	@echo "make execute NB=notebooks/01_*.ipynb   re-run a chapter, storing its outputs"
	@echo "make lint   ruff over src/ and tests/"
	@echo "make bench  time every notebook, the book build and the test suite (benchmarks/)"
	@echo "make cpu-robust  nbval over every notebook with PyTorch's vectorised CPU kernels off"

# --- set-up -------------------------------------------------------------------------------------
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-deps -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

setup: $(STAMP) $(ASSETS)

# Offline copies of MathJax, require.js and the widget renderer come from the npm registry;
# book/_ext/offline_assets.py copies them into each build. Only files are needed: no install scripts.
$(ASSETS): book/_assets/package.json book/_assets/package-lock.json
	cd book/_assets && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's chromium for the browser tests (never a browser downloaded by Playwright).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

# Re-execute chapters in place to refresh their stored outputs: make execute NB=notebooks/02_*.ipynb
NB ?= notebooks/*.ipynb
execute: setup
	for nb in $(NB); do $(VENV)/bin/jupyter-execute --inplace --kernel_name=python3 "$$nb"; done

# --- the book -----------------------------------------------------------------------------------
book: setup
	$(JB) build . --toc book/_toc.yml -W --keep-going
	@$(MAKE) --no-print-directory epub
	@echo "The book's front page: $(CURDIR)/_build/html/index.html"

# The whole book as one EPUB (no scripts: widgets become a note, math MathML), offline. Its build
# also copies it into _build/html/_downloads/, where every page's download menu points.
epub: setup
	$(JB) build . --toc book/_toc.yml -W --keep-going --builder custom --custom-builder epub
	@echo "The EPUB: $(CURDIR)/_build/epub/attention-executed.epub"

clean-book:
	rm -rf _build

# --- tests --------------------------------------------------------------------------------------
test: setup /usr/bin/chromium
	$(MAKE) --no-print-directory lint test-lib test-notebooks test-book test-browser

test-lib: setup
	$(PY) -m pytest tests --ignore=tests/browser -q

test-notebooks: setup
	$(PY) -m pytest --nbval notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  --nbval-current-env -q

# The notebooks once more with PyTorch's SIMD kernels switched off: other kernels, other rounding in
# the last bits, and the stored outputs must still reproduce. A sign that the printed results do not
# hang on one machine's arithmetic; it is not a GPU run (README, "What has been run where").
cpu-robust: setup
	ATEN_CPU_CAPABILITY=default $(MAKE) --no-print-directory test-notebooks

test-book: setup clean-book
	$(JB) build . --toc book/_toc.yml -W --keep-going
	$(JB) build . --toc book/_toc.yml -W --keep-going --builder custom --custom-builder epub

test-browser: setup /usr/bin/chromium
	@test -f _build/html/index.html || $(MAKE) --no-print-directory book
	$(PY) -m pytest tests/browser -q

lint: setup
	$(PY) -m ruff check src tests benchmarks book/_ext

freeze: $(STAMP)
	$(PY) -m pip freeze --all --exclude-editable | grep -v '^attnlib\|^pip==' > /tmp/attn-freeze.txt
	@echo "compare /tmp/attn-freeze.txt with requirements.txt and update the pins you meant to change"

bench: setup
	$(PY) benchmarks/run.py

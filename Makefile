# One venv, pip only. torch is pinned to the CPU wheel (torch==2.13.0); a looser spec pulls a CUDA build.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup browser demo test test-all bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (alpaca-gym needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	# py_vollib_vectorized 0.1.1 (the pricing benchmark's peer) only installs this way.
	$(PY) -m pip install --quiet --no-deps py_vollib_vectorized==0.1.1 py_lets_be_rational==1.0.1 py_vollib==1.0.1
	touch $(STAMP)

setup: $(STAMP)

## Set up and run the main job on the embedded synthetic market.
demo: $(STAMP)
	$(PY) -m experiments.demo

## The browser tests drive Debian's chromium (reports and the dashboard are checked in a real browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the browser tests"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
		else echo "error: the browser tests need chromium: sudo apt-get install -y chromium"; exit 1; fi; }

## Set up and run the fast test suite.
test: $(STAMP) browser
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

## Everything, slow tests included.
test-all: $(STAMP) browser
	$(PY) -m pytest -q -m ""

bench: $(STAMP)
	$(PY) -m experiments.bench all

clean:
	rm -rf $(VENV) runs reports

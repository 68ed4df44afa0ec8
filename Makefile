# Two commands a newcomer needs:  `make book`  and  `make test`.
# Both create .venv on first use and are quick when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VENDOR := book/_static/vendor
VENDOR_STAMP := $(VENDOR)/.fetched
# Torch uses this many threads in notebooks and tests (the reference machine has 2 cores).
export OMP_NUM_THREADS ?= 2
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test unit nbval browser env vendor clean

env: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# MathJax, RequireJS and the ipywidgets HTML manager, served from _static so the
# built book needs no CDN.  Fetched once from the npm registry at pinned versions.
vendor: $(VENDOR_STAMP)
MATHJAX_VERSION := 3.2.2
REQUIREJS_VERSION := 2.3.8
HTML_MANAGER_VERSION := 1.0.15
$(VENDOR_STAMP): Makefile
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/.tmp
	cd $(VENDOR)/.tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) requirejs@$(REQUIREJS_VERSION) \
	    @jupyter-widgets/html-manager@$(HTML_MANAGER_VERSION) >/dev/null
	mkdir -p $(VENDOR)/mathjax $(VENDOR)/requirejs $(VENDOR)/html-manager
	tar xzf $(VENDOR)/.tmp/mathjax-$(MATHJAX_VERSION).tgz -C $(VENDOR)/mathjax --strip-components=1 package/es5 package/LICENSE
	tar xzf $(VENDOR)/.tmp/requirejs-$(REQUIREJS_VERSION).tgz -C $(VENDOR)/requirejs --strip-components=1 package/require.js
	tar xzf $(VENDOR)/.tmp/jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION).tgz -C $(VENDOR)/html-manager \
	    --strip-components=1 package/dist
	rm -rf $(VENDOR)/.tmp
	@touch $@

book: $(STAMP) $(VENDOR_STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

unit: $(STAMP)
	$(PY) -m pytest -q -m "not browser" tests

nbval: $(STAMP)
	$(PY) -m pytest -q --nbval-lax -p no:randomly notebooks

browser: $(STAMP) book
	$(PY) -m pytest -q -m browser tests

# Every test: unit and property tests, nbval over every notebook, the -W book
# build, then the browser tests against the built book.
test: unit nbval book browser

clean:
	rm -rf _build

# Two commands a newcomer needs:  `make book`  and  `make test`.
# Both create .venv on first use and are quick when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VENDOR := book/_static/vendor
VENDOR_STAMP := $(VENDOR)/.fetched
# Threads are not fixed here.  `make book` measures the load when it starts and picks how
# many chapters execute at once and OMP_NUM_THREADS for each (book/_ext/execution.py; the
# measurements are benchmarks/threads.py's): two OpenMP threads per process collapse when
# another program holds a core.  Set OMP_NUM_THREADS yourself to override.  The tests run
# with one thread, which never collapses.
TEST_THREADS ?= 1
# The unit tests run in parallel (pytest-xdist), one process per core, at most 4: each test
# uses one thread, and every test writes only under its own tmp_path (ports are picked free).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test unit nbval nbval-full browser env vendor clean

env: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# MathJax and math.js, served from _static so the built book needs no CDN.  Fetched once from
# the npm registry at pinned versions.  (The explorers need no widget manager: they render as our own
# small viewers, book/_static/ddpm_frames.js and schedule_explorer.js.)
vendor: $(VENDOR_STAMP)
MATHJAX_VERSION := 3.2.2
# math.js parses the reader's answer to an exercise in the built book (book/_static/exercises.js).
MATHJS_VERSION := 15.2.0
$(VENDOR_STAMP): Makefile
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/.tmp
	cd $(VENDOR)/.tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null
	mkdir -p $(VENDOR)/mathjax
	tar xzf $(VENDOR)/.tmp/mathjax-$(MATHJAX_VERSION).tgz -C $(VENDOR)/mathjax --strip-components=1 package/es5 package/LICENSE
	cd $(VENDOR)/.tmp && npm pack --silent mathjs@$(MATHJS_VERSION) >/dev/null
	mkdir -p $(VENDOR)/mathjs
	tar xzf $(VENDOR)/.tmp/mathjs-$(MATHJS_VERSION).tgz -C $(VENDOR)/.tmp package/lib/browser/math.js package/LICENSE
	sed '/^\/\/# sourceMappingURL=/d' $(VENDOR)/.tmp/package/lib/browser/math.js > $(VENDOR)/mathjs/math.js
	cp $(VENDOR)/.tmp/package/LICENSE $(VENDOR)/mathjs/LICENSE
	rm -rf $(VENDOR)/.tmp
	@touch $@

# jupyter-cache keys an executed notebook on its code cells alone, and Sphinx re-reads a page
# only when its source changes, so after a change to the package the chapters import the book
# would keep outputs drawn by the old code (a widget without its precomputed frames, say).  A
# change under src/ drops both caches: the next build re-executes and re-reads every chapter.
PKG_SOURCES := $(shell find src/ddpm_lite -name '*.py' 2>/dev/null)
PKG_STAMP := _build/.package-stamp
$(PKG_STAMP): $(PKG_SOURCES)
	rm -rf _build/.jupyter_cache _build/.doctrees
	mkdir -p _build && touch $@

# Sphinx copies book/_static only when some page is rebuilt, so an edit to the explorers'
# JS/CSS (or the theme override, or the Sphinx hook) alone would not reach _build/html: it
# drops the doctrees, and the pages are re-read from the execution cache (no kernel runs).
BOOK_ASSETS := $(wildcard book/_static/*.js book/_static/*.css book/_static/*.svg book/_templates/*/*.html book/_ext/*.py)
ASSET_STAMP := _build/.assets-stamp
$(ASSET_STAMP): $(BOOK_ASSETS)
	rm -rf _build/.doctrees
	mkdir -p _build && touch $@

# The book.  book/_ext/build.py executes, in parallel, every chapter without a clean run of
# its current code in _build/.jupyter_cache, then runs `jupyter-book build . -W -n
# --keep-going`, which finds them all there.  The execution cache is the record of success:
# only a clean execution enters it, so a chapter that raised or timed out fails this target
# (naming the chapter and its log in _build/html/reports/) on every run until it executes;
# the `execution` Sphinx extension does the same for a plain `jupyter-book build`, and
# prints every chapter's own execution time, slowest first.  Trained networks live in the
# model store, _build/models (ddpm_lite/book/store.py): each is trained once.
book: $(STAMP) $(VENDOR_STAMP) $(PKG_STAMP) $(ASSET_STAMP)
	$(PY) book/_ext/build.py .

unit: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(TEST_THREADS)} $(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15 -m "not browser" tests

# What nbval checked, without executing every chapter a second time: nbval re-ran each
# notebook that `book` had just executed.  tests/test_build_outputs.py checks the
# executions the book build stored instead — every code cell ran, none raised, cells tagged
# nbval-check-output match their stored outputs, stored notebooks carry no outputs.  It
# looks them up by the chapter's current code, so a changed chapter is never validated
# from an old run: `book` (a prerequisite) executes it first, and without it the test fails.
nbval: $(STAMP) book
	DDPM_REQUIRE_BUILD=1 $(PY) -m pytest -q -p no:randomly tests/test_build_outputs.py

# nbval proper: every chapter executed once more in a fresh kernel (about 6 minutes more).
nbval-full: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(TEST_THREADS)} $(PY) -m pytest -q --nbval-lax -p no:randomly notebooks

browser: $(STAMP) book
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(TEST_THREADS)} $(PY) -m pytest -q -m browser tests

# Every test: the -W book build (which executes the chapters), the validation of those
# executions (nbval), unit and property tests, then the browser tests against the book.
test: book nbval unit browser

clean:
	rm -rf _build

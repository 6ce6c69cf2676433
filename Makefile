# Two commands for a newcomer: `make run` (install + build out/ from notes/) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test install sandbox test-deps lint bench clean

run: install sandbox
	$(BIN)/ankigen build notes/ -o out/ankigen.apkg

# Checks run only inside bubblewrap. Install it when we can (root with apt), else say so in
# one line; never fail: the build still completes, its checks marked "not run".
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	     { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	       { apt-get update -qq >/dev/null 2>&1 && \
	         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; }; \
	  then echo "make run: installed bubblewrap (the sandbox checks run in)"; \
	  else echo "make run: checks will not run until bubblewrap is installed (sudo apt-get install bubblewrap)"; fi; }

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[torch,grader,service,test]'
	rm -f $(VENV)/.installed-*; touch $@

# Debian packages the tests drive: Chromium (page/screenshot tests) and bubblewrap (sandbox).
test-deps:
	@if ! command -v chromium >/dev/null || ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium bubblewrap >/dev/null; \
	  else echo "make test: chromium and bubblewrap are needed; install them (sudo apt-get install chromium bubblewrap)"; exit 1; fi; \
	fi

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
# Types and lint first: main stays clean, not only green.
test: install test-deps lint
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests ran"; exit 1; fi; exit $$rc

lint: install
	$(BIN)/mypy
	$(BIN)/ruff check ankigen grader

bench: install
	$(BIN)/python bench/bench_build.py
	$(BIN)/python bench/bench_checks.py

clean:
	rm -rf $(VENV) out/*.apkg .pytest_cache .mypy_cache

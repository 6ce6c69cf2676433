# Two commands for a newcomer: `make run` (install + build out/ from notes/) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test install test-deps lint bench clean

run: install
	$(BIN)/ankigen build notes/ -o out/ankigen.apkg

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[torch,grader,test]'
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

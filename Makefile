# The two set-up commands in README.md are `make demo` and `make test`; both bootstrap a
# virtualenv in .venv from pyproject.toml on first use (nothing else to install by hand).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,postgres]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/retrainer demo --workdir demo-out

# Two workers (pytest-xdist): the suite's slow part is the demo, the flows and real servers, which
# wait as much as they compute. --dist loadscope keeps a module on one worker, so a module-scoped
# fixture (a whole demo run) runs once, not once per worker: the 2,000-a-day demo ran twice (2 x 9
# min) under the default distribution, 18.6 min for the suite.
test: $(STAMP)
	bash scripts/ensure-postgres-binaries
	$(BIN)/python -m pytest -n 2 --dist loadscope $(PYTEST_ARGS)

# The edit loop: everything but the slow and PostgreSQL tests (CI still runs `make test`).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not postgres" $(PYTEST_ARGS)

# Every bench runs, a failing one does not stop the rest; the failures are named at the end.
# `make bench BENCH_ARGS=--smoke` runs each in seconds (as tests/test_benches.py does).
bench: $(STAMP)
	@failed=""; for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b $(BENCH_ARGS) || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "bench failures:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis

# Two commands do all the set-up: `make demo` and `make test` (`make test-fast` skips the slow).
# Both create .venv on first use and reinstall only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,metrics,dev,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mlworker demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# Everything but the end-to-end tests marked slow: the policies in-process, in under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) mlworker-data .pytest_cache .mypy_cache .ruff_cache

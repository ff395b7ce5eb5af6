# Two commands on a fresh machine: `make demo` and `make test`. Each creates ./.venv first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint bench bench-stream install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# bytecode, as pip writes it for an installed package (an editable install leaves it to the
	# first run, which does not write it where PYTHONDONTWRITEBYTECODE is set)
	$(BIN)/python -m compileall -q src/assay
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/assay demo

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench

test: lint
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python bench/bench_core.py
	$(BIN)/python bench/bench_mining.py
	$(BIN)/python bench/bench_push.py

# needs NATS (JetStream) and PostgreSQL on 127.0.0.1, as .ci/run starts them
bench-stream: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python bench/bench_stream.py

clean:
	rm -rf $(VENV) assay-demo .pytest_cache .ruff_cache

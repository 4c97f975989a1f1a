# The two commands of a fresh machine: `make run` (the dev stack) and `make test`.
# Both create .venv and install band with everything it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "band needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,examples,redis,edge,trace,dev,store]'
	touch $(STAMP)

install: $(STAMP)

run: install  ## NATS (if none answers) + the edge on :8080 + every service in examples/
	$(BIN)/band up

test: install  ## every test, slow fault tests included, against nats-servers the tests start
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

bench: install
	$(BIN)/python bench/bench_rpc.py
	$(BIN)/python bench/bench_edge.py

clean:
	rm -rf $(VENV) .band .pytest_cache

# One entry point per chore. CI calls `make test` and nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test check bench bench-quick servers install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The bench extra (Celery) has a stamp of its own: `make test` never installs it.
$(BENCH_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## demo: the embedded product with a built-in shop simulator (under a minute)
demo: $(STAMP)
	$(BIN)/cartflow demo

## servers: make sure redis-server and the PostgreSQL server binaries exist
servers:
	@if ! command -v redis-server >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing redis-server and postgresql (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server postgresql >/dev/null; \
	  else \
	    echo "redis-server and postgresql are needed for the tests: sudo apt-get install redis-server postgresql" >&2; exit 1; \
	  fi; \
	fi
	@command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null

## test: the whole suite, real Redis and PostgreSQL included
test: $(STAMP) servers
	$(BIN)/python -m pytest -q

## check: lint and types
check: $(STAMP)
	$(BIN)/ruff check cartflow/__init__.py engine providers workers tests bench
	$(BIN)/mypy

## bench: the hot path on one thread, timer dispatch on PostgreSQL, the features rebuild of an
## upgrade, then reminders end to end against Celery, Dramatiq and APScheduler (about 1.5 h on
## 2 cores; each starts its own servers; results go to BENCHMARKS.md).
## Smaller: .venv/bin/python bench/reminders.py --reminders 2000 --events 10000
bench: $(BENCH_STAMP) servers
	$(BIN)/python bench/hotpath.py --write
	$(BIN)/python bench/timers.py --write
	$(BIN)/python bench/backfill.py --shoppers 2000 --write
	$(BIN)/python bench/reminders.py --write

## bench-quick: reminders end to end, every part and system at small sizes (under 5 min on
## 2 cores; prints the tables, writes nothing)
bench-quick: $(BENCH_STAMP) servers
	$(BIN)/python bench/reminders.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The README's two commands are `make demo` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv up down status logs migrate register demo chaos bench bench-quick browser test test-long test-unit test-integration test-e2e lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

up: venv
	$(PY) -m stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m stack down; else echo "stack is not running"; fi

status: venv
	$(PY) -m stack status

logs: venv
	$(PY) -m stack logs -n 60

migrate: venv
	set -a && . .stack/stack.env && set +a && $(PY) -m batchcore.migrate

# Options after ARGS=, e.g. make register ARGS="--dry-run" or ARGS="--replace-poller-loop".
register: venv
	set -a && . .stack/stack.env && set +a && $(PY) scripts/register_workflows.py $(ARGS)

demo: up
	$(PY) scripts/demo.py

# Long fault scenarios against the running stack (about 15 minutes); figures in
# bench/results/chaos.json.
chaos: up
	$(PY) -m chaos $(SCENARIOS) $(if $(REPEAT),--repeat $(REPEAT))

# Benchmarks against the running stack, each figure a ratio to a baseline measured in the
# same run (about 30 minutes on 2 cores): a table, and bench/results/latest.json.
bench: up
	$(PY) -m bench

# The same, shorter (about 3 minutes): fewer runs, shorter phases. Also BENCH_QUICK=1.
bench-quick: up
	$(PY) -m bench --quick

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The browser tests' chromium (apt) and axe-core (npm, pinned in tests/browser/), when missing.
browser: venv
	$(PY) -m stack.browser

test: up lint browser
	$(PY) -m pytest tests -m "not long_fault" --durations=25 $(PYTEST_ARGS)

# The stack fault tests that wait out Conductor's own timers (about 14 minutes): on demand.
test-long: up
	$(PY) -m pytest tests -m long_fault $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: up
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: up browser
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

clean: down
	rm -rf .stack

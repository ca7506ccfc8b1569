# The template repository's tasks. The rendered service has its own Makefile.
.DEFAULT_GOAL := help
PYTHON ?= python3
.PHONY: help install test lint relock requirements demo bench bench-secrets bench-tasks bench-container bench-try bench-requirements bench-tracing

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-13s %s\n", $$1, $$2}'

install: ## Install the pinned test tools into the current environment
	$(PYTHON) -m pip install --require-hashes -r requirements-test.txt

test: ## Render every supported combination and run each render's checks
	$(PYTHON) -m pytest

lint: ## Lint and type-check the template's own Python
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

demo: ## Render the defaults into ./my-service and run it locally
	$(PYTHON) -m cookiecutter --no-input --overwrite-if-exists . && cd my-service && $(PYTHON) -m uv run python scripts/dev.py

relock: ## Rewrite the rendered service's uv.lock template (needs the package index)
	$(PYTHON) scripts/relock.py

requirements: ## Re-pin requirements-try.txt and requirements-test.txt from pyproject.toml
	for group in try test; do \
		$(PYTHON) -m uv pip compile pyproject.toml --group $$group --generate-hashes --universal \
			--python-version 3.11 --custom-compile-command "make requirements" \
			-o requirements-$$group.txt; \
	done
	for tool in checkov schemathesis; do \
		$(PYTHON) -m uv pip compile tests/requirements-$$tool.in --generate-hashes --universal \
			--python-version 3.11 --custom-compile-command "make requirements" \
			-o tests/requirements-$$tool.txt; \
	done

bench-secrets: ## Secret loading: ours vs pydantic-settings' built-in source
	$(PYTHON) bench/bench_secrets.py

bench-tasks: ## Enqueue throughput: one reused client vs a client per call
	$(PYTHON) bench/bench_tasks.py
	$(PYTHON) bench/bench_tasks.py --latency 0.02 --runs 3

bench-container: ## Image size and start time: multi-stage vs a one-stage pip image
	$(PYTHON) bench/bench_container.py

bench-try: ## The README's first command from a fresh clone, empty caches, run twice
	$(PYTHON) bench/bench_try_it.py

bench: ## Cold start, throughput and memory against the floors and alternatives; writes docs/benchmarks.md
	$(PYTHON) bench/bench_service.py
	$(PYTHON) bench/bench_tracing.py

bench-tracing: ## Cold start with tracing on and off; writes docs/benchmarks-tracing.md
	$(PYTHON) bench/bench_tracing.py

bench-requirements: ## Re-pin the benchmark contenders' requirements from their requirements.in
	for requirements in bench/contenders/*/requirements.in bench/requirements-chart.in; do \
		$(PYTHON) -m uv pip compile $$requirements --generate-hashes --universal \
			--python-version 3.11 --custom-compile-command "make bench-requirements" \
			-o $${requirements%.in}.txt; \
	done

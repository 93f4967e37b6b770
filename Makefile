# Two commands do everything: `make run` (local stack + demo data) and `make test` (every test).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c constraints.txt -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

# `make run API_PORT=18080 AWS_PORT=14566` asks for those ports (an error if taken); without them the defaults
# (8080, 4566) are used, or free ports when those are taken (the banner says which). RUN_ARGS=--no-demo etc.
run: $(STAMP)
	$(VENV)/bin/profilevault local up $(if $(API_PORT),--api-port $(API_PORT)) \
		$(if $(AWS_PORT),--aws-port $(AWS_PORT)) $(RUN_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

# The quick ones (a few minutes); see benchmarks/ and the README for the others (local stack, 100k, 1M rows).
bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.ingest cpu --rows 50000 --repeat 3
	$(VENV)/bin/python -m benchmarks.ingest calls --rows 1000
	$(VENV)/bin/python -m benchmarks.unification.run --records 10000

clean:
	rm -rf $(VENV) .profilevault

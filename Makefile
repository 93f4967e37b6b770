# Two commands do everything: `make run` (local stack + demo data) and `make test` (every test).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

# The SAM CLI pins other versions of boto3, click and cryptography than the application: it has a venv of its own.
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM := SAM_CLI_TELEMETRY=0 $(CURDIR)/$(SAM_VENV)/bin/sam
# sam build runs pip under the functions' runtime, python3.13, found on PATH. A pyenv shim on PATH is not enough
# (it fails unless 3.13 is pyenv's selected version): take the first python3.13 that runs.
PYTHON313 ?= $(shell for p in $$(which -a python3.13) /root/.pyenv/versions/3.13*/bin/python3.13; do \
                 "$$p" -c '' 2>/dev/null && { echo "$$p"; break; }; done)
BUILD := .aws-sam
# What the builds read. Hashed by content, so a test run writing __pycache__ or a fresh checkout rebuilds nothing.
BUILD_INPUTS := template.yaml requirements.txt constraints.txt functions layers tools/x86_64_template.py

.PHONY: run test lint build bench venv clean FORCE

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c constraints.txt -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

$(SAM_STAMP): requirements-sam.txt constraints-sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet -c constraints-sam.txt -r requirements-sam.txt
	touch $(SAM_STAMP)

# `make run API_PORT=18080 AWS_PORT=14566` asks for those ports (an error if taken); without them the defaults
# (8080, 4566) are used, or free ports when those are taken (the banner says which). RUN_ARGS=--no-demo etc.
run: $(STAMP)
	$(VENV)/bin/profilevault local up $(if $(API_PORT),--api-port $(API_PORT)) \
		$(if $(AWS_PORT),--aws-port $(AWS_PORT)) $(RUN_ARGS)

lint: $(STAMP) $(SAM_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/mypy
	$(SAM) validate --lint --template template.yaml --region eu-central-1

# The deployed build (arm64, in .aws-sam/build where `sam deploy` looks) and its x86_64 twin, which the artifact
# test imports on this machine (arm64 binary wheels cannot load here). Both run only when an input changed.
build: $(BUILD)/built.stamp

$(BUILD)/inputs.sha256: FORCE
	@mkdir -p $(@D)
	@find $(BUILD_INPUTS) -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort | xargs sha256sum > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(BUILD)/pins.sha256: FORCE
	@mkdir -p $(@D)
	@sha256sum requirements.txt constraints.txt > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# --cached: SAM rebuilds only what changed, and a layer whose manifest did not change gets its dependencies from
# .aws-sam/deps instead of pip. That manifest only points at requirements.txt and constraints.txt, so SAM cannot see
# the pins change: new pins drop what it kept. SAM keeps deps in ./.aws-sam/deps and deletes other builds' entries
# there, so the twin builds from its own folder. The two builds share only the sources and mostly wait on pip:
# they run side by side (logs in .aws-sam/build-*.log).
X86 := $(BUILD)/x86_64
SAM_BUILD = PATH="$(dir $(PYTHON313)):$$PATH" $(SAM) build --cached
$(BUILD)/built.stamp: $(BUILD)/inputs.sha256 $(BUILD)/pins.sha256 $(SAM_STAMP) tools/x86_64_template.py
	@test -n "$(PYTHON313)" || { echo "sam build needs Python 3.13 (the functions' runtime) and found none on PATH" \
	  "or in /root/.pyenv/versions/3.13*: install it, or run make with PYTHON313=/path/to/python3.13" >&2; exit 1; }
	@if [ $(BUILD)/pins.sha256 -nt $@ ]; then rm -rf $(BUILD)/cache $(BUILD)/deps $(X86)/cache $(X86)/.aws-sam; fi
	$(SAM_VENV)/bin/python tools/x86_64_template.py template.yaml $(X86)/template.json
	@echo "sam build: arm64 into $(BUILD)/build, x86_64 into $(X86)/build, with $(PYTHON313)"
	@$(SAM_BUILD) --template template.yaml > $(BUILD)/build-arm64.log 2>&1 & arm64=$$!; \
	 (cd $(X86) && $(SAM_BUILD) --template template.json --base-dir $(CURDIR) --build-dir build --cache-dir cache) \
	   > $(BUILD)/build-x86_64.log 2>&1 & x86_64=$$!; \
	 failed=""; wait $$arm64 || failed="arm64"; wait $$x86_64 || failed="$$failed x86_64"; \
	 for arch in $$failed; do tail -n 40 $(BUILD)/build-$$arch.log; echo "sam build ($$arch) failed" >&2; done; \
	 test -z "$$failed"
	echo "$(PYTHON313)" > $(BUILD)/python313
	touch $@

# The two venvs, the linters and the builds mostly wait on PyPI and the disk: they run two at a time, then the tests.
test:
	$(MAKE) --no-print-directory --jobs=2 --output-sync=target lint build
	$(VENV)/bin/pytest

# The quick ones (a few minutes); see benchmarks/ and the README for the others (local stack, 100k, 1M rows).
bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.ingest cpu --rows 50000 --repeat 3
	$(VENV)/bin/python -m benchmarks.ingest calls --rows 1000
	$(VENV)/bin/python -m benchmarks.unification.run --records 10000

clean:
	rm -rf $(VENV) $(SAM_VENV) $(BUILD) .profilevault

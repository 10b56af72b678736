# The two commands of the README's quick start, and the install step both share.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

# Test-only tools outside the venv (checkov's pins clash with ours): Groovy from Debian, npm-groovy-lint
# (15.2.2: newer releases need Node >= 22) in a project-local npm prefix, checkov in its own venv.
TOOLS        = .tools
GROOVY_LINT  = $(TOOLS)/npm/node_modules/.bin/npm-groovy-lint
CHECKOV      = $(TOOLS)/checkov/bin/checkov
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint install tools groovy clean bench

demo: install  ## run the whole promotion story on the embedded sandbox
	$(BIN)/sandbox demo

# One worker per core; a test file stays on one worker (its module fixtures are built once), and each worker
# has its own sandbox server and home.
test: install tools  ## run the test suite (what CI runs)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

install: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)  # an existing venv (or a link to one) is reused
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

# Static checks, each configured in pyproject.toml or the tool's own file: ruff (lint and format), mypy,
# terraform fmt and validate (offline: the provider comes from the mirror the sandbox unpacks), and the
# Jenkinsfile's Groovy lint. CI runs this before the tests (.ci/run); so does the Jenkinsfile.
TF_LINT = .terraform-work/lint

lint: install $(GROOVY_LINT)  ## static checks: ruff, mypy, Terraform fmt/validate, Groovy lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/terraform fmt -check -recursive mlops-infra
	rm -rf $(TF_LINT) && mkdir -p $(TF_LINT) && cp -R mlops-infra $(TF_LINT)/infra
	$(BIN)/python -c 'from sandbox.terraform import cli_config, ensure_provider_mirror as mirror; \
	  print(cli_config(mirror()), end="")' > $(TF_LINT)/terraform.rc
	cd $(TF_LINT)/infra && export TF_CLI_CONFIG_FILE=$(abspath $(TF_LINT))/terraform.rc TF_IN_AUTOMATION=1 && \
	  $(abspath $(BIN))/terraform init -backend=false -input=false -no-color >/dev/null && \
	  $(abspath $(BIN))/terraform validate -no-color
	# C1 compiler and serial GC: a short JVM run at half the CPU (as tests/jenkins runs it)
	JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" $(GROOVY_LINT) --noserver --failon error --loglevel warning Jenkinsfile

tools: groovy $(GROOVY_LINT) $(CHECKOV)  ## what the Terraform and Jenkinsfile tests run (idempotent)

groovy:
	@command -v groovy >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends groovy >/dev/null; }

$(GROOVY_LINT):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS)/npm npm-groovy-lint@15.2.2

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet 'checkov>=3.2,<4'

bench: install
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache $(TOOLS) .terraform-work

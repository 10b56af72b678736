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

test: install tools  ## run the test suite (what CI runs)
	$(BIN)/python -m pytest -q

install: $(STAMP)

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: install  ## static checks the Jenkinsfile runs before the tests: Terraform formatting, Python syntax
	$(BIN)/terraform fmt -check -recursive mlops-infra
	$(BIN)/python -m compileall -q promote pipelines iam sandbox

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

# The two commands of the README's quick start, and the install step both share.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test install clean bench

demo: install  ## run the whole promotion story on the embedded sandbox
	$(BIN)/sandbox demo

test: install  ## run the test suite (what CI runs)
	$(BIN)/python -m pytest -q

install: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

bench: install
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache

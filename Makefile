# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install origine, run the demo end to end through Dagster
#   make test   - create .venv with the test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test ui clean

$(BIN)/origine: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,celery]'
	touch $@

demo: $(BIN)/origine
	$(BIN)/origine demo --home .origine-demo

test: $(BIN)/origine
	$(BIN)/pytest -n 2 -q

ui: $(BIN)/origine
	$(BIN)/origine ui --home .origine-demo

clean:
	rm -rf $(VENV) .origine-demo

PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first (a CPU wheel from this machine's disk), then the package and every plugin, editable.
$(STAMP): $(BIN)/python pyproject.toml $(PLUGINS)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/gptstore demo --workdir .demo

# the import-linter contracts in pyproject.toml (layers, no cycles, core never imports plugins) first
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q tests $(foreach p,$(PLUGINS),$(dir $(p))tests)

bench: install
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/server.py
	$(BIN)/python bench/pull.py

clean:
	rm -rf $(VENV) build *.egg-info

# Set-up and the two everyday commands. Everything installs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; on a GPU machine use e.g. `make TORCH_SPEC=torch quickstart`.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: quickstart test lint clean

# A .venv made before the distribution was renamed automl-pareto still holds "automl", whose entry
# points name the same built-in plugins (automl refuses a plugin name from two distributions): it
# is uninstalled first.
$(BIN)/automl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	if $(BIN)/python -m pip show --quiet automl 2>/dev/null; then $(BIN)/python -m pip uninstall --quiet --yes automl; fi
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# One thread: the quickstart's models are tiny, and a second costs more CPU than it saves (docs/speed.md).
quickstart: $(BIN)/automl
	$(BIN)/automl run studies/quickstart.toml --threads 1

test: $(BIN)/automl
	$(BIN)/python -m pytest

# mypy reads its files and settings from pyproject.toml.
lint: $(BIN)/automl
	$(BIN)/ruff check automl plugins
	$(BIN)/mypy

clean:
	rm -rf $(VENV) *.egg-info

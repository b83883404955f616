# cac-lightning: `make demo` (main job) and `make test`. Every target installs first when .venv is missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install test test-slow test-install demo lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,nnunet]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The wheel ships the configs; a fresh venv runs `cac-train experiment=smoke` outside the repo.
test-install: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests/test_install.py

demo: $(STAMP)
	$(BIN)/cac-train experiment=demo

lint: $(STAMP)
	$(BIN)/ruff check cac_lightning tests benchmarks
	$(BIN)/ruff format --check cac_lightning tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format cac_lightning tests benchmarks
	$(BIN)/ruff check --fix cac_lightning tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_scoring.py
	$(BIN)/python benchmarks/bench_synth.py --cases 20x128

clean:
	rm -rf $(VENV) outputs .pytest_cache

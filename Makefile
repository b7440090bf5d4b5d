# tracker: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
TORCH ?= 2.13.0
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
export PATH := $(BIN):$(PATH)

.PHONY: install demo test lint bench bench-optimize bench-compare bench-queue docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q 'torch==$(TORCH)'  # CPU build first, so the gp extra pulls no CUDA
	$(BIN)/python -m pip install -q -e '.[all,gp,dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## venv with tracker, every extra (gp: CPU PyTorch) and the dev tools

demo: $(STAMP)  ## create a project from the bundled template, run 3 seeds, check out the code a trial ran
	rm -rf demo && mkdir -p demo
	printf 'template: default\ncontext:\n  project_name: Digits Demo\n' > demo/conf.yaml
	cd demo && tracker create conf.yaml --no-input
	cd demo/digits-demo && tracker run baseline --seeds 3 && tracker trials list
	cd demo/digits-demo && first=$$(tracker trials list | awk -F'\t' 'NR == 2 {print $$1}') && \
		tracker checkout "$$first" --to ../first-trial-code && cmp train.py ../first-trial-code/train.py

test: $(STAMP)  ## lint, then the whole test suite (starts its own sshd hosts and emulators)
	$(BIN)/ruff check tracker tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check tracker tests benchmarks

docs: $(STAMP)  ## regenerate docs/cli.md from the commands' --help
	$(BIN)/python scripts/cli_reference.py > docs/cli.md

bench: $(STAMP)  ## side-by-side timings (see docs/performance.md)
	$(BIN)/python benchmarks/bench_cli.py

bench-optimize: $(STAMP)  ## tracker optimize against plain Optuna and Guild AI (about 10 minutes; docs/performance.md)
	$(BIN)/python benchmarks/bench_optimize.py

bench-compare: $(STAMP)  ## tracker compare over 100k trials against Guild AI and MLflow (about 30 minutes; docs/performance.md)
	$(BIN)/python benchmarks/bench_compare.py

bench-queue: $(STAMP)  ## queue claims and workers on PostgreSQL against PyExperimenter on MariaDB (about 10 minutes; docs/performance.md)
	$(BIN)/python benchmarks/bench_queue.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache

# embedbench — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
# the CPU build on this machine; GPU users: make install TORCH=torch (a CUDA build) and pip install faiss-gpu-cu12
TORCH ?= torch==2.13.0
ARGS ?=
BIN := $(VENV)/bin
export EMBEDBENCH_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE ?= 1

.PHONY: help install lint test train eval sweep compare ui bench recipes clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: ## venv, torch first (never a CUDA build by accident), then embedbench with test extras
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"

lint: ## ruff: lint and import order (settings in pyproject.toml)
	$(BIN)/ruff check embedbench tests scripts

test: lint ## lint, then the whole test suite (real MiniLM, real FAISS, real MLflow; minutes)
	$(BIN)/python -m pytest -q

train: ## the headline run: MRL MiniLM, InfoNCE, SciFact (ARGS= adds overrides)
	$(BIN)/embedbench train model=mrl loss=infonce data=scifact $(ARGS)

eval: ## score MiniLM on SciFact + STS-B (ARGS= adds overrides)
	$(BIN)/embedbench eval $(ARGS)

sweep: ## a tiny two-run sweep, grouped in MLflow
	$(BIN)/embedbench train -m trainer=debug loss.temperature=0.02,0.05 $(ARGS)

compare: ## table of the runs in the store, best first
	$(BIN)/embedbench compare $(ARGS)

ui: ## MLflow UI on http://127.0.0.1:5000
	$(BIN)/embedbench ui $(ARGS)

bench: ## SciFact eval: embedbench fp32, bf16, encode=fast and encode=int8 vs mteb, wall time and nDCG@10 (minutes)
	$(BIN)/python scripts/bench_eval.py $(ARGS)

clean: ## remove run outputs, the MLflow store and caches (keeps the venv)
	rm -rf outputs multirun .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

recipes: ## docs/results/recipes.md's table: one sweep of the nine recipes, then the table
	$(BIN)/embedbench eval model=mrl eval=beir hydra.run.dir=outputs/recipes_untrained
	$(BIN)/embedbench train -m experiment=recipe_infonce,recipe_mined,recipe_gradcache,recipe_margin_mse,recipe_tas_b,recipe_kl_distill,recipe_wasserstein,recipe_mirror,recipe_cropping logger.experiment=recipes hydra.sweep.dir=outputs/recipes
	$(BIN)/python scripts/recipes_table.py outputs/recipes --untrained outputs/recipes_untrained/results.json

# Self-documenting: `make help` prints each target's ## line.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MLOPS := $(VENV)/bin/mlops
PYTEST_ARGS ?=

.PHONY: help setup setup-test demo test test-fast lint format bench images images-gpu clean

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: ## create .venv and install the project (runtime)
	scripts/bootstrap.sh run

setup-test: ## install the project, test tools, Chromium and npm-groovy-lint
	scripts/bootstrap.sh test

demo: setup ## the main job: demo data -> code pipeline -> approve -> local API (stop: mlops deploy --target local --stop)
	$(MLOPS) pipeline code --approve-as product-owner --deploy

test: setup-test ## set up and run every test (slow and container ones included), printing pytest's summary
	scripts/docker-engine.sh start
	$(PY) -m pytest $(PYTEST_ARGS); status=$$?; scripts/docker-engine.sh stop; exit $$status

test-fast: setup-test ## run the tests not marked slow (no containers)
	$(PY) -m pytest -m "not slow and not docker" $(PYTEST_ARGS)

images: ## build mlops-xray-train and mlops-xray-api as CI does (starts a Docker engine if none answers)
	scripts/docker-engine.sh start
	scripts/build-images.sh

images-gpu: ## build mlops-xray-train:gpu (CUDA TensorFlow) for the GKE training Job
	scripts/docker-engine.sh start
	scripts/build-images.sh --gpu

lint: setup-test ## ruff check and format check, mypy over every package (strict on core/ and registry/)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup-test ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup-test ## run every benchmark and print its table
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## remove local state (.mlops) and caches, keeping .venv
	rm -rf .mlops .pytest_cache .ruff_cache .mypy_cache

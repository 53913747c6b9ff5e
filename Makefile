# Every command in README.md is a target here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast lint train deploy experiments experiments-quick bench reliability docker lock clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "needs Python 3.11 (python3.11 or python3 on the PATH)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[training,serving,dev]"
	# TensorFlow Serving's own gRPC client, for the tests: its stubs only, since its dependencies would
	# replace tensorflow-cpu with the full tensorflow wheel.
	$(PY) -m pip install --quiet --no-deps "tensorflow-serving-api==2.21.*"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with everything installed

run: setup  ## serve the default model on http://127.0.0.1:8000
	$(PY) -m service

test: setup  ## the whole suite, Docker test included (installs and starts the engine when root)
	scripts/system-deps.sh
	$(PY) -m pytest

test-fast: setup  ## the suite without Docker, fresh-virtualenv installs and the slow reliability tests
	$(PY) -m pytest -m "not docker and not slow and not install"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

train: setup  ## retrain the default model and publish it as the next version of models/mnist
	$(PY) -m training train

deploy: setup  ## train, gate, publish and wait for the server at $(SERVER) to serve it
	$(PY) -m training deploy --server $(or $(SERVER),http://127.0.0.1:8000)

experiments: setup  ## the full BN experiment grid: docs/experiments.md and docs/*.png
	$(PY) -m training experiments

experiments-quick: setup
	$(PY) -m training experiments --quick --out /tmp/experiments-quick

bench: setup  ## the side-by-side benchmark: BENCHMARKS.md (installs MLServer in its own venv first)
	test -x bench/.venv-mlserver/bin/mlserver || { $(PYTHON) -m venv bench/.venv-mlserver && \
		bench/.venv-mlserver/bin/pip install --quiet "mlserver==1.7.*" tensorflow==2.21.0 "uvloop<0.22"; }
	$(PY) -m bench

reliability: setup  ## the reliability suite at full size (60 s soak): RELIABILITY.md
	RELIABILITY_SCALE=full $(PY) -m pytest tests/reliability --reliability-report RELIABILITY.md

lock: setup  ## regenerate requirements/serving.txt, the image's pinned dependencies
	$(PY) scripts/lock-serving.py

docker:  ## build the image (see docs/docker.md for offline builds)
	DOCKER_BUILDKIT=1 docker build -t bn-mnist-serving .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

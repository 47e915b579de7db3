# `make demo` and `make test` work alone on a fresh machine: each sets up .venv (and the
# Fashion-MNIST files, where apt-get can install them) first when they are missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data demo test bench lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,all]'
	touch $(STAMP)

# The Debian package `dataset-fashion-mnist` ships the four IDX files; elsewhere the data layer
# downloads them (or says exactly what to do when it cannot).
data:
	@if [ ! -f $(FASHION_MNIST) ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist \
			|| echo "could not install dataset-fashion-mnist; the data layer will try a download"; \
	fi

demo: setup data
	$(BIN)/resnet demo

test: setup data
	$(BIN)/python -m pytest -q

bench: setup data
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/inference.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

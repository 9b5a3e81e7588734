PYTHON ?= python3
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install install-dev test test-fast demo bench clean

install:
	$(PYTHON) -m pip install $(PIP_FLAGS) -r requirements.txt

install-dev: install
	$(PYTHON) -m pip install $(PIP_FLAGS) -r requirements-dev.txt

## make test: install everything the tests need, then run the whole suite.
test: install-dev
	$(PYTHON) -m pytest

## make test-fast: the unit tests only (no end-to-end training).
test-fast: install-dev
	$(PYTHON) -m pytest -m "not slow"

## make demo: generate synthetic plates, split, train, fine-tune, evaluate (offline, CPU).
demo: install
	$(PYTHON) demo.py

clean:
	rm -rf outputs/demo checkpoints/demo data/demo

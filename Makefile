PYTHON ?= python3
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install install-dev test test-fast demo bench clean

install:
	$(PYTHON) -m pip install $(PIP_FLAGS) -r requirements.txt

install-dev: install
	$(PYTHON) -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	    || { echo "make: WARNING: could not install chromium; the browser test of serve.py will be skipped" \
	         "(in CI, CI=true or EAST_STRICT_SKIPS=1, it fails instead)" >&2; }; }

## make test: install everything the tests need, then run the whole suite, TEST_WORKERS test files at a time
## (module fixtures stay in one process: --dist loadfile).
TEST_WORKERS ?= 2
test: install-dev
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile

## make test-fast: the unit tests only (no end-to-end training).
test-fast: install-dev
	$(PYTHON) -m pytest -m "not slow"

## make demo: generate synthetic plates, split, train, fine-tune, evaluate (offline, CPU).
demo: install
	$(PYTHON) demo.py

clean:
	rm -rf outputs/demo checkpoints/demo data/demo

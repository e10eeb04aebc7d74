# Everything a fresh machine needs, from Python 3.11+ and make alone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

# Pinned, hashed dependency sets, written from pyproject.toml by `make lock`:
# requirements.lock is what the image installs; requirements-dev.lock is the same pins plus the
# test tools and the build backend, and is what `make` installs, so the tested set is the shipped set.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
BUILD_LOCK := requirements-build.lock
# Only `make lock` needs uv, in a venv of its own (never part of the tested set).
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UV_COMPILE := $(TOOLS)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_FLAGS)
BUILD_REQUIRES := $(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'

.PHONY: demo run test fuzz bench install lock clean

# Reinstall only when the locked set or the project's metadata changes. The project itself goes
# in without dependencies and without build isolation: everything it needs comes from the lock.
$(STAMP): $(DEV_LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

# The dev set is resolved first; the runtime and build sets are then constrained to its pins.
# `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release the ranges allow.
lock: $(TOOLS)/bin/uv
	$(BUILD_REQUIRES) | $(UV_COMPILE) --extra dev pyproject.toml - -o $(DEV_LOCK)
	$(UV_COMPILE) pyproject.toml -c $(DEV_LOCK) -o $(LOCK)
	$(BUILD_REQUIRES) | $(UV_COMPILE) - -c $(DEV_LOCK) -o $(BUILD_LOCK)

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

demo: $(STAMP)
	$(BIN)/liqmap demo --port $(PORT)

run: $(STAMP)
	$(BIN)/liqmap serve --port $(PORT)

# Two test processes (pytest-xdist; the e2e deployments one after another in one of them); TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# Schemathesis over the whole served OpenAPI document (valid, invalid and known-market requests
# on every route): `make test` sends a dozen per route and mode, this many (about 10 minutes).
FUZZ_EXAMPLES ?= 250
fuzz: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration/test_openapi_fuzz.py --fuzz-examples=$(FUZZ_EXAMPLES)

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) $(TOOLS) .liqmap .pytest_cache .hypothesis

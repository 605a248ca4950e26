# ferry — developer entry points. `make demo` and `make test` are the two
# commands README.md promises; CI runs `make test` through .ci/run.

SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c

BUILD_DIR    ?= build
BUILD_TYPE   ?= RelWithDebInfo
JOBS         ?= 2
SYS_PYTHON   ?= /usr/bin/python3
VENV         := .venv
PY           := $(VENV)/bin/python
# Upper bound for the whole pytest run so a hung test cannot eat CI's budget.
PYTEST_TIMEOUT_S ?= 1800

.PHONY: all deps build venv test test-cc test-py demo bench clean

all: build

deps:
	@echo "== deps: Debian packages"
	bash scripts/install-deps.sh

build: deps
	@echo "== build: cmake configure + build ($(BUILD_TYPE))"
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD_DIR) -j$(JOBS)
	@$(MAKE) --no-print-directory venv

# A venv that sees Debian's packages (numpy, torch, dask, ...) and imports
# ferry from this checkout's python/ (where the build drops _core*.so).
venv:
	@if [ ! -x $(PY) ]; then \
	  echo "== venv: $(SYS_PYTHON) -m venv --system-site-packages $(VENV)"; \
	  $(SYS_PYTHON) -m venv --system-site-packages $(VENV); \
	fi
	@site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  echo "$(CURDIR)/python" > "$$site/ferry-checkout.pth"; \
	  echo "== venv: $$site/ferry-checkout.pth -> $(CURDIR)/python"

test: build
	@$(MAKE) --no-print-directory -k test-cc test-py

test-cc:
	@echo "== test: ctest"
	ctest --test-dir $(BUILD_DIR) --output-on-failure --no-tests=error

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test-py:
	@echo "== test: pytest python/tests"
	@rc=0; timeout --kill-after=30 $(PYTEST_TIMEOUT_S) $(PY) -m pytest python/tests -q || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	  if [ $$rc -eq 124 ] || [ $$rc -eq 137 ]; then echo "pytest ran past $(PYTEST_TIMEOUT_S)s: failing"; fi; \
	  exit $$rc

demo: build
	@if [ -f examples/guide/gloo_basic.py ]; then ex=examples/guide/gloo_basic.py; \
	  elif [ -f examples/quickstart.py ]; then ex=examples/quickstart.py; \
	  else echo "demo: neither examples/guide/gloo_basic.py nor examples/quickstart.py exists"; exit 1; fi; \
	  echo "== demo: $(PY) $$ex"; $(PY) $$ex

bench: build
	@for b in bench/actor_calls.py $$(ls bench/*.py 2>/dev/null | grep -v '^bench/actor_calls.py$$' || true); do \
	  echo "== bench: $(PY) $$b"; $(PY) $$b; \
	done

clean:
	rm -rf $(BUILD_DIR) $(VENV) bench/results python/ferry/_core*.so .pytest_cache

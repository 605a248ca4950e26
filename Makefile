# ferry — developer entry points. `make demo` and `make test` are the two
# commands README.md promises; CI runs them through .ci/run (see there for
# which targets and how long each takes). docs/testing.md explains the
# sanitizer and fuzzing targets.

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

# Sanitizer and fuzzing builds live in their own directories (docs/testing.md).
ASAN_DIR     ?= build-asan
TSAN_DIR     ?= build-tsan
FUZZ_DIR     ?= build-fuzz
SAN_BUILD_TYPE ?= Debug
# Seconds each fuzz target runs: `make fuzz` defaults to 300, `make
# fuzz-smoke` to 60; FUZZ_SECONDS=N overrides both.
FUZZ_TARGETS := frame_decoder_fuzz control_message_fuzz value_layout_fuzz
# Python test files test-asan leaves out: RSS bounds do not hold with ASan's
# quarantine, and the guide examples are found by their path in the checkout.
# cluster/ runs its own daemons with the uninstrumented build (make test-cluster).
ASAN_PYTEST_SKIP ?= test_leaks.py test_guide_examples.py test_ray_api_examples.py cluster
ASAN_ENV     := ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_string_checks=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# UCX's memory hooks (libucm patches malloc/mmap when libucp loads) crash
# TSan's own interceptors: every binary that links the nixl backend needs them
# off under TSan. ferry never relies on them (registrations are explicit).
TSAN_ENV     := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/scripts/tsan-suppressions.txt \
                UCX_MEM_MALLOC_HOOKS=no UCX_MEM_MMAP_HOOK_MODE=none UCX_MEM_EVENTS=no

.PHONY: all deps build venv test test-cc test-py test-cluster demo bench bench-ray clean \
        fuzz fuzz-smoke fuzz-build fuzz-corpus fuzz-run test-asan test-tsan
.PHONY: format format-check
.PHONY: typecheck

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
# ferry from this checkout's python/ (where the build drops _core*.so), with
# the `ferry` command (`ferry start`, `ferry stop`) in $(VENV)/bin: pip would
# make it from pyproject.toml's [project.scripts], the .pth file does not.
venv:
	@if [ ! -x $(PY) ]; then \
	  echo "== venv: $(SYS_PYTHON) -m venv --system-site-packages $(VENV)"; \
	  $(SYS_PYTHON) -m venv --system-site-packages $(VENV); \
	fi
	@site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  echo "$(CURDIR)/python" > "$$site/ferry-checkout.pth"; \
	  echo "== venv: $$site/ferry-checkout.pth -> $(CURDIR)/python"
	@printf '#!/bin/sh\nexec "%s" -m ferry "$$@"\n' "$(CURDIR)/$(PY)" > $(VENV)/bin/ferry
	@chmod 755 $(VENV)/bin/ferry
	@echo "== venv: $(VENV)/bin/ferry"

# `test` checks the C/C++ formatting (format-check) and the Python type hints
# (typecheck), runs the tests, and ends with the fuzz smoke run (each fuzz
# target for ~60 s from the committed corpus): its clang build plus 3 x 60 s
# adds ~5 minutes.
# `make test FUZZ_SMOKE=0` leaves it out.
FUZZ_SMOKE ?= 1
test: build
	@$(MAKE) --no-print-directory -k format-check typecheck test-cc test-py test-cluster $(if $(filter 1,$(FUZZ_SMOKE)),fuzz-smoke)

test-cc:
	@echo "== test: ctest"
	ctest --test-dir $(BUILD_DIR) --output-on-failure --no-tests=error

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
# python/tests/cluster runs in test-cluster.
test-py:
	@echo "== test: pytest python/tests (less cluster/)"
	@rc=0; timeout --kill-after=30 $(PYTEST_TIMEOUT_S) $(PY) -m pytest python/tests --ignore=python/tests/cluster -q || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	  if [ $$rc -eq 124 ] || [ $$rc -eq 137 ]; then echo "pytest ran past $(PYTEST_TIMEOUT_S)s: failing"; fi; \
	  exit $$rc

# Cluster mode on network-namespace hosts (scripts/netns-cluster.sh, docs/cluster.md):
# clusters of three hosts on this machine, each test's drivers inside a host.
# Needs root; elsewhere every test skips with the reason.
CLUSTER_PYTEST_TIMEOUT_S ?= 1200
test-cluster:
	@echo "== test: pytest python/tests/cluster (namespace hosts)"
	@rc=0; timeout --kill-after=30 $(CLUSTER_PYTEST_TIMEOUT_S) $(PY) -m pytest python/tests/cluster -q || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no cluster tests: failing"; exit 1; fi; \
	  if [ $$rc -eq 124 ] || [ $$rc -eq 137 ]; then echo "cluster tests ran past $(CLUSTER_PYTEST_TIMEOUT_S)s: failing"; \
	    scripts/netns-cluster.sh down || true; fi; \
	  exit $$rc

# mypy (Debian's, scripts/install-deps.sh) over python/ferry with mypy.ini:
# the public API modules must be fully annotated. It reads the package's
# sources and python/ferry/_core.pyi, so it needs no build.
typecheck:
	@echo "== typecheck: mypy python/ferry"
	mypy --config-file mypy.ini --cache-dir $(BUILD_DIR)/.mypy_cache

demo: build
	@if [ -f examples/guide/gloo_basic.py ]; then ex=examples/guide/gloo_basic.py; \
	  elif [ -f examples/quickstart.py ]; then ex=examples/quickstart.py; \
	  else echo "demo: neither examples/guide/gloo_basic.py nor examples/quickstart.py exists"; exit 1; fi; \
	  echo "== demo: $(PY) $$ex"; $(PY) $$ex

bench: build
	@for b in bench/actor_calls.py $$(ls bench/*.py 2>/dev/null | grep -v -e '^bench/actor_calls.py$$' -e '^bench/ray_baseline.py$$' || true); do \
	  echo "== bench: $(PY) $$b"; $(PY) $$b; \
	done

# Ray as a baseline (bench/ray_baseline.py; table in docs/microbenchmarks.md):
# ferry's actor-call and transfer cells and Ray's, one run. Ray comes from PyPI
# into its own venv, made from Debian's Python so that it sees the same torch
# and numpy as $(VENV); pip runs only when the version pinned in
# $(RAY_REQS) is not there yet. Ray never enters $(VENV). Needs a built
# ferry in $(VENV) (`make build`); this target does not build.
RAY_VENV := .venv-ray
RAY_REQS := bench/ray-requirements.txt
bench-ray:
	@if [ ! -x $(RAY_VENV)/bin/python ]; then \
	  echo "== bench-ray: $(SYS_PYTHON) -m venv --system-site-packages $(RAY_VENV)"; \
	  $(SYS_PYTHON) -m venv --system-site-packages $(RAY_VENV); \
	fi
	@want=$$(sed -n 's/^ray==//p' $(RAY_REQS)); \
	  have=$$($(RAY_VENV)/bin/python -c 'import importlib.metadata as m; print(m.version("ray"))' 2>/dev/null || true); \
	  if [ -n "$$want" ] && [ "$$have" = "$$want" ]; then echo "== bench-ray: ray $$have already in $(RAY_VENV)"; \
	  else echo "== bench-ray: $(RAY_VENV)/bin/pip install -r $(RAY_REQS)"; $(RAY_VENV)/bin/pip install -q -r $(RAY_REQS); fi
	@echo "== bench-ray: $(PY) bench/ray_baseline.py"
	@$(PY) bench/ray_baseline.py --ferry-python $(PY) --ray-python $(RAY_VENV)/bin/python

# --- formatting -----------------------------------------------------------------

# clang-format 14 with the root .clang-format, over the tracked C/C++ files
# under FORMAT_DIRS, less FORMAT_EXCLUDE (an extended regex over paths, for
# generated and third-party code). Another clang-format version formats some
# constructs differently, so both targets refuse one.
CLANG_FORMAT   ?= clang-format
FORMAT_DIRS    := src include python/src examples fuzz bench
FORMAT_EXCLUDE ?= (^|/)(third_party|generated)/|\.pb\.(h|cc)$$
FORMAT_FILES    = git ls-files -z -- $(FORMAT_DIRS) | { grep -zE '\.(h|hh|hpp|c|cc|cpp|cu|cuh)$$' || true; } \
                  | { grep -zvE '$(FORMAT_EXCLUDE)' || true; } \
                  | while IFS= read -r -d '' f; do if [ -f "$$f" ]; then printf '%s\0' "$$f"; fi; done
FORMAT_VERSION  = v=$$($(CLANG_FORMAT) --version 2>/dev/null | grep -oE 'clang-format version [0-9]+' | grep -oE '[0-9]+$$$$' || true); \
                  if [ "$$v" != 14 ]; then \
                    echo "$@: needs clang-format 14 (scripts/install-deps.sh), not '$(CLANG_FORMAT)' version '$$v'"; exit 1; \
                  fi

# Rewrites every file in place.
format: deps
	@$(FORMAT_VERSION)
	@echo "== format: $(CLANG_FORMAT) -i ($$($(FORMAT_FILES) | tr -cd '\0' | wc -c) files)"
	@$(FORMAT_FILES) | xargs -0 -r $(CLANG_FORMAT) -i --style=file

# Lists every file whose clang-format output differs from it, and fails if any
# does; `make format` fixes them.
format-check: deps
	@$(FORMAT_VERSION)
	@echo "== format-check: $(CLANG_FORMAT) over $(FORMAT_DIRS)"
	@n=0; bad=0; \
	  while IFS= read -r -d '' f; do \
	    n=$$((n + 1)); \
	    if ! $(CLANG_FORMAT) --style=file "$$f" | cmp -s - "$$f"; then echo "  $$f"; bad=$$((bad + 1)); fi; \
	  done < <($(FORMAT_FILES)); \
	  if [ $$bad -ne 0 ]; then \
	    echo "format-check: $$bad of $$n files differ from clang-format's output (make format rewrites them)"; exit 1; \
	  fi; \
	  echo "format-check: $$n files formatted"

# --- sanitizers ---------------------------------------------------------------

# ASan + UBSan over every C++ test (unit, example, integration), then the
# Python integration tests with the sanitized extension: the ASan runtime
# (and libstdc++, so ASan can intercept C++ throws) LD_PRELOADed into
# /usr/bin/python3. Leaks are not checked there (CPython keeps its heap at
# exit). The extension is staged with a copy of python/ in
# $(ASAN_DIR)/python-asan, so workers import the same build as the driver.
# Reports go to files (pytest would swallow the driver's stderr, a worker's is
# lost): any file there fails the target.
test-asan: deps
	@echo "== test-asan: cmake configure + build $(ASAN_DIR) (FERRY_SANITIZE=address, $(SAN_BUILD_TYPE))"
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(SAN_BUILD_TYPE) -DFERRY_SANITIZE=address
	cmake --build $(ASAN_DIR) -j$(JOBS)
	@echo "== test-asan: ctest -L 'unit|example|integration' (every C++ test)"
	$(ASAN_ENV) ctest --test-dir $(ASAN_DIR) -L 'unit|example|integration' --output-on-failure --no-tests=error
	@echo "== test-asan: pytest python/tests, less $(ASAN_PYTEST_SKIP) (ASan runtime preloaded)"
	rm -rf $(ASAN_DIR)/python-asan $(ASAN_DIR)/asan-logs
	mkdir -p $(ASAN_DIR)/python-asan $(ASAN_DIR)/asan-logs
	cp -r python/ferry python/tests $(ASAN_DIR)/python-asan/
	rm -f $(ASAN_DIR)/python-asan/ferry/_core*.so
	cp $(ASAN_DIR)/python/ferry/_core*.so $(ASAN_DIR)/python-asan/ferry/
	@logs=$(CURDIR)/$(ASAN_DIR)/asan-logs/report; rc=0; \
	  cd $(ASAN_DIR)/python-asan/tests && \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
	  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:log_path=$$logs \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$$logs \
	  PYTHONPATH=$(CURDIR)/$(ASAN_DIR)/python-asan \
	  timeout --kill-after=30 $(PYTEST_TIMEOUT_S) $(SYS_PYTHON) -m pytest -q -p no:cacheprovider \
	    -c $(CURDIR)/pytest.ini --rootdir $(CURDIR)/$(ASAN_DIR)/python-asan \
	    $(foreach t,$(ASAN_PYTEST_SKIP),--ignore=$(t)) . || rc=$$?; \
	  if ls $$logs.* >/dev/null 2>&1; then \
	    echo "test-asan: sanitizer reports from the Python tests:"; cat $$logs.*; exit 1; \
	  fi; \
	  exit $$rc

# TSan over every C++ unit test, built with clang: its -Wthread-safety
# errors check the lock annotations in the same build (CMakeLists.txt).
TSAN_CC      ?= clang
TSAN_CXX     ?= clang++
test-tsan: deps
	@echo "== test-tsan: cmake configure + build $(TSAN_DIR) ($(TSAN_CXX), FERRY_SANITIZE=thread, $(SAN_BUILD_TYPE))"
	cmake -S . -B $(TSAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(SAN_BUILD_TYPE) -DFERRY_SANITIZE=thread \
	  -DCMAKE_C_COMPILER=$(TSAN_CC) -DCMAKE_CXX_COMPILER=$(TSAN_CXX)
	cmake --build $(TSAN_DIR) -j$(JOBS)
	@echo "== test-tsan: ctest -L unit"
	$(TSAN_ENV) ctest --test-dir $(TSAN_DIR) -L unit --output-on-failure --no-tests=error

# --- fuzzing --------------------------------------------------------------------

# libFuzzer targets (clang; ASan + UBSan + coverage). New inputs go to
# $(FUZZ_DIR)/corpus/<target>/, crashes to $(FUZZ_DIR)/artifacts/; the seeds
# committed in fuzz/corpus/<target>/ are only read.
fuzz-build: deps
	@echo "== fuzz: cmake configure + build $(FUZZ_DIR) (clang, FERRY_FUZZ=ON)"
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFERRY_FUZZ=ON -DFERRY_SANITIZE=address
	cmake --build $(FUZZ_DIR) -j$(JOBS) --target ferry_fuzzers

# Regenerates the committed seeds from ferry's own encoders (fuzz/gen_corpus.cc).
fuzz-corpus: fuzz-build
	$(FUZZ_DIR)/fuzz/fuzz_gen_corpus fuzz/corpus

fuzz: fuzz-build
	@$(MAKE) --no-print-directory fuzz-run FUZZ_SECONDS=$(or $(FUZZ_SECONDS),300)

fuzz-smoke: fuzz-build
	@$(MAKE) --no-print-directory fuzz-run FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60)

# Runs every target for FUZZ_SECONDS; fails on the first crash, leak, timeout
# (10 s per input) or out-of-memory (2 GiB), printing the input in hex.
fuzz-run:
	@mkdir -p $(FUZZ_DIR)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  log=$(FUZZ_DIR)/artifacts/$$t.log; \
	  echo "== fuzz: $$t for $(FUZZ_SECONDS)s (log $$log)"; \
	  rc=0; FERRY_LOG_LEVEL=error UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(FUZZ_DIR)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	    $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t >$$log 2>&1 || rc=$$?; \
	  grep -E '^#[0-9]+[[:space:]]+DONE' $$log || true; \
	  if [ $$rc -ne 0 ]; then \
	    echo "fuzz: $$t FAILED (rc $$rc); the end of its log:"; tail -60 $$log; \
	    for a in $$(grep -o 'artifact_prefix=[^;]*; Test unit written to [^ ]*' $$log | sed 's/.* //'); do \
	      echo "fuzz: input $$a (hex):"; od -An -tx1 -v $$a | tr -d ' \n' | fold -w 96; echo; \
	    done; exit 1; \
	  fi; \
	done

clean:
	rm -rf $(BUILD_DIR) $(VENV) bench/results python/ferry/_core*.so .pytest_cache \
	  $(ASAN_DIR) $(TSAN_DIR) $(FUZZ_DIR)

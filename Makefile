# nmf-sched: `make demo` and `make test` each work as the first command on a
# fresh machine that has only python3 and make. Both create .venv when it is
# missing and install the package (editable) with the extras they need; a
# stamp file per target (.venv/.stamp-<target>, remade when pyproject.toml
# changes) skips the install the next time.

PYTHON       ?= python3
VENV         ?= .venv
BIN          := $(VENV)/bin
PIP_FLAGS    ?= --disable-pip-version-check
PYTEST       := $(BIN)/python -m pytest -q -p no:cacheprovider
DEMO_OUT     ?= demo_out

# Extras installed for each stamp (.venv/.stamp-<name>, see pyproject.toml).
# `make test` also installs the dask and rl extras so the Dask LocalCluster and
# gymnasium/PPO tests run for real. `test` already holds everything the demo needs (scikit-learn for digits,
# scikit-image, matplotlib, tqdm); `bench` adds libmf, a C++ source build.
# torch comes only with the `rl` extra, which pins it (torch==2.13.0).
EXTRAS_test      ?= test,bench,dask,rl,notebooks
EXTRAS_demo      ?= test
EXTRAS_rl        ?= test,rl
EXTRAS_dask      ?= test,dask
EXTRAS_notebooks ?= test,notebooks

# Quick numba-free pass over the kernel and solver tests (NUMBA_DISABLE_JIT=1
# runs the kernels as plain Python).
NOJIT_TESTS ?= tests/test_kernels.py tests/test_solver.py tests/test_fused.py
NOJIT_K     ?= not temporaries and not converges

.PHONY: help demo test test-nojit venv clean

help:
	@echo "make demo        compare schedules on scikit-learn digits -> $(DEMO_OUT)/"
	@echo "make test        full test suite, then the no-JIT subset"
	@echo "make test-nojit  kernel/solver tests with NUMBA_DISABLE_JIT=1"
	@echo "make clean       remove .venv and $(DEMO_OUT)"

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "could not create $(VENV): '$(PYTHON) -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2; \
	  exit 1; }

venv: $(BIN)/python

# .venv/.stamp-<name>: install the package with the extras EXTRAS_<name>
$(VENV)/.stamp-%: pyproject.toml | $(BIN)/python
	@test -n "$(EXTRAS_$*)" || { echo "no EXTRAS_$* defined in the Makefile" >&2; exit 1; }
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[$(EXTRAS_$*)]"
	@touch $@

demo: $(VENV)/.stamp-demo
	$(BIN)/nmf-sched demo --out $(DEMO_OUT)

test: $(VENV)/.stamp-test
	$(PYTEST)
	@$(MAKE) --no-print-directory test-nojit

test-nojit: $(VENV)/.stamp-test
	NUMBA_DISABLE_JIT=1 $(PYTEST) $(NOJIT_TESTS) -k "$(NOJIT_K)"

clean:
	rm -rf $(VENV) $(DEMO_OUT)

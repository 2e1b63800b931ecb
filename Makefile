# genedge: `make demo` (set up + run the end-to-end demo) and `make test` (set up + run the tests).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned in ONE place: constraints.txt (CPU build here). GPU users: CONSTRAINTS=
CONSTRAINTS ?= constraints.txt
EXTRAS ?= cpu,train,export,dev
CONSTRAINT_FLAG := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
DEMO_OUT ?= demo-out

.PHONY: install demo test test-all lint clean capi lean-check
CAPI_BUILD ?= build/capi

$(BIN)/.genedge-installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q $(CONSTRAINT_FLAG) -e '.[$(EXTRAS)]'
	touch $@

install: $(BIN)/.genedge-installed

demo: install
	$(BIN)/genedge demo --out $(DEMO_OUT)

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m "" 

# The lean runtime install on its own: a second venv with only genedge[cpu] runs the runtime's
# commands, and every other command must name its extra (exit 3). CI runs it after `test`.
LEAN_VENV ?= .venv-lean
lean-check: install
	test -x $(LEAN_VENV)/bin/python || $(PY) -m venv $(LEAN_VENV)
	$(LEAN_VENV)/bin/python -m pip install -q --upgrade pip
	$(LEAN_VENV)/bin/python -m pip install -q -e '.[cpu]'
	GENEDGE_LEAN_PYTHON=$(abspath $(LEAN_VENV))/bin/python $(BIN)/python -m pytest -q tests/core/test_lean_install.py

lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

clean:
	rm -rf $(VENV) $(LEAN_VENV) build *.egg-info $(DEMO_OUT)

# The C ABI (libgenedge.so embedding the runtime) and the C++ example host: docs/embedding.md
capi: install
	cmake -S runtime/c -B $(CAPI_BUILD) -DPython3_EXECUTABLE=$(abspath $(BIN)/python)
	cmake --build $(CAPI_BUILD) -j2

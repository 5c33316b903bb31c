# simulsub: `make demo` and `make test` are the quick start; `make setup` builds .venv only.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
APT_PACKAGES := espeak-ng libsndfile1 libportaudio2 chromium chromium-driver festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite fortunes wordnet-base

.PHONY: setup demo lint test train-marian train-paraformer train-whisper-paraformer distill train-nat train-waitk train-llm clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "apt-get install$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing system packages:$$missing (run: sudo apt-get install$$missing)"; fi; \
	fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[cpu,train,dev,mic,web,ray]'
	# silero-vad's wheel carries the VAD ONNX model; --no-deps keeps its torch requirement out of the base install
	$(PY) -m pip install -q --disable-pip-version-check --no-deps 'silero-vad>=5.1'
	@touch $(STAMP)

# with the bundled ASR model: the speech cascade on a long-form recording; without it: the text replay
demo: setup
	@if [ -f models/pretrained/paraformer-en/model_quant.onnx ]; then \
	  $(VENV)/bin/simulsub replay recordings/longform/talk1.flac recordings/longform/talk2.flac \
	    --transcript-file recordings/longform.en --reference-file recordings/longform.de \
	    --sentence-times recordings/longform.times.jsonl --policy reta --mask-k 2 \
	    --srt $(VENV)/demo.srt --log $(VENV)/demo-speech.jsonl; \
	else \
	  $(VENV)/bin/simulsub replay-text --source recordings/demo/demo.en --reference recordings/demo/demo.de \
	    --policy reta --beam 4 --mask-k 2 --show --log $(VENV)/demo-reta.jsonl; \
	fi

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app streaming models web benchmarks tools

test: lint
	@$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; exit $$rc

train-marian: setup
	$(VENV)/bin/simulsub train marian --export

train-paraformer: setup
	$(VENV)/bin/simulsub train paraformer --processes 2 --threads 1 --export

train-whisper-paraformer: setup
	$(VENV)/bin/simulsub train whisper-paraformer --export

# the NAT and wait-k models start from the AR model's checkpoints (work/marian-en-de) and its distilled data
work/distill/distill.jsonl:
	$(MAKE) setup
	@test -d work/marian-en-de || $(MAKE) train-marian
	$(VENV)/bin/simulsub distill

distill: work/distill/distill.jsonl

# the bundled NAT: a 3+3-layer NAT from the AR model, then a 3+2-layer student fine-tuned from it (faster decoder)
train-nat: setup distill
	$(VENV)/bin/simulsub train nat
	$(VENV)/bin/simulsub train nat --work-dir work/nat-3x2 --init-from work/nat-en-de --decoder-layers 2 \
		--epochs 5 --export

train-waitk: setup distill
	$(VENV)/bin/simulsub train waitk --export

train-llm: setup distill
	$(VENV)/bin/simulsub train llm-simt --export

clean-venv:
	rm -rf $(VENV)

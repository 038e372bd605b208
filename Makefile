# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv in the repo.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Exact pins that install from this machine's disk; pyproject.toml keeps permissive ranges for users elsewhere.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0

.PHONY: demo test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[test]' $(TORCH_PINS)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) recipes/demo/demo.py

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) tools/bench_train.py

clean:
	rm -rf $(VENV) runs

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
	# The reference ABX (zrc_abx2) for tests/eval/test_abx.py's agreement tests; they skip if its build fails.
	$(PY) -m pip install -q cython 'setuptools_scm[toml]>=6.2' \
	  && $(PY) -m pip install -q --no-build-isolation zerospeech-libriabx2==0.9.8 $(TORCH_PINS) \
	  || echo "warning: zerospeech-libriabx2 (reference ABX) not installed: its agreement tests will skip"
	# Optional oracles: faiss (units k-means backend) and s3prl's featurizer (the upstream interface test).
	$(PY) -m pip install -q faiss-cpu && $(PY) -m pip install -q --no-deps s3prl==0.4.18 \
	  || echo "warning: faiss-cpu / s3prl not installed: their tests will skip"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) recipes/demo/demo.py

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) tools/bench_train.py

clean:
	rm -rf $(VENV) runs

# firstmotion: `make demo` and `make test` do all set-up on a fresh machine (Python >= 3.10).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SKHASH_PY := benchmarks/.venv-skhash/bin/python

.PHONY: demo test venv lint clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# SKHASH (numpy<2) in its own virtualenv: the reference the mechanism tests compare with
$(SKHASH_PY):
	PYTHON=$(PYTHON) bash benchmarks/skhash_env.sh

demo: $(STAMP)
	$(VENV)/bin/firstmotion demo

test: $(STAMP) $(SKHASH_PY)
	$(PY) -m pytest -ra tests

lint: $(STAMP)
	$(VENV)/bin/ruff check firstmotion stream workers tests benchmarks
	$(VENV)/bin/ruff format --check firstmotion stream workers tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info

# The README's two commands: `make demo` and `make test`. Both create the virtual
# environment when it is missing, so a fresh clone needs nothing installed by hand.
PYTHON_VERSION := $(shell cat .python-version)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint venv clean

$(PY):
	@py=$$(command -v python$(PYTHON_VERSION) || ls $$HOME/.pyenv/versions/$(PYTHON_VERSION)*/bin/python3 2>/dev/null | tail -n 1); \
	if [ -z "$$py" ]; then echo "Python $(PYTHON_VERSION) not found (need python$(PYTHON_VERSION) on PATH or in pyenv)"; exit 2; fi; \
	echo "creating $(VENV) with $$py"; $$py -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayescale demo --out out

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check bayescale models tests examples benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache

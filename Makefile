# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test clean

# torch goes in first, alone and exactly pinned, so nothing later can pull a CUDA build.
$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) -e '.[dev]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/llmkit demo

test: $(VENV)/.dev
	$(PY) -m pytest -n 2 --dist loadgroup tests

clean:
	rm -rf $(VENV) runs .pytest_cache

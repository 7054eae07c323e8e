# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test test-all clean chromium

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

# `make test`: everything but the tests marked slow (minutes-long runs); `make test-all` adds them.
test: $(VENV)/.dev chromium
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow" tests

test-all: test
	$(PY) -m pytest -n 2 --dist loadgroup -m slow tests

# Debian's chromium renders the demo's report.html in a test; without it (no root, no apt) that test skips.
chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium (for the report rendering test)"; \
	  { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } >/dev/null 2>&1 || \
	  echo "could not install chromium: the report rendering test will be skipped"; }

clean:
	rm -rf $(VENV) runs .pytest_cache

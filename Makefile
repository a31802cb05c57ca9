# `make test` and `make demo` work on a fresh clone: they create .venv, install
# the CPU torch pin (override TORCH_SPEC / TORCHVISION_SPEC on a machine with
# the ordinary PyPI torch, e.g. `make test TORCH_SPEC=torch TORCHVISION_SPEC=torchvision`),
# the package with its extras, then run.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCHVISION_SPEC ?= torchvision==0.28.0
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --no-deps "$(TORCHVISION_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,demo]"
	touch $@

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python -m captum_hint demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

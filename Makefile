# `make test` and `make demo` work on a fresh clone: they create .venv, install
# the CPU torch pin (override TORCH_SPEC / TORCHVISION_SPEC on a machine with
# the ordinary PyPI torch, e.g. `make test TORCH_SPEC=torch TORCHVISION_SPEC=torchvision`),
# the package with its extras, then run.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCHVISION_SPEC ?= torchvision==0.28.0
PYTEST_ARGS ?=
# pytest-xdist workers: auto = one per core, at most 4 (conftest.py); 0 runs the suite in this process.
PYTEST_WORKERS ?= auto
# Sphinx: warnings are errors (-W); --keep-going lists them all before failing.
SPHINX_ARGS ?= -W --keep-going -q
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser test demo docs tutorials quickstart clean

install: $(STAMP)

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --no-deps "$(TORCHVISION_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,demo,docs]"
	touch $@

# The explorer site's browser tests drive Debian's chromium through its chromedriver: installed here when
# missing (as root, or with sudo); elsewhere those tests are skipped, and fail under CI=true.
APT_INSTALL := env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then echo "chromium/chromedriver missing and no root: the browser tests will be skipped"; \
	  else $$SUDO $(APT_INSTALL) >/dev/null || { $$SUDO apt-get update -q >/dev/null && $$SUDO $(APT_INSTALL) >/dev/null; }; fi; \
	fi

# The suite: tests/ and every tutorial notebook (nbmake, a time limit each; see tutorials/conftest.py).
test: $(STAMP) browser
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The HTML docs (docs/_build/html/index.html): user guide, API reference, tutorials with their stored outputs.
docs: $(STAMP)
	rm -rf docs/_build docs/tutorials
	cp -r tutorials docs/tutorials  # the notebooks, as stored (with outputs), become pages
	$(BIN)/sphinx-build $(SPHINX_ARGS) -b html docs docs/_build/html

# The quickstart notebook, executed into build/01_quickstart.html (its figures included).
quickstart: $(STAMP)
	$(BIN)/jupyter nbconvert --to html --execute tutorials/01_quickstart.ipynb --output-dir build

# Re-run every tutorial and store its outputs in the notebook (what the docs show).
tutorials: $(STAMP)
	$(BIN)/python -m pytest -q --nbmake --overwrite tutorials

demo: $(STAMP)
	$(BIN)/python -m captum_hint demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/tutorials

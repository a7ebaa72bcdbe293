# Every target bootstraps .venv itself; packages are reinstalled only when the dependency files change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
# pytest-xdist: a worker per core, each taking whole test files (so module fixtures are built once)
PYTEST_ARGS ?= -n auto --dist loadfile


RECIPES := $(sort $(basename $(notdir $(filter-out ignite_lab/recipes/__init__.py,$(wildcard ignite_lab/recipes/*.py)))))

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench soak reproduce lint list install visdom visdom-stop browser database scheduler clean $(RECIPES)

run: $(STAMP)  ## the main job: train the default recipe (MNIST CNN)
	$(BIN)/python -m recipes.mnist $(ARGS)

test: $(STAMP) $(VENV)/.visdom-assets browser database  ## the test suite, less its long campaigns (make soak runs those)
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not soak"

bench: $(VENV)/.bench  ## rewrite BENCHMARKS.md (the real datasets in ../shared/data; hours: ARGS=--quick skips time to target)
	$(BIN)/python benchmarks/bench.py $(ARGS)

# PyTorch Lightning, the peer in the overhead table: a bench-only extra, pinned like the rest.
$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install -q --build-constraint build-constraints.txt -c requirements.lock -e ".[dev,bench]"
	touch $@

soak: $(STAMP) $(VENV)/.visdom-assets browser database scheduler  ## the tests' long campaigns, then 200 random kills -> SOAK.md
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m soak
	$(BIN)/python benchmarks/soak.py $(ARGS)

reproduce: $(STAMP)  ## every recipe and preset on the real data in ../shared/data -> REPRODUCE.md (hours)
	$(BIN)/ignite-lab reproduce all --preset all --data-root ../shared/data $(ARGS)

visdom: $(VENV)/.visdom-assets
  ## a local Visdom server for --visdom (stop: make visdom-stop)
	$(BIN)/ignite-lab visdom start $(ARGS)

visdom-stop: $(STAMP)
	$(BIN)/ignite-lab visdom stop $(ARGS)

# Visdom's browser scripts, from the npm registry (visdom itself fetches them from CDNs, which fails offline).
$(VENV)/.visdom-assets: $(STAMP)
	$(BIN)/ignite-lab visdom assets
	touch $@

# Debian's chromium for the browser test of the Visdom page.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  $(SUDO) apt-get install -y -q chromium || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# Debian's PostgreSQL server binaries for the shared-study sweep test (it starts its own throwaway cluster).
database:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  $(SUDO) apt-get install -y -q postgresql || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q postgresql; }

# Debian's Slurm (slurmctld, slurmd, munge) for make soak's preemption tests (they start their own one-node cluster).
scheduler:
	@command -v slurmctld >/dev/null || \
	  $(SUDO) apt-get install -y -q slurm-wlm || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q slurm-wlm; }

lint: $(STAMP)
	$(BIN)/ruff check .

list: $(STAMP)
	$(BIN)/ignite-lab list

$(RECIPES): $(STAMP)  ## make NAME ARGS="--epochs 1"
	$(BIN)/python -m recipes.$@ $(ARGS)

install: $(STAMP)

# pip>=25.3 knows --build-constraint; visdom's sdist needs setuptools<81 to build (see build-constraints.txt).
$(STAMP): setup.cfg pyproject.toml requirements.lock build-constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "pip==26.3"
	$(BIN)/python -m pip install -q --build-constraint build-constraints.txt -c requirements.lock -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache

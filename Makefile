# Each target does all the set-up it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench docs clean

install: $(STAMP)

# torch first, pinned: a range admitted by the local 2.13.0 CPU build installs nothing more,
# whereas letting a dependency pull torch would download a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev,ray,docs,llm,hf,lightning]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The main job on the bundled digits data, offline: demonstrations of three expert
# schedules, behavioural cloning, evaluation against the experts on held-out seeds.
demo: $(STAMP)
	LRGYM_OFFLINE=1 $(PY) scripts/train_bc.py --env LRSchedule-MLP-v0 --dataset digits \
		--total-steps 640 --demo-episodes 4 --eval-episodes 2

bench: $(STAMP)
	$(PY) scripts/bench_trainees.py

# The documentation (docs/, mkdocs.yml) into site/; --strict fails on a broken link or a
# page missing from the nav.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

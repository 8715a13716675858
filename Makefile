# Two commands: `make quickstart` (install + the miniature study) and `make test`.
# Installing = Debian build deps of FFCV + a virtual environment in .venv with the pinned
# requirements. A stamp keyed by the requirements' hash makes a second run skip it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)

.PHONY: install quickstart fidelity test report clean-miniature

install: $(STAMP)

$(STAMP): requirements.txt
	./scripts/system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

quickstart: install
	$(PY) -m study.quickstart

# The fidelity study (docs/fidelity.md): the same 2 x 3 x 3 grid in the paper's regime of
# repetition, evaluation sets sized for +-10-point intervals; ~24 min on 2 cores. Grid in
# runs/fidelity/grid/, data in data/fidelity/.
# SEED=N runs the replicate under seed N (generator, subsets, training) in data/ and runs/
# folders of its own; FIDELITY_STUDY=configs/fidelity/corners.yaml runs only the four corners.
FIDELITY_STUDY ?= configs/fidelity/study.yaml
fidelity: install
	$(PY) -m study.quickstart --study $(FIDELITY_STUDY)$(if $(SEED), --seed $(SEED))

# Test files run in parallel worker processes (one thread each; files stay whole so module
# fixtures are built once). Plain `pytest` still works, serially.
test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile tests

report: install
	$(PY) -m results.report runs/miniature/results --out runs/miniature/grid

clean-miniature:
	rm -rf runs/miniature data/miniature

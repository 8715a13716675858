# Two commands: `make quickstart` (install + the miniature study) and `make test`.
# Installing = Debian build deps of FFCV + a virtual environment in .venv with the pinned
# requirements. A stamp keyed by the requirements' hash makes a second run skip it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)

.PHONY: install quickstart test report clean-miniature

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

test: install
	$(PY) -m pytest -q tests

report: install
	$(PY) -m study.report runs/miniature/results --out runs/miniature/grid

clean-miniature:
	rm -rf runs/miniature data/miniature

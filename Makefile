# Two commands on a fresh clone: `make train` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: train test bench
train: $(VENV)/.installed
	$(PY) train_agent.py $(ARGS)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q $(ARGS)

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b || exit 1; done

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev,rllib]'
	touch $@

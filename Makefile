# Two commands on a fresh clone: `make train` and `make test`. Both create .venv on first use.
# Versions come from the lock, constraints.txt (the ranges a user installs against are in setup.cfg).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt
# Every client library but RLlib, whose extra pins gymnasium 1.2.2 (the base is the newest Gymnasium 1.x).
EXTRAS := download,dev,video,contrib,torchrl,tianshou
# RLlib's tests run in a venv of their own: Ray and gymnasium 1.2.2 installed over .venv's packages,
# which a path file makes visible (torch is not installed twice).
RLLIB := .venv-rllib

.PHONY: train test bench
train: $(VENV)/.train
	$(PY) train_agent.py $(ARGS)

# Two pytest workers, each test file whole on one (its module fixtures built once): 8 min instead of 13 here.
test: $(VENV)/.test $(RLLIB)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n 2 --dist loadfile $(ARGS)
	$(RLLIB)/bin/python -m pytest -q tests/test_rllib.py $(ARGS)

bench: $(VENV)/.test
	for b in bench/*.py; do $(PY) $$b || exit 1; done

$(VENV)/.venv:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade -c constraints.txt pip
	touch $@

# Training needs the package, and torchvision to download the data: no Ray, no client library.
$(VENV)/.train: $(VENV)/.venv setup.cfg pyproject.toml constraints.txt
	$(PIP) -e '.[download]'
	touch $@

$(VENV)/.test: $(VENV)/.venv setup.cfg pyproject.toml constraints.txt
	$(PIP) -e '.[$(EXTRAS)]'
	touch $@ $(VENV)/.train

$(RLLIB)/.installed: $(VENV)/.test constraints-rllib.txt
	python3 -m venv --without-pip $(RLLIB)
	$(RLLIB)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > $(RLLIB)/.site
	$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$$(cat $(RLLIB)/.site)/venv.pth"
	$(PY) -m pip --python $(RLLIB)/bin/python install -q -c constraints-rllib.txt 'ray[rllib]' gymnasium
	touch $@

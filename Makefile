# gunguard: every target builds its own virtual environment; nothing is installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench soak clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: the daemon in real time against the simulated gun, a scripted session printed live
demo: $(STAMP)
	$(BIN)/gunguard run --config achilles-tendinopathy --sim-gun examples/demo-session.yaml

## make test: lint, then the whole suite (virtual time; the real-time parts are behaviour checks only)
test: $(STAMP)
	$(BIN)/ruff check controller hardware tests bench
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check controller hardware tests bench
	$(BIN)/ruff format --check controller hardware tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

soak: $(STAMP)
	$(BIN)/pytest -q -m soak

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
include mk/install.mk

# gunguard: every target builds its own virtual environment; nothing is installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench soak clean venv integration pictures

DEPS   := $(VENV)/.deps
# What goes into the wheel: a change to any of these reinstalls it.
SOURCES := pyproject.toml README.md $(shell find controller hardware config plans examples -type f \
             -not -path '*/__pycache__/*' 2>/dev/null)

venv: $(STAMP)

# The dependencies (and the dev tools) once per pyproject.toml change...
$(DEPS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '.[dev]'
	touch $(DEPS)

# ...and gunguard itself as users get it: the built wheel, not an editable install, so
# the suite tests exactly what is installed (pyproject.toml says why).
$(STAMP): $(DEPS) $(SOURCES)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	touch $(STAMP)

## make demo: the live dashboard over the real-time daemon and the simulated gun, playing a
## scripted session; the daemon's events go to .demo/daemon.log, its history to .demo/.
## DEMO=examples/demo-live.yaml is the ten-minute tour of docs/operator.md. Without a
## terminal (CI, a pipe) it prints the events live instead of the dashboard.
DEMO        ?= examples/demo-session.yaml
DEMO_CONFIG ?= $(or $(shell sed -n 's/^config: *\([^ #]*\).*/\1/p' $(DEMO)),default)
DEMO_DIR    ?= .demo
demo: $(STAMP)
	@mkdir -p $(DEMO_DIR)
	@rm -f $(DEMO_DIR)/history.db $(DEMO_DIR)/history.db-wal $(DEMO_DIR)/history.db-shm \
	  $(DEMO_DIR)/control.sock
	@export STATE_DIRECTORY="$(abspath $(DEMO_DIR))"; \
	if [ -t 0 ] && [ -t 1 ]; then \
	  sock="$(abspath $(DEMO_DIR))/control.sock"; \
	  $(BIN)/gunguard run --config $(DEMO_CONFIG) --sim-gun $(DEMO) --control-socket "$$sock" \
	    --db $(DEMO_DIR)/history.db >$(DEMO_DIR)/daemon.log 2>&1 & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; trap : INT; \
	  while [ ! -S "$$sock" ] && kill -0 $$pid 2>/dev/null; do sleep 0.1; done; \
	  if ! kill -0 $$pid 2>/dev/null; then cat $(DEMO_DIR)/daemon.log; exit 1; fi; \
	  echo "gunguard demo: $(DEMO) ($(DEMO_CONFIG)). In a second terminal, in this folder:"; \
	  echo "  export GUNGUARD_SOCKET=$$sock"; \
	  echo "  $(BIN)/gunguard status | region NAME | reset | stop"; \
	  $(BIN)/gunguard watch --socket "$$sock" --wait 10; \
	  kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; \
	  sed -n '/^summary:/,$$p' $(DEMO_DIR)/daemon.log; \
	  echo "events: $(DEMO_DIR)/daemon.log  report: $(BIN)/gunguard report --session" \
	    "--db $(DEMO_DIR)/history.db --plot session.png"; \
	else \
	  status=0; \
	  $(BIN)/gunguard run --config $(DEMO_CONFIG) --sim-gun $(DEMO) --db $(DEMO_DIR)/history.db \
	    || status=$$?; \
	  echo "report: $(BIN)/gunguard report --session --db $(DEMO_DIR)/history.db --plot session.png"; \
	  exit $$status; \
	fi

## make pictures: the README's pictures (docs/pictures/), drawn from the current code and the
## shipped config: the wiring diagram, a dashboard frame and a report of the demo. They are
## committed (the README shows them); tests/packaging/test_pictures.py says when they are stale.
pictures: $(STAMP)
	$(BIN)/python tools/pictures.py

## make test: lint, then the whole suite (virtual time; the real-time parts are behaviour checks only)
## TEST_JOBS=1 runs it in one process.
TEST_JOBS ?= auto
test: $(STAMP)
	$(BIN)/ruff check controller hardware tests bench tools
	$(BIN)/pytest -q -n $(TEST_JOBS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check controller hardware tests bench tools
	$(BIN)/ruff format --check controller hardware tests bench tools

## make bench: every benchmark (bench/results/latest.md), then the fault campaign
## (bench/results/faults.md). About 30 minutes; run it on an otherwise idle machine.
bench: $(STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.faults

## make soak: the long runs: real-time soak tests, and the fuzz and property tests with the
## soak hypothesis profile (100 000 decoder inputs, 2 500 random timelines).
soak: $(STAMP)
	HYPOTHESIS_PROFILE=soak $(BIN)/pytest -q -m "soak or fuzz" tests
	HYPOTHESIS_PROFILE=soak $(BIN)/pytest -q tests/virtual/test_properties.py

## make integration: boots a real systemd 252 as PID 1 of a systemd-nspawn container (Debian
## bookworm), installs gunguard there with `make install` and checks the unit with systemctl
## and journalctl (integration/README.md). Root only; skips (one line, exit 0) without
## systemd-nspawn/debootstrap. CHECKS="start reload" runs a subset; the debootstrapped tree is
## cached in $GUNGUARD_INTEGRATION_CACHE (default /var/cache/gunguard-integration).
CHECKS              ?=
INTEGRATION_TIMEOUT ?= 600
integration:
	@timeout --kill-after=30 $$(( $(INTEGRATION_TIMEOUT) + 60 )) $(PYTHON) integration/run.py \
	  --timeout $(INTEGRATION_TIMEOUT) --checks "$(CHECKS)"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
include mk/install.mk

# Two entry points for a fresh machine: `make demo` and `make test` (each creates .venv as needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := pcaps/demo-site.pcap

.PHONY: demo test test-quick lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,pdf]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python pcaps/make_demo_geoip.py out/demo-geoip
	$(BIN)/auditor analyze $(DEMO) --rules rules/examples --out out/demo \
		--geoip-country out/demo-geoip/demo-country.mmdb --geoip-asn out/demo-geoip/demo-asn.mmdb

test: $(STAMP)
	$(BIN)/ruff check auditor tests bench pcaps
	$(BIN)/pytest

test-quick: $(STAMP)
	$(BIN)/pytest -m 'not oracle and not corpus and not live'

lint: $(STAMP)
	$(BIN)/ruff check auditor tests bench pcaps

typecheck: $(STAMP)
	$(BIN)/mypy --strict auditor

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis

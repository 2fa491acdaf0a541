# Maestro Gateway — the handful of targets a user needs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench eval schema sysdeps oidc clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/maestro-gateway demo

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy

# Debian packages the tests run for real (rsyslog + its TLS driver), installed when missing.
sysdeps:
	@command -v rsyslogd >/dev/null && ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1 \
		|| sh scripts/sysdeps.sh

# The real OpenID provider the identity tests start (npm oidc-provider, pinned by the lock file).
oidc: tests/oidc/node_modules/.package-lock.json
tests/oidc/node_modules/.package-lock.json: tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error

test: $(STAMP) sysdeps oidc lint
	$(BIN)/pytest -q

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python scripts/bench.py

eval: $(STAMP)
	$(BIN)/python scripts/eval.py

schema: $(STAMP)
	$(BIN)/python scripts/gen_schemas.py
	$(BIN)/python scripts/gen_config_schema.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache

# rwproxy: `make demo` brings up a local replication cluster with rwproxy in front; `make test` runs
# every check (ruff, mypy, pytest with the real-cluster integration tests).
# System packages (MariaDB server/client) are installed with apt-get when missing: that needs root.

VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PACKAGES := mariadb-server mariadb-client

.PHONY: demo test lint unit bench system-deps test-deps venv clean

demo: system-deps venv
	$(VENV)/bin/rwproxy demo

test: system-deps test-deps venv lint
	$(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check proxy tests bench
	$(VENV)/bin/ruff format --check proxy tests bench
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q tests/unit

bench: system-deps venv
	$(PY) bench/run_sysbench.py

# The metrics test scrapes rwproxy with a real Prometheus.
test-deps:
	@if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the tests need Prometheus: run as root, or: sudo apt-get install -y --no-install-recommends prometheus"; \
	    exit 1; \
	  fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
	fi

system-deps:
	@if ! command -v mariadbd >/dev/null 2>&1 && ! command -v mysqld >/dev/null 2>&1 \
	    && [ ! -x /usr/sbin/mariadbd ] && [ ! -x /usr/sbin/mysqld ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "rwproxy needs a MariaDB/MySQL server binary: run as root, or: sudo apt-get install -y $(SYSTEM_PACKAGES)"; \
	    exit 1; \
	  fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(SYSTEM_PACKAGES); \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@python3 -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y python3-venv && python3 -m venv $(VENV); \
	  else echo "python3 -m venv failed: sudo apt-get install -y python3-venv"; exit 1; fi; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

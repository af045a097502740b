# rwproxy: `make demo` brings up a local replication cluster with rwproxy in front; `make test` runs
# every check (ruff, mypy, pytest with the real-cluster integration tests).
# System packages (MariaDB server/client) are installed with apt-get when missing: that needs root.

VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PACKAGES := mariadb-server mariadb-client

.PHONY: demo test lint unit bench fuzz-soak native build-deps system-deps test-deps venv clean

# The demo runs the compiled hot path when it can be built (make native), else pure Python.
# Ports: make demo PORT=6034 ADMIN_PORT=9307 ADMIN_SQL_PORT=6035 (0 = any free port). rwproxy is
# installed in $(VENV)/bin, not on the PATH: run it as $(VENV)/bin/rwproxy (or source $(VENV)/bin/activate).
PORT ?= 6033
ADMIN_PORT ?= 9306
ADMIN_SQL_PORT ?= 6032
demo: system-deps venv
	@$(MAKE) --no-print-directory native || echo "(no compiled hot path: the demo runs pure Python)"
	@echo "rwproxy is $(VENV)/bin/rwproxy (not on the PATH; or: . $(VENV)/bin/activate)"
	$(VENV)/bin/rwproxy demo --port $(PORT) --admin-port $(ADMIN_PORT) --admin-sql-port $(ADMIN_SQL_PORT)

# The whole suite runs on the compiled hot path (RWPROXY_NATIVE=1 fails if it cannot be used), as
# deployed; the unit tests run once more on pure Python, which is the same source.
test: system-deps test-deps venv lint native
	RWPROXY_NATIVE=1 $(VENV)/bin/pytest -q
	RWPROXY_NATIVE=0 $(VENV)/bin/pytest -q tests/unit

# Compile the hot path with mypyc into rwproxy/_native (skipped while it matches the sources).
native: venv build-deps
	$(PY) -m rwproxy.dev.native_build --if-stale --quiet

lint: venv
	$(VENV)/bin/ruff check rwproxy tests bench
	$(VENV)/bin/ruff format --check rwproxy tests bench
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q tests/unit

bench: system-deps venv
	$(PY) bench/run_sysbench.py

# Protocol fuzzing for longer than CI's 25 s (tests/integration/test_fuzz.py): make fuzz-soak FUZZ_SECONDS=3600
FUZZ_SECONDS ?= 600
fuzz-soak: system-deps venv
	$(PY) bench/fuzz_soak.py --seconds $(FUZZ_SECONDS)

# The metrics test scrapes rwproxy with a real Prometheus; the coordination tests run a real etcd.
test-deps:
	@if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the tests need Prometheus: run as root, or: sudo apt-get install -y --no-install-recommends prometheus"; \
	    exit 1; \
	  fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
	fi
	@if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the coordination tests need etcd: run as root, or: sudo apt-get install -y etcd-server"; \
	    exit 1; \
	  fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server; \
	fi

build-deps: venv
	@if ! command -v gcc >/dev/null 2>&1 || ! $(PY) -c 'import sysconfig, os, sys; \
	    sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' 2>/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "the compiled hot path needs a C compiler and Python headers: sudo apt-get install -y gcc python3-dev"; \
	    exit 1; \
	  fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y gcc python3-dev; \
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
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache rwproxy/_native

# The two commands a newcomer needs: `make demo` and `make test`.
# Everything else is installed by `make install` (idempotent).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

# `make test FAST=1` skips the suites marked slow (CI runs them all).
PYTEST_ARGS ?=
# Three pytest-xdist workers on two cores: most of a test waits on a sandbox,
# a server or a guest. The micro-VM's tests keep to one worker, as the fleet's
# do (tests/conftest.py). `make test JOBS=0` runs them in one process.
JOBS ?= 3
ifneq ($(JOBS),0)
PYTEST_ARGS += -n $(JOBS) --dist loadgroup
endif
ifdef FAST
PYTEST_ARGS += -m "not slow"
endif

.PHONY: install bytecode demo test check lint typecheck bench clean mcp-servers

install: $(STAMP)

# pip's own lines are the progress: what it collects, builds and installs.
$(STAMP): pyproject.toml
	@echo "==> the virtual environment $(VENV)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> LuminaGuard and its development tools, with pip (the first time: a minute or more)"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e '.[dev]'
	touch $(STAMP)
	@echo "==> installed"

# The project's bytecode, written ahead (an editable install writes none, and
# with PYTHONDONTWRITEBYTECODE set each command would compile every module it
# imports, a third of a second, on every start). Only changed files are redone.
bytecode: install
	@$(BIN)/python -m compileall -q src

# The reference MCP servers the tests use, from npm and PyPI (as `npx` and
# `uvx` would fetch them), into .cache/mcp.
# Best effort: without npm (or its registry) the MCP tests skip and say why.
# Each install says so and how long it took; installed ones cost nothing.
mcp-servers: install
	@echo "==> the reference MCP servers (npm and PyPI) the tests use, into .cache/mcp"
	$(BIN)/python -c "from pathlib import Path; from luminaguard.mcp.launch import resolve_npx; [resolve_npx(p, Path('.cache/mcp')) for p in ('@modelcontextprotocol/server-everything', '@modelcontextprotocol/server-memory', '@modelcontextprotocol/server-filesystem')]"
	test -x .cache/conformance/node_modules/.bin/conformance || { echo "installing npm package @modelcontextprotocol/conformance into .cache/conformance…"; npm install --prefix .cache/conformance --no-audit --no-fund --silent @modelcontextprotocol/conformance; }
	$(BIN)/python -c "from pathlib import Path; from luminaguard.mcp.launch import resolve_uvx; [resolve_uvx([p], p, Path('.cache/mcp')) for p in ('mcp-server-time', 'mcp-server-git')]"

demo: bytecode
	$(BIN)/luminaguard demo

test: bytecode
	-$(MAKE) --no-print-directory mcp-servers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: bytecode
	-$(MAKE) --no-print-directory mcp-servers
	@# Codex, to compare the whole CLI with (best effort: without npm the bench says so).
	-test -x .cache/codex/node_modules/.bin/codex || npm install --prefix .cache/codex --no-audit --no-fund @openai/codex
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/run_start_bench.py
	$(BIN)/python bench/http_bench.py
	$(BIN)/python bench/sandbox_bench.py
	$(BIN)/python bench/tiers_bench.py
	$(BIN)/python bench/policy_bench.py
	$(BIN)/python bench/router_bench.py
	$(BIN)/python bench/swarm_bench.py
	$(BIN)/python bench/fleet_bench.py
	$(BIN)/python bench/mcp_bench.py
	$(BIN)/python bench/service_bench.py
	$(BIN)/python bench/service_bench.py --backend microvm --n 7
	$(BIN)/python bench/inbox_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

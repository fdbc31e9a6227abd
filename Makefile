# Everything runs inside .venv, created and filled by this Makefile.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCALE ?= S
PORT ?= 50051
DATA ?= ./data

.PHONY: all setup demo test bench proto serve clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m cli.demo

test: $(STAMP)
	$(PY) -m pytest tests

bench: $(STAMP)
	$(PY) -m bench.run --scale $(SCALE)

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. proto/segments.proto

serve: $(STAMP)
	$(VENV)/bin/segments --data $(DATA) serve --port $(PORT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

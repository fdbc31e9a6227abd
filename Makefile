# Everything runs inside .venv, created and filled by this Makefile.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCALE ?= S
SHAPE ?= default
PORT ?= 50051
DATA ?= ./data

.PHONY: all setup demo test bench bench-shapes bench-live bench-compaction bench-tenants proto serve client-dist clean
.PHONY: test-cluster cluster-demo

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,cluster]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m segments.cli.demo

# The venv holds the cluster extra (ray), so `make test` runs the cluster tests too; without
# ray they skip (pip install -e '.[dev]' alone keeps a light install).
test: $(STAMP)
	$(PY) -m pytest tests

# ... and the multi-node test (a local 3-node Ray cluster, a node killed: ~1.5 min)
test-cluster: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,cluster]'
	SEGMENTS_CLUSTER_NODES=1 $(PY) -m pytest tests/test_cluster.py tests/test_cluster_nodes.py

# A local Ray, 3 partition actors, a generated dataset loaded through the coordinator and
# the demo segments run through a served ClusterEngine.
cluster-demo: $(STAMP)
	$(PY) -m segments.cli.cluster_demo

bench: $(STAMP)
	$(PY) -m segments.bench.run --scale $(SCALE) --shape $(SHAPE)

# Every named shape in turn (bench/generate/shapes.py), then their sections for docs/benchmarks.md.
SHAPES := default catalog long_history sparse
bench-shapes: $(STAMP)
	status=0; for s in $(SHAPES); do $(PY) -m segments.bench.run --scale $(SCALE) --shape $$s || status=1; done; \
	$(PY) -m segments.bench.report --shapes --scale $(SCALE); exit $$status

# live changes beside readers (1,000-line batches with 100 customer upserts, one reader)
bench-live: $(STAMP)
	$(PY) -m segments.bench.live --scale $(SCALE) --readers 1 --rate 0 --upserts 100

# what a compaction costs for what changed (few lines, lines spread, customer upserts)
bench-compaction: $(STAMP)
	$(PY) -m segments.bench.compaction --scale $(SCALE)

# Many tenants on one server (bench/tenants.py): TENANTS small datasets, a Zipf load from
# another process, and a bulk load of HEAVY customers beside 8 heavy segments (0: skipped).
# TENANTS_FLAGS: more flags, e.g. --work DIR --keep (a folder kept, and a stopped build resumed).
TENANTS ?= 10000
HEAVY ?= 1000000
TENANTS_FLAGS ?=
bench-tenants: $(STAMP)
	$(PY) -m segments.bench.tenants --datasets $(TENANTS) --heavy-customers $(HEAVY) $(TENANTS_FLAGS) \
		--out bench/results/tenants-$(TENANTS).json

# The generated modules import each other as segments.proto.*: protoc runs over a copy laid
# out as that package, and the outputs come back into proto/.
proto: $(STAMP)
	rm -rf build/proto && mkdir -p build/proto/segments/proto
	cp proto/segments.proto build/proto/segments/proto/
	$(PY) -m grpc_tools.protoc -Ibuild/proto --python_out=build/proto --pyi_out=build/proto \
		--grpc_python_out=build/proto build/proto/segments/proto/segments.proto
	cp build/proto/segments/proto/segments_pb2*.py* proto/

# The Python client alone (grpcio, protobuf, numpy, pyarrow; none of the engine's
# dependencies): a wheel in build/dist built from clients/python/pyproject.toml.
client-dist: $(STAMP)
	$(PY) -m pip wheel --no-deps --no-build-isolation -w build/dist clients/python

serve: $(STAMP)
	$(VENV)/bin/segments --data $(DATA) serve --port $(PORT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

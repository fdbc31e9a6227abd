"""segments: a customer-segmentation engine served over gRPC.

The code lives in the repository's top-level folders, installed under this namespace by
pyproject.toml's package-dir mapping: segments.engine (engine/), segments.server (server/),
segments.client (client/), segments.cli (cli/), segments.proto (proto/), segments.bench
(bench/).
"""
__version__ = "0.2.0"

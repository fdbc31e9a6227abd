"""The house rules of imports: engine never reaches up into server/client/cli or protobuf,
kernels import nothing of storage or bitmaps."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield "engine." + (node.module or "") if path.parent.name == "engine" else (node.module or "")
            elif node.module:
                yield node.module


def test_engine_imports_no_upper_layer_or_protobuf():
    bad = []
    for p in (ROOT / "engine").glob("*.py"):
        for mod in _imports(p):
            top = mod.split(".")[0]
            if top in ("server", "client", "cli", "proto", "grpc", "google", "duckdb", "bench"):
                bad.append(f"{p.name} imports {mod}")
    assert not bad, bad


def test_kernels_take_plain_arrays_only():
    for name in ("kernels.py", "build_kernels.py"):
        mods = set(_imports(ROOT / "engine" / name))
        assert not any(m.split(".")[0] in ("lmdb", "pyroaring", "pyarrow") for m in mods), (name, mods)
        assert mods <= {"__future__", "warnings", "numpy", "numba", "numba.core.errors", "engine.kernels"}, (name, mods)


def test_client_does_not_import_engine_internals():
    client = ROOT / "client"
    if not client.exists():
        return
    for p in client.glob("*.py"):
        for mod in _imports(p):
            assert not mod.startswith(("engine.store", "engine.build", "engine.kernels", "engine.evaluate")), \
                f"{p.name} imports {mod}"

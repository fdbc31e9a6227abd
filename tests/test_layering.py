"""The house rules of imports, checked by walking every import of the installed packages.

Across packages: the engine never reaches up into server/client/cli/bench or protobuf; the
client reaches nothing of the engine's storage or evaluation. Inside the engine, rooms run
one way (docs/architecture.md names them):

    model -> storage -> live -> datasets -> evaluation -> catalog -> api

A room may import the rooms before it (and the shared leaves errors.py and results.py),
never one after it. Kernels import plain-array libraries only. Every import is written
either relative or under the `segments.` namespace, never as a bare top-level folder.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "server", "client", "cli", "proto", "bench", "cluster")
ROOMS = ("model", "storage", "live", "datasets", "evaluation", "catalog", "api")
LEAVES = ("errors", "results")
KERNELS = ("engine/storage/bitmaps.py", "engine/storage/build_kernels.py", "engine/storage/text_kernels.py",
           "engine/evaluation/kernels.py", "engine/evaluation/delta_kernels.py",
           "engine/evaluation/line_kernels.py", "engine/evaluation/behaviour_kernels.py")
PLAIN = {"__future__", "warnings", "numpy", "numba", "numba.core.errors"}
# views.py turns piece addresses back into arrays: ctypes and numba's extension API only
VIEWS = "engine/storage/views.py"


def _module(path: Path) -> str:
    """segments.<package>... name of a source file."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["segments"] + parts)


def _imports(path: Path):
    """Absolute names of everything a file imports (relative imports resolved)."""
    me = _module(path).split(".")
    pkg = me if path.name == "__init__.py" else me[:-1]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    for a in node.names:
                        yield f"{mod}.{a.name}"
                    continue
            elif node.module:
                mod = node.module
            else:
                continue
            # `from package import module`: the module is what is imported
            subs = [f"{mod}.{a.name}" for a in node.names if _is_module(f"{mod}.{a.name}")]
            yield from subs or [mod]


def _is_module(name: str) -> bool:
    """Is segments.<a>.<b>... a module (a file or a package) of this repository?"""
    parts = name.split(".")
    if parts[0] != "segments" or len(parts) < 2:
        return False
    p = ROOT.joinpath(*parts[1:])
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def _sources(folder: str):
    return [p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]


def _room(mod: str):
    """The engine room of a segments.engine.* module (None outside the engine)."""
    parts = mod.split(".")
    if parts[:2] != ["segments", "engine"] or len(parts) < 3:
        return None
    return parts[2]


def test_every_import_is_namespaced_or_relative():
    bad = []
    for folder in PACKAGES + ("tests",):
        for p in _sources(folder):
            for mod in _imports(p):
                if mod.split(".")[0] in PACKAGES:
                    bad.append(f"{p.relative_to(ROOT)} imports {mod} (write segments.{mod})")
    assert not bad, bad


def test_engine_imports_no_upper_layer_or_protobuf():
    bad = []
    for p in _sources("engine"):
        for mod in _imports(p):
            top = mod.split(".")[0]
            sub = mod.split(".")[1] if mod.startswith("segments.") and "." in mod else None
            if top in ("grpc", "google", "duckdb") or sub in ("server", "client", "cli", "proto", "bench", "cluster"):
                bad.append(f"{p.relative_to(ROOT)} imports {mod}")
    assert not bad, bad


def test_engine_rooms_run_one_way():
    bad = []
    for p in _sources("engine"):
        mine = _room(_module(p))
        if mine is None or mine in LEAVES or mine == "__init__":
            continue
        for mod in _imports(p):
            theirs = _room(mod)
            if theirs is None or theirs in LEAVES or theirs == mine:
                continue
            assert theirs in ROOMS, f"{mod}: an engine module outside every room"
            if ROOMS.index(theirs) > ROOMS.index(mine):
                bad.append(f"{p.relative_to(ROOT)} ({mine}) imports {mod} ({theirs})")
    assert not bad, bad


def test_every_engine_module_sits_in_a_room():
    loose = [p.name for p in (ROOT / "engine").glob("*.py")
             if p.stem not in ROOMS + LEAVES + ("__init__",)]
    assert not loose, f"engine/ modules outside the rooms: {loose}"
    assert {p.name for p in (ROOT / "engine").iterdir() if p.is_dir() and p.name != "__pycache__"} \
        == set(ROOMS) - {"api"}


def test_kernels_take_plain_arrays_only():
    for name in KERNELS:
        mods = set(_imports(ROOT / name))
        own = {m for m in mods if m.startswith("segments.")}
        assert mods - own <= PLAIN, (name, mods - own)
        for m in own:  # kernels may share constants and other kernels, nothing else
            assert m in ("segments.engine.storage.layout", "segments.engine.evaluation.kernels",
                         "segments.engine.evaluation.line_kernels", "segments.engine.storage.text_kernels",
                         "segments.engine.storage.views"), (name, m)


def test_views_import_nothing_but_numba_and_ctypes():
    mods = set(_imports(ROOT / VIEWS))
    assert mods <= PLAIN | {"ctypes", "numba.core", "numba.extending"}, mods


def test_client_does_not_import_engine_internals():
    for p in _sources("client"):
        for mod in _imports(p):
            room = _room(mod)
            assert room in (None, "model", "results", "errors") and not mod.startswith("segments.engine.api"), \
                f"{p.name} imports {mod}"

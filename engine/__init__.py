"""The segment engine: storage -> index -> evaluation. See docs/architecture.md."""
import os as _os

# numba's OpenMP threads busy-wait after each parallel region by default; on a 2-core
# server shared with gRPC threads that spin steals the cores (2 ms counts became 120 ms).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""What one partition actor runs: an ordinary Engine over the partition's own data folder
(on the node holding its files), answering the coordinator's calls.

Kept free of ray so that it can be tested and read alone; engine.py makes it an actor.
Engine errors do not survive pickling by their constructors, so every call answers
("ok", value) or ("error", class name, attributes) and the coordinator raises the same
error again (see `unwrap`).
"""
from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Optional

from segments.engine import errors as E


class PartitionWorker:
    """Partition `index`, replica `replica`, of every dataset of a cluster: data in `folder`."""

    def __init__(self, folder: str, index: int, replica: int, engine_options: Optional[dict] = None):
        from segments.engine.api import Engine

        self.folder = Path(folder)
        self.index, self.replica = index, replica
        self.engine = Engine(self.folder, **(engine_options or {}))
        self.started = time.time()
        self.delay = 0.0   # seconds each evaluation waits first (tests: a slow partition)
        self.streamed = 0  # chunks of rows sent by stream() (operations, tests: back-pressure)

    # ------------------------------------------------------------ the one entry point
    def call(self, method: str, args: tuple = (), kwargs: Optional[dict] = None,
             timeout: Optional[float] = None):
        """engine.<method>(*args, **kwargs), its deadline `timeout` seconds from now; the
        answer wrapped as ("ok", value) or ("error", ...)."""
        kwargs = dict(kwargs or {})
        t0 = time.perf_counter()
        try:
            if timeout is not None:
                if timeout <= 0:
                    raise E.Cancelled("deadline", "the call's deadline passed before the partition started it")
                kwargs["deadline"] = time.monotonic() + timeout
            if self.delay and method in EVALUATIONS:
                time.sleep(self.delay)
            fn = getattr(self, "do_" + method, None) or getattr(self.engine, method)
            value = fn(*args, **kwargs)
        except E.EngineError as e:
            return ("error", type(e).__name__, dict(vars(e)), str(e))
        return ("ok", value, (time.perf_counter() - t0) * 1000)

    def read(self, request: bytes, timeout: Optional[float] = None):
        """call() of a pickled (method, args, kwargs), the coordinator's reads: pickled
        once by the coordinator for every partition, where Ray's own serialization of a
        segment and an instant as task arguments costs ~0.5 ms per call here. A small
        answer comes back pickled too (bytes); one holding large arrays (materialize)
        as it is, so that Ray passes them through its object store without a copy."""
        method, args, kwargs = pickle.loads(request)
        answer = self.call(method, args, kwargs, timeout)
        large = []
        blob = pickle.dumps(answer, protocol=5, buffer_callback=large.append)
        if not large:
            return blob
        if sum(b.raw().nbytes for b in large) > INLINE_BYTES:
            return answer
        return pickle.dumps(answer, protocol=5)

    def stream(self, request: bytes, chunk_ids: int, timeout: Optional[float] = None):
        """A pickled materialize call answered in pieces (a Ray streaming generator, taken
        by the coordinator with back-pressure): its head first, ("ok", {"total", "chunks",
        "missing_ids", "sequence", "first"}, ms) or the error answer, "first" its first
        chunk_ids rows in output order, then the rest chunk_ids at a time ("chunks" more
        compact Materialized pieces)."""
        method, args, kwargs = pickle.loads(request)
        answer = self.call(method, args, kwargs, timeout)
        if answer[0] != "ok":
            yield answer
            return
        m = answer[1]
        n = len(m.customer_ids)
        first = min(n, chunk_ids)
        yield ("ok", {"total": n, "chunks": -(-(n - first) // chunk_ids), "missing_ids": tuple(m.missing_ids),
                      "sequence": m.sequence, "first": m.rows(0, first, compact=True)}, answer[2])
        self.streamed += 1
        for a in range(first, n, chunk_ids):
            self.streamed += 1
            yield m.rows(a, min(n, a + chunk_ids), compact=True)

    def ping(self) -> dict:
        """Who and where this actor is."""
        try:
            import ray
            node = ray.get_runtime_context().get_node_id()
        except Exception:   # outside Ray
            node = None
        return {"pid": os.getpid(), "host": socket.gethostname(), "node": node, "index": self.index,
                "replica": self.replica, "folder": str(self.folder), "started": self.started,
                "streamed": self.streamed}

    def set_delay(self, seconds: float) -> None:
        self.delay = float(seconds)

    # ------------------------------------------------------------ calls beyond Engine's
    def do_ingest_parts(self, name: str, parts: dict, memory: Optional[int] = None) -> dict:
        """Bulk load this partition's share: table -> Parquet bytes, written to a folder of
        this node and loaded from there."""
        stage = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.folder))
        try:
            for table, data in parts.items():
                (stage / f"{table}.parquet").write_bytes(data)
            return self.engine.ingest(name, stage, memory=memory)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def do_ensure_dataset(self, name: str, timezone: str, shard_bits: int) -> dict:
        """Create the dataset unless this partition has it already (a retried create)."""
        try:
            return self.engine.create_dataset(name, timezone, shard_bits)
        except E.AlreadyExists:
            return self.engine.info(name)

    def do_drop_dataset(self, name: str) -> None:
        """Delete the dataset here; absent already is fine (a retried delete)."""
        try:
            self.engine.delete_dataset(name)
        except E.NotFound:
            pass

    def do_sequence(self, name: str) -> int:
        """The change sequence this partition's readers see."""
        return int(self.engine.info(name)["live"]["sequence"])

    def do_value_histograms(self, name: str, items, as_of=None, deadline: Optional[float] = None,
                            references=None) -> list:
        """Engine.value_histograms packed for the wire (population.pack_histogram)."""
        from .population import pack_histogram
        return [pack_histogram(h) for h in self.engine.value_histograms(name, items, as_of, deadline, references)]

    def do_warm(self, names=None, synthetic: bool = True) -> dict:
        return self.engine.warm(names, synthetic=synthetic)


INLINE_BYTES = 64 * 1024   # answers holding more array bytes than this are not pickled by read()
EVALUATIONS = ("count", "preview", "materialize", "explain", "rows_of", "limit_pieces", "value_histograms")


def unwrap(answer):
    """The value of a worker answer (pickled or not), or its engine error raised again here."""
    if isinstance(answer, bytes):
        answer = pickle.loads(answer)
    if answer[0] == "ok":
        return answer[1]
    _, cls_name, attrs, text = answer
    cls = getattr(E, cls_name, E.EngineError)
    err = cls.__new__(cls)
    Exception.__init__(err, text)
    err.__dict__.update(attrs)
    raise err

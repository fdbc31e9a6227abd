"""`python -m segments.cli.cluster_demo` (make cluster-demo): the demo of cli/demo.py served
by a ClusterEngine: a local Ray, the dataset split by customer_id into 3 partitions, each
owned by its own actor process, the seed examples asked through the unchanged gRPC server.
(tests/test_cluster.py checks such answers against the one-machine Engine.)

Needs the cluster extra (pip install 'segments[cluster]'). Ray keeps its session files and
its auth token in a temporary folder (RAY_TMPDIR and HOME of this run), removed after.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m segments.cli.cluster_demo", description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--show", type=int, default=3, help="preview rows per example")
    args = ap.parse_args(argv)
    try:
        import ray
    except ImportError:
        print("error: the cluster demo needs ray: pip install 'segments[cluster]'", file=sys.stderr)
        return 2
    from segments.cli import demo
    from segments.cluster.engine import RAY_SYSTEM_CONFIG, ClusterEngine

    scratch = Path(tempfile.mkdtemp(prefix="segments-cluster-demo-"))
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))   # Ray's socket paths must stay short
    os.environ["HOME"], os.environ["RAY_TMPDIR"] = str(scratch), str(ray_tmp)
    try:
        t0 = time.perf_counter()
        ray.init(num_cpus=2, _temp_dir=str(ray_tmp), include_dashboard=False, log_to_driver=False,
                 _system_config=RAY_SYSTEM_CONFIG)
        print(f"local Ray started in {time.perf_counter() - t0:.1f} s")
        engines = {}

        def open_cluster(folder):
            engines["cluster"] = ClusterEngine(folder, partitions=args.partitions)
            print(f"{args.partitions} partition actors: "
                  + ", ".join(f"p{a['index']} pid {a['pid']}" for a in engines["cluster"].ping()))
            return engines["cluster"]

        code = demo.run(scratch, args.customers, args.show, open_engine=open_cluster)
        info = engines["cluster"].info("demo")
        print("rows per partition: " + ", ".join(f"p{p} {i['rows']['customers']:,} customers"
                                                 for p, i in enumerate(info["partition_info"])))
        return code
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""count / preview / explain / materialize through a server (`--server host:port --token T`).

The client's evaluation methods take the Engine's arguments and return its result types,
so the local command body runs unchanged against a SegmentsClient.
"""
from __future__ import annotations

import sys


def remote_eval(args, seg, as_of) -> int:
    """Run args.cmd for args.dataset on args.server; a gRPC error prints "error: CODE: message"
    and returns 2."""
    import grpc

    from cli.main import run_eval
    from client.client import SegmentsClient

    with SegmentsClient(args.server, token=args.token) as client:
        try:
            return run_eval(args, client, seg, as_of)
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 2

"""Commands through a server (`--server host:port`, the token from --token-file or $SEGMENTS_TOKEN).

The client's methods take the Engine's arguments and return its result types, so the local
command body runs unchanged against a SegmentsClient.
"""
from __future__ import annotations


def remote_call(args, body) -> int:
    """body(client) with a SegmentsClient for args.server; a gRPC error prints
    "error: CODE: message" and returns 2."""
    import grpc

    from segments.client.client import SegmentsClient

    from .main import bearer_token

    with SegmentsClient(args.server, token=bearer_token(args)) as client:
        try:
            return body(client)
        except grpc.RpcError as e:
            from .main import say_error
            say_error(f"{e.code().name}: {e.details()}")
            return 2


def remote_eval(args, seg, as_of) -> int:
    """Run args.cmd (count / preview / explain / materialize) for args.dataset on args.server."""
    from .main import run_eval

    return remote_call(args, lambda client: run_eval(args, client, seg, as_of))

"""Bearer tokens: the role x dataset matrix, missing and wrong tokens, token files."""
from __future__ import annotations

import json

import grpc
import pytest

from segments.server.auth import Tokens
from tests.grpc_support import TOKENS, grpc_env  # noqa: F401  (fixture)

C = grpc.StatusCode
SEG = {"include": {"loyalty_member": {}}}

# call name -> (role it needs, function(client, dataset)); the allowed calls are made cheap and
# side-effect free by a request that fails validation after the auth check.
CALLS = {
    "count": ("read", lambda c, d: c.count(d, SEG)),
    "preview": ("read", lambda c, d: c.preview(d, SEG, 3)),
    "explain": ("read", lambda c, d: c.explain(d, SEG)),
    "info": ("read", lambda c, d: c.dataset_info(d)),
    "list_saved": ("read", lambda c, d: c.list_saved_segments(d)),
    "materialize": ("export", lambda c, d: c.materialize(d, SEG)),
    "export": ("export", lambda c, d: c.export(d, SEG, file_name="../nope")),
    "save": ("write", lambda c, d: c.create_saved_segment(d, "auth-x", "{not json")),
    "create_group": ("write", lambda c, d: c.create_group(d, "auth-g", "{not json")),
    "ingest": ("write", lambda c, d: c.ingest(d, "/no/such/folder")),
    "create_dataset": ("admin", lambda c, d: c.create_dataset(d, "No/Such_Zone")),
    "delete_dataset": ("admin", lambda c, d: c.delete_dataset(d + "-absent")),
}


def _code(fn) -> grpc.StatusCode:
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return C.OK


@pytest.mark.parametrize("token", sorted(TOKENS))
@pytest.mark.parametrize("dataset", ["shop", "other"])
def test_role_and_dataset_matrix(grpc_env, token, dataset):
    grant = TOKENS[token]
    with grpc_env.client(token, auth=True) as c:
        for name, (role, call) in CALLS.items():
            target = dataset + "-absent" if name == "delete_dataset" else dataset
            covered = "*" in grant["datasets"] or target in grant["datasets"]
            allowed = covered and role in grant["roles"]
            code = _code(lambda: call(c, dataset))
            if allowed:
                assert code not in (C.UNAUTHENTICATED, C.PERMISSION_DENIED), (token, dataset, name, code)
            else:
                assert code == C.PERMISSION_DENIED, (token, dataset, name, code)


@pytest.mark.parametrize("token", [None, "wrong-token-123", ""])
def test_missing_or_wrong_tokens_are_unauthenticated(grpc_env, token):
    with grpc_env.client(token, auth=True) as c:
        for name, (_, call) in CALLS.items():
            assert _code(lambda: call(c, "shop")) == C.UNAUTHENTICATED, name
        assert _code(c.list_datasets) == C.UNAUTHENTICATED


def test_malformed_authorization_header(grpc_env):
    from segments.proto import segments_pb2 as pb
    from segments.proto import segments_pb2_grpc as pbg
    with grpc.insecure_channel(f"127.0.0.1:{grpc_env.auth_port}") as ch:
        stub = pbg.DatasetsServiceStub(ch)
        for header in ("Basic cm9vdC10b2tlbg==", "Bearer", "root-token"):
            with pytest.raises(grpc.RpcError) as e:
                stub.GetDatasetInfo(pb.GetDatasetInfoRequest(dataset="shop"), metadata=(("authorization", header),))
            assert e.value.code() == C.UNAUTHENTICATED


def test_list_datasets_shows_only_the_tokens_datasets(grpc_env):
    with grpc_env.client("admin-token-A", auth=True) as c:
        assert c.list_datasets() == ["shop"]
    with grpc_env.client("root-token", auth=True) as c:
        assert {"shop", "other", "big"} <= set(c.list_datasets())
    with grpc_env.client("reader-token-A", auth=True) as c:
        assert _code(c.list_datasets) == C.PERMISSION_DENIED


def test_a_token_of_one_dataset_cannot_probe_another(grpc_env):
    with grpc_env.client("reader-token-A", auth=True) as c:
        # an unknown dataset answers PERMISSION_DENIED, not NOT_FOUND: existence is not leaked
        assert _code(lambda: c.count("no-such-dataset", SEG)) == C.PERMISSION_DENIED
    with grpc_env.client("root-token", auth=True) as c:
        assert _code(lambda: c.count("no-such-dataset", SEG)) == C.NOT_FOUND


def test_health_needs_no_token(grpc_env):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    with grpc.insecure_channel(f"127.0.0.1:{grpc_env.auth_port}") as ch:
        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == \
               health_pb2.HealthCheckResponse.SERVING


def test_token_files_json_and_toml(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"json-token-1": {"datasets": ["a"], "roles": ["read"]}}))
    (tmp_path / "t.toml").write_text('[toml-token-1]\ndatasets = ["*"]\nroles = ["read", "admin"]\n')
    j, t = Tokens.load(tmp_path / "t.json"), Tokens.load(tmp_path / "t.toml")
    g = j.grant([("authorization", "Bearer json-token-1")])
    assert g.covers("a") and not g.covers("b") and g.roles == {"read"}
    assert t.grant([("authorization", "bearer toml-token-1")]).covers("anything")


@pytest.mark.parametrize("bad", [
    {}, {"short": {"datasets": ["a"], "roles": ["read"]}},
    {"long-enough": {"datasets": ["a"], "roles": ["superuser"]}},
    {"long-enough": {"datasets": "a", "roles": ["read"]}},
    {"long-enough": {"datasets": ["a"], "roles": ["read"], "extra": 1}},
])
def test_bad_token_files_are_refused(bad):
    with pytest.raises(ValueError):
        Tokens(bad)


def test_tls_with_tokens(grpc_env, tmp_path):
    import shutil
    import subprocess

    from segments.server.app import build_server, stop
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    server, port = build_server(grpc_env.engine, 0, tokens=Tokens(TOKENS), host="127.0.0.1",
                                tls=(cert.read_bytes(), key.read_bytes()))
    server.start()
    try:
        from segments.client.client import SegmentsClient
        with SegmentsClient(f"localhost:{port}", token="reader-token-A", root_certificates=cert.read_bytes()) as c:
            assert c.count("shop", SEG).count > 0
        with SegmentsClient(f"127.0.0.1:{port}", token="reader-token-A", timeout=2, retries=0) as plain:
            assert _code(lambda: plain.count("shop", SEG)) == C.UNAVAILABLE   # plaintext is refused
    finally:
        stop(server, 0)

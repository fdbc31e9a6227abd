"""`segments` configuration: --version, flags / SEGMENTS_* / TOML, tokens without the command
line, the data folder check, and who may bind what without tokens."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from segments import __version__
from segments.cli.config import ConfigError, SERVE_OPTIONS, resolve_serve
from segments.server.app import exposure, is_loopback
from segments.server.auth import Tokens
from tests.grpc_support import REPO, TOKENS, grpc_env, spawn_server, start_server  # noqa: F401


def _segments(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "segments.cli.main", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _serve_args(argv):
    from segments.cli.main import build_parser
    return build_parser().parse_args(["serve", *argv])


def test_version():
    r = _segments("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"segments {__version__}"


def test_the_distribution_version_is_the_package_version():
    from importlib.metadata import version
    assert version("segments") == __version__


def test_flag_beats_environment_beats_file_beats_default(tmp_path):
    cfg = tmp_path / "segments.toml"
    cfg.write_text('data = "/from/file"\n[serve]\nport = 7001\ngrace = 2.5\nworkers = 3\naccess_log = "off"\n'
                   'allow_unauthenticated = true\n')
    env = {"SEGMENTS_CONFIG": str(cfg), "SEGMENTS_PORT": "7002", "SEGMENTS_WORKERS": "5",
           "SEGMENTS_CREATE_DATA": "yes"}
    got = resolve_serve(_serve_args(["--port", "7003"]), env)
    assert (got.port, got.workers, got.grace, got.access_log) == (7003, 5, 2.5, "off")
    assert got.allow_unauthenticated is True and got.create_data is True
    assert got.group_ttl_days == 180 and got.data == "/from/file"
    assert got.sources["port"] == "--port" and got.sources["workers"] == "SEGMENTS_WORKERS"
    assert got.sources["grace"].endswith("[serve].grace") and got.sources["chunk_ids"] == "default"
    assert resolve_serve(_serve_args([]), {**env, "SEGMENTS_DATA": "/from/env"}).data == "/from/env"


def test_every_serve_flag_has_an_environment_variable_and_a_file_key(tmp_path):
    samples = {int: "7", float: "1.5", bool: "true", str: "x"}
    for o in SERVE_OPTIONS:
        got = resolve_serve(_serve_args([]), {o.env: samples[o.kind]})
        want = True if o.kind is bool else o.kind(samples[o.kind])
        assert getattr(got, o.name) == want and got.sources[o.name] == o.env, o.name
        cfg = tmp_path / f"{o.name}.toml"
        value = {int: "7", float: "1.5", bool: "true", str: '"x"'}[o.kind]
        cfg.write_text(f"[serve]\n{o.name} = {value}\n")
        assert resolve_serve(_serve_args([]), {"SEGMENTS_CONFIG": str(cfg)}).sources[o.name].endswith(o.name)


@pytest.mark.parametrize("env,text,message", [
    ({"SEGMENTS_PORT": "eighty"}, "", "SEGMENTS_PORT: expected an integer"),
    ({"SEGMENTS_CREATE_DATA": "maybe"}, "", "SEGMENTS_CREATE_DATA: expected true or false"),
    ({}, "[serve]\nprot = 1\n", "unknown key 'prot'"),
    ({}, "[serve]\nport = 'x'\n", "[serve].port: expected an integer"),
    ({}, "[serve\n", "not valid TOML"),
    ({}, "datta = 1\n", "unknown key 'datta'"),
])
def test_bad_settings_name_their_source(tmp_path, env, text, message):
    if text:
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        env = {**env, "SEGMENTS_CONFIG": str(cfg)}
    with pytest.raises(ConfigError) as e:
        resolve_serve(_serve_args([]), env)
    assert message in str(e.value)


def test_loopback_and_the_bind_rule():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "[::]", "::", "10.0.0.1", "example.com"))
    tokens = Tokens(TOKENS)
    assert exposure(None, None, False) == ("127.0.0.1", [])
    assert exposure(None, tokens, True) == ("[::]", [])
    with pytest.raises(ValueError, match="refusing to serve 0.0.0.0 without tokens"):
        exposure("0.0.0.0", None, False)
    host, warnings = exposure("0.0.0.0", None, False, allow_unauthenticated=True)
    assert host == "0.0.0.0" and "WARNING" in warnings[0] and "unauthenticated" in warnings[0]
    host, warnings = exposure(None, tokens, False)
    assert host == "[::]" and "plaintext" in warnings[0]
    assert exposure("127.0.0.1", tokens, False) == ("127.0.0.1", [])


def test_serve_refuses_every_interface_without_tokens(grpc_env):
    r = _segments("--data", str(grpc_env.root), "serve", "--host", "0.0.0.0", "--port", "0", "--warm", "none")
    assert r.returncode == 2 and "refusing to serve 0.0.0.0 without tokens" in r.stderr
    assert "localhost only" not in r.stdout + r.stderr


def test_serve_with_allow_unauthenticated_says_what_it_does(grpc_env):
    proc, port, out = start_server(grpc_env.root, "--host", "0.0.0.0", "--allow-unauthenticated", "--warm", "none")
    try:
        assert "WARNING: no tokens and --allow-unauthenticated" in out.text
        assert "listening on 0.0.0.0" in out.text and "this machine only" not in out.text
        from segments.client.client import SegmentsClient
        with SegmentsClient(f"127.0.0.1:{port}") as c:
            assert c.list_datasets()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_tokens_without_tls_beyond_localhost_warn_loudly_and_come_from_the_environment(grpc_env):
    env = {"SEGMENTS_TOKENS_JSON": json.dumps(TOKENS), "SEGMENTS_WARM": "none"}
    proc = subprocess.Popen([sys.executable, "-m", "segments.cli.main", "--data", str(grpc_env.root), "serve",
                             "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    from tests.grpc_support import Output
    out = Output(proc)
    try:
        port = int(out.wait_for(r"serving .* on \S+:(\d+)")[0])
        assert "WARNING: bearer tokens in plaintext on [::]" in out.text
        assert "no tokens" not in out.text
        import grpc
        from segments.client.client import SegmentsClient
        with SegmentsClient(f"127.0.0.1:{port}", retries=0) as anonymous:
            with pytest.raises(grpc.RpcError) as e:
                anonymous.list_datasets()
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with SegmentsClient(f"127.0.0.1:{port}", token="root-token") as c:
            assert "shop" in c.list_datasets()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_a_data_folder_that_does_not_exist_is_refused_unless_asked_to_create(tmp_path):
    missing = tmp_path / "typo"
    r = _segments("--data", str(missing), "serve", "--port", "0")
    assert r.returncode == 2 and "does not exist" in r.stderr and "--create-data" in r.stderr
    assert not missing.exists()
    r = _segments("--data", str(missing), "info", "--dataset", "x")
    assert r.returncode == 2 and "does not exist" in r.stderr and not missing.exists()
    proc, port, out = start_server(missing, "--create-data", "--warm", "none")
    proc.terminate()
    proc.wait(timeout=60)
    assert missing.is_dir()
    other = tmp_path / "new"
    r = _segments("--data", str(other), "dataset", "create", "shop", "--timezone", "UTC")
    assert r.returncode == 0 and (other / "shop").is_dir()


def test_remote_commands_take_the_token_from_a_file_or_the_environment(grpc_env, tmp_path):
    seg = tmp_path / "seg.json"
    seg.write_text(json.dumps({"include": {"loyalty_member": {}}}))
    proc, port, out = start_server(grpc_env.root, "--warm", "none", "--tokens", _tokens_file(tmp_path))
    try:
        base = ["count", "--dataset", "shop", "--segment", str(seg), "--server", f"127.0.0.1:{port}", "--json"]
        r = _segments(*base)
        assert r.returncode == 2 and "UNAUTHENTICATED" in r.stderr
        assert json.loads(_segments(*base, env={"SEGMENTS_TOKEN": "reader-token-A"}).stdout)["count"] > 0
        (tmp_path / "token").write_text("reader-token-A\n")
        assert json.loads(_segments(*base, "--token-file", str(tmp_path / "token")).stdout)["count"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _tokens_file(tmp_path) -> str:
    p = tmp_path / "tokens.json"
    p.write_text(json.dumps(TOKENS))
    return str(p)


def test_a_config_file_runs_the_server(grpc_env, tmp_path):
    cfg = tmp_path / "segments.toml"
    cfg.write_text(f'data = "{grpc_env.root}"\n[serve]\nport = 0\nwarm = "none"\n'
                   f'tokens = "{_tokens_file(tmp_path)}"\nhost = "127.0.0.1"\naccess_log = "stdout"\n')
    proc = subprocess.Popen([sys.executable, "-m", "segments.cli.main", "--config", str(cfg), "serve"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    from tests.grpc_support import Output
    out = Output(proc)
    try:
        port = int(out.wait_for(r"serving .* on 127.0.0.1:(\d+)")[0])
        from segments.client.client import SegmentsClient
        with SegmentsClient(f"127.0.0.1:{port}", token="reader-token-A") as c:
            assert c.count("shop", {"include": {"all": {}}}).count > 0
        line = json.loads(out.wait_for(r'(\{"ts".*/Count".*\})')[0])
        assert line["status"] == "OK" and line["dataset"] == "shop"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_the_operators_page_names_every_setting():
    text = (REPO / "docs" / "operations.md").read_text()
    missing = [o.flag for o in SERVE_OPTIONS if f"`{o.flag}`" not in text or f"`{o.env}`" not in text]
    assert not missing, f"docs/operations.md does not name: {missing}"

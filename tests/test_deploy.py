"""deploy/: the Dockerfile's entry point and the systemd unit's ExecStart, run as processes.

No image is built here unless a Docker engine answers (CI has none): the tests read the
Dockerfile's ENV, ENTRYPOINT and HEALTHCHECK and run them with this checkout's `segments`,
and read the unit's ExecStart, Environment and signals and run them with NOTIFY_SOCKET set,
as systemd would.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.grpc_support import REPO, TOKENS, Output, grpc_env  # noqa: F401  (fixture)

DEPLOY = REPO / "deploy"
SEGMENTS = str(Path(sys.executable).with_name("segments"))


def dockerfile() -> dict:
    """ENV (merged), ENTRYPOINT, HEALTHCHECK CMD and COPY sources of deploy/Dockerfile."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = {"env": {}, "copy": [], "entrypoint": None, "healthcheck": None}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            for part in shlex.split(rest):
                k, _, v = part.partition("=")
                out["env"][k] = v
        elif word == "COPY":
            out["copy"] += rest.split()[:-1]
        elif word == "ENTRYPOINT":
            out["entrypoint"] = json.loads(rest)
        elif word == "HEALTHCHECK":
            out["healthcheck"] = json.loads(rest[rest.index("CMD") + 3:].strip())
    return out


def _numba_cache_as_here(env: dict) -> None:
    """The image and the unit compile kernels into their NUMBA_CACHE_DIR ahead of time; here
    the cache this checkout already has stands in for it (a new empty one would make the
    process compile every kernel, minutes on a busy 2-core machine)."""
    if "NUMBA_CACHE_DIR" in os.environ:
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    else:
        env.pop("NUMBA_CACHE_DIR", None)


def _run_image_entrypoint(tmp_path, extra_env: dict):
    d = dockerfile()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENTS_")}
    env.update(d["env"])
    # what the image has at these paths, this machine has elsewhere; ports: any free ones
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    env.update({"SEGMENTS_DATA": str(data), "SEGMENTS_PORT": "0", "SEGMENTS_METRICS_PORT": "0",
                "SEGMENTS_WARM": "synthetic", "PYTHONUNBUFFERED": "1", **extra_env})
    _numba_cache_as_here(env)
    cmd = [SEGMENTS if d["entrypoint"][0] == "segments" else d["entrypoint"][0]] + d["entrypoint"][1:]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    return proc, Output(proc), d


def test_the_dockerfile_copies_every_installed_package():
    import re
    d = dockerfile()
    mapped = re.findall(r'^"segments(?:\.\w+)?" = "(\w+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert set(mapped) <= set(d["copy"]), f"packages the image would miss: {set(mapped) - set(d['copy'])}"
    assert all((REPO / p).exists() for p in d["copy"])


def test_the_image_refuses_to_start_without_tokens(tmp_path):
    proc, out, _ = _run_image_entrypoint(tmp_path, {})
    assert proc.wait(timeout=60) == 2
    assert "refusing to serve 0.0.0.0 without tokens" in out.rest()


def test_the_image_entrypoint_serves_with_tokens_and_its_healthcheck_passes(tmp_path):
    proc, out, d = _run_image_entrypoint(tmp_path, {"SEGMENTS_TOKENS_JSON": json.dumps(TOKENS)})
    try:
        port = int(out.wait_for(r"serving .* on 0\.0\.0\.0:(\d+)", timeout=120)[0])
        assert "WARNING: bearer tokens in plaintext" in out.text   # no TLS in front: said loudly
        check = [SEGMENTS if d["healthcheck"][0] == "segments" else d["healthcheck"][0]] + \
                [a.replace(":50051", f":{port}") for a in d["healthcheck"][1:]]
        r = subprocess.run(check, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "SERVING" in r.stdout
        from segments.client.client import SegmentsClient
        with SegmentsClient(f"127.0.0.1:{port}", token="root-token") as c:
            c.create_dataset("shop", "UTC")
            assert c.list_datasets() == ["shop"]
        out.wait_for(r'"method": "segments\.v1\.DatasetsService/ListDatasets"')   # access log on stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, out.rest()


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker command on this machine")
def test_the_image_builds_when_a_docker_engine_answers():
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("docker is installed but no Docker engine answers here")
    r = subprocess.run(["docker", "build", "-f", "deploy/Dockerfile", "-t", "segments-test", "."], cwd=REPO,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]


def unit() -> dict:
    """The [Service] settings of deploy/segments.service (Environment= merged)."""
    service, section = {"Environment": {}}, None
    for line in (DEPLOY / "segments.service").read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            if k == "Environment":
                ek, _, ev = v.partition("=")
                service["Environment"][ek] = ev
            else:
                service[k] = v
    return service


def test_the_systemd_unit_starts_notifies_ready_and_stops_on_its_signal(grpc_env, tmp_path):
    u = unit()
    assert u["Type"] == "notify" and u["KillSignal"] == "SIGTERM"
    argv = shlex.split(u["ExecStart"])
    assert argv[0] == "/opt/segments/bin/segments" and argv[1] == "--config"
    config = tomllib.loads((DEPLOY / "segments.toml").read_text())
    assert config["data"] == "/var/lib/segments/data"
    # this machine's stand-ins for the unit's paths, the rest of the file as shipped
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    text = (DEPLOY / "segments.toml").read_text()
    text = text.replace("/var/lib/segments/data", str(grpc_env.root)).replace("/etc/segments/tokens.json", str(tokens))
    text = text.replace("port = 50051", "port = 0").replace("metrics_port = 9464", "metrics_port = 0")
    cfg = tmp_path / "segments.toml"
    cfg.write_text(text)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(float(u["TimeoutStartSec"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMENTS_")}
    env.update({**u["Environment"], "NOTIFY_SOCKET": str(tmp_path / "notify"), "PYTHONUNBUFFERED": "1",
                "SEGMENTS_WARM": "shop"})
    _numba_cache_as_here(env)
    cmd = [SEGMENTS] + [str(cfg) if a == "/etc/segments/segments.toml" else a for a in argv[1:]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = Output(proc)
    try:
        assert notify.recv(4096) == b"READY=1"
        out.wait_for(r"serving ", timeout=10)   # written before READY=1 was sent
        proc.send_signal(getattr(signal, u["KillSignal"]))
        assert notify.recv(4096) == b"STOPPING=1"
        assert proc.wait(timeout=float(u["TimeoutStopSec"])) == 0, out.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze on this machine")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    text = (DEPLOY / "segments.service").read_text().replace("/opt/segments/bin/segments", SEGMENTS)
    (tmp_path / "segments.service").write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "segments.service")],
                       capture_output=True, text=True, timeout=60)
    problems = [x for x in (r.stdout + r.stderr).splitlines() if "segments.service" in x]
    assert not problems, r.stdout + r.stderr

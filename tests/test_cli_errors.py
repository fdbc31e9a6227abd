"""The `segments` command never shows a traceback: one "error: ..." line and a non-zero exit
code for every failure (SEGMENTS_DEBUG=1 shows the traceback of an unexpected one), and the
same refusals locally and through a server.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from segments.cli.main import main
from tests.grpc_support import REPO, grpc_env  # noqa: F401  (fixture)

TRACE = "Traceback (most recent call last)"


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    """A data directory with one small dataset, and segment files."""
    from segments.bench.generate import generate
    from segments.engine.api import Engine
    base = tmp_path_factory.mktemp("cli")
    generate(base / "in", customers=200, seed=4)
    eng = Engine(base / "data")
    eng.create_dataset("t", "America/New_York")
    eng.ingest("t", base / "in")
    eng.close()
    segs = base / "segs"
    segs.mkdir()
    files = {
        "ok": '{"include": "all"}',
        "bigint": '{"include": {"age": {">": ' + "9" * 5000 + "}}}",
        "surrogate": '{"include": {"search": {"text": "\\ud800"}}}',
        "deep": '{"include": ' + '{"not": ' * 10_000 + '"all"' + "}" * 10_001,
        "bad": "{oops",
    }
    for name, text in files.items():
        (segs / f"{name}.json").write_text(text)
    (segs / "latin1.json").write_bytes(b'{"include": {"surname": "M\xfcller"}}')
    (base / "bad-dates").mkdir()
    (base / "bad-dates" / "customers.csv").write_text("customer_id,birth_date\n990003,0000-06-15\n")
    return base


def run(capsys, *argv) -> tuple:
    """main(argv) in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def seg(base, name):
    return base / "segs" / f"{name}.json"


@pytest.mark.parametrize("args, says", [
    (["count", "--dataset", "t", "--segment", "<bigint>"], "include.age.>: an integer of 5000 digits"),
    (["count", "--dataset", "t", "--segment", "<surrogate>"], "include.search.text: text is not valid Unicode"),
    (["count", "--dataset", "t", "--segment", "<deep>"], "segment: nested deeper than 100 levels"),
    (["count", "--dataset", "t", "--segment", "<bad>"], "segment: not valid JSON"),
    (["count", "--dataset", "t", "--segment", "<latin1>"], "is not UTF-8 text"),
    (["count", "--dataset", "t", "--segment", "/no/such.json"], "--segment: cannot read"),
    (["count", "--dataset", "t", "--segment", "/"], "--segment: cannot read"),
    (["count", "--dataset", "t", "--segment", "<ok>", "--as-of", "0001-01-01T00:00:00Z"], "outside the supported"),
    (["count", "--dataset", "t", "--segment", "<ok>", "--as-of", "9999-12-31T23:59:59+00:00"], "outside the supported"),
    (["count", "--dataset", "t", "--segment", "<ok>", "--as-of", ""], "--as-of: not an ISO-8601 instant"),
    (["preview", "--dataset", "t", "--segment", "<ok>", "-n", "0"], "-n: must be between 1 and 10000"),
    (["preview", "--dataset", "t", "--segment", "<ok>", "-n", "10001"], "-n: must be between 1 and 10000"),
    (["preview", "--dataset", "t", "--segment", "<ok>", "--fields", "email,email"], "fields[1]: field 'email' is asked"),
    (["materialize", "--dataset", "t", "--segment", "<ok>", "--fields", "email,email", "--out", "<base>/d.parquet"],
     "fields[1]"),
    (["materialize", "--dataset", "t", "--segment", "<ok>", "--out", "/no/such/dir/x.parquet"], "is not a folder"),
    (["materialize", "--dataset", "t", "--segment", "<ok>", "--out", "<base>/x.txt"], "expected a .parquet or .csv"),
    (["ingest", "/no/such/folder", "--dataset", "t"], "is not a folder"),
    (["ingest", "<base>/bad-dates", "--dataset", "t"], "customers.csv, row 1, column birth_date: date 0000-06-15"),
    (["change", "t", "--customers", "<base>/bad-dates/customers.csv"], "row 1, column birth_date"),
    (["change", "t", "--delete", "9" * 40], "--delete"),
    (["change", "t"], "nothing to apply"),
    (["dataset", "create", "tzx", "--timezone", "Z" * 10_000], "timezone: unknown IANA timezone"),
    (["dataset", "create", "../x", "--timezone", "UTC"], "dataset: invalid dataset name"),
    (["dataset", "create", "n" * 10_000, "--timezone", "UTC"], "dataset: invalid name"),
    (["info", "--dataset", "nope"], "dataset: no dataset named 'nope'"),
    (["generate", "--out", "<base>/gen0", "--customers", "0"], "customers must be >= 1"),
])
def test_refusals_are_one_line_without_a_traceback(cli_data, capsys, args, says):
    argv = [a.replace("<base>", str(cli_data)) for a in args]
    argv = [str(seg(cli_data, a[1:-1])) if a.startswith("<") and a.endswith(">") else a for a in argv]
    code, out, err = run(capsys, "--data", cli_data / "data", *argv)
    assert code != 0
    assert TRACE not in err and TRACE not in out
    assert err.startswith("error: ") and says in err, err[:500]
    assert len(err) < 2200 and err.count("\n") == 1, err[:500]


def test_an_unexpected_failure_is_one_line_and_debug_shows_the_trace(cli_data, capsys, monkeypatch):
    from segments.engine import api

    def boom(self, name):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(api.Engine, "info", boom)
    code, out, err = run(capsys, "--data", cli_data / "data", "info", "--dataset", "t")
    assert code == 1 and err == "error: RuntimeError: disk on fire\n"
    monkeypatch.setenv("SEGMENTS_DEBUG", "1")
    code, out, err = run(capsys, "--data", cli_data / "data", "info", "--dataset", "t")
    assert code == 1 and TRACE in err and err.endswith("error: RuntimeError: disk on fire\n")


def test_the_cli_and_the_server_refuse_alike(cli_data, capsys, grpc_env):
    server = ["--server", f"127.0.0.1:{grpc_env.port}"]
    ok = seg(cli_data, "ok")
    for extra, says in ((["preview", "-n", "0"], "-n: must be between"), (["count", "--as-of", ""], "--as-of"),
                        (["preview", "--fields", "email,email"], "fields[1]"),
                        (["count", "--as-of", "0001-01-01T00:00:00Z"], "outside the supported")):
        cmd, *opts = extra
        local = run(capsys, "--data", cli_data / "data", cmd, "--dataset", "t", "--segment", ok, *opts)
        remote = run(capsys, "--data", cli_data / "data", cmd, "--dataset", "shop", "--segment", ok, *opts, *server)
        assert local[0] == remote[0] == 2, (extra, local, remote)
        assert says in local[2] and says in remote[2], (local[2], remote[2])
    code, _, err = run(capsys, "count", "--dataset", "shop", "--segment", seg(cli_data, "deep"), *server)
    assert code == 2 and "nested deeper" in err
    code, _, err = run(capsys, "count", "--dataset", "shop", "--segment", ok, "--server", "127.0.0.1:1",
                       "--token", "x")
    assert code == 2 and err.startswith("error: UNAVAILABLE")


def test_as_a_process_no_command_prints_a_traceback(cli_data):
    env = {**os.environ}
    env.pop("SEGMENTS_DEBUG", None)
    for argv in (["count", "--dataset", "t", "--segment", seg(cli_data, "deep")],
                 ["count", "--dataset", "t", "--segment", seg(cli_data, "ok"), "--as-of", "0001-01-01T00:00:00Z"],
                 ["preview", "--dataset", "t", "--segment", seg(cli_data, "ok"), "--fields", "email,email"]):
        p = subprocess.run([sys.executable, "-m", "segments.cli.main", "--data", str(cli_data / "data"),
                            *map(str, argv)], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        assert p.returncode == 2 and TRACE not in p.stderr and p.stderr.startswith("error: "), p.stderr[-800:]

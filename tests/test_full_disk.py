"""A full disk kills nothing: every write answers RESOURCE_EXHAUSTED saying how much it
needs, reads keep working, nothing acknowledged is lost, and the same calls succeed once
space is back, without a restart (engine/storage/space.py).

The real thing runs on a small tmpfs in a private mount namespace (tests/full_disk_child.py):
as root, or as a user where user namespaces are allowed; elsewhere it is skipped with the
reason. The space checks themselves are also tested everywhere with the free space faked.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

REPO = Path(__file__).resolve().parents[1]


def _namespace_prefix(tmp_path: Path):
    """The command prefix that gives a private mount namespace where tmpfs mounts work."""
    if shutil.which("unshare") is None:
        return None, "no unshare command"
    probe = tmp_path / "probe"
    probe.mkdir()
    why = []
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        r = subprocess.run(prefix + ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return prefix, ""
        why.append(f"{' '.join(prefix)}: {r.stderr.strip()[:100]}")
    return None, "cannot mount a tmpfs in a private mount namespace (" + "; ".join(why) + ")"


@pytest.fixture(scope="module")
def full_disk_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full-disk")
    prefix, why = _namespace_prefix(tmp)
    if prefix is None:
        pytest.skip(why)
    p = subprocess.run(prefix + [sys.executable, "-m", "tests.full_disk_child", str(tmp / "work")],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"child ended with {p.returncode} (-7 is SIGBUS):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_every_write_on_a_full_disk_answers_resource_exhausted_with_the_size(full_disk_run):
    refused = 0
    for call, answer in full_disk_run["answers"].items():
        code = answer[0]
        assert code in ("OK", "RESOURCE_EXHAUSTED"), (call, answer)
        if code == "RESOURCE_EXHAUSTED":
            refused += 1
            assert "needs about" in answer[1] and "free" in answer[1], (call, answer)
            assert answer[2] == "INSUFFICIENT_SPACE" and int(answer[3]["needed_bytes"]) > 0, (call, answer)
    # with nothing free every call that writes is refused
    assert all(full_disk_run["answers"][f"{c}@0"][0] == "RESOURCE_EXHAUSTED"
               for c in ("apply_changes", "compact", "ingest", "export", "create_group", "save_segment",
                         "create_dataset")), full_disk_run["answers"]
    assert refused >= 7


def test_a_write_that_runs_out_of_space_midway_is_refused_cleanly_too(full_disk_run):
    """Checks passed (estimates forced to 0), the write itself hits ENOSPC: still no
    INTERNAL and no death, and the next calls succeed once space is back."""
    lying = full_disk_run["lying"]
    assert lying and all(a[0] in ("OK", "RESOURCE_EXHAUSTED") for a in lying.values()), lying
    assert sum(a[0] == "RESOURCE_EXHAUSTED" for a in lying.values()) >= 5, lying


def test_reads_keep_working_while_the_disk_is_full(full_disk_run):
    reads = full_disk_run["reads_while_full"]
    assert len(reads) == 5 and all(isinstance(n, int) and n > 0 for n in reads), reads


def test_an_lmdb_store_opened_on_a_full_disk_is_an_error_not_a_signal(full_disk_run):
    assert "not enough disk space" in full_disk_run["open_env"], full_disk_run["open_env"]


def test_once_space_is_back_every_call_succeeds_and_nothing_acknowledged_is_lost(full_disk_run):
    assert full_disk_run["after"] == {c: "OK" for c in full_disk_run["after"]}, full_disk_run["after"]
    assert full_disk_run["lines_visible"] == full_disk_run["acked"] > 0

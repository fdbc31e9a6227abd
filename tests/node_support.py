"""Node.js for the contract tests: the packages of clients/node/package.json installed into
clients/node/node_modules (git-ignored) by npm, once per test session; pytest.skip with the
reason when node or npm is missing or npm cannot reach its registry."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "clients" / "node"
_installed: list = []


def node_packages() -> Path:
    """clients/node with its node_modules installed (skips when that cannot be)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not on this machine: the Node.js contract tests need them")
    if not _installed:
        cmd = ["npm", "ci" if (NODE_DIR / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
        if (NODE_DIR / "node_modules" / ".package-lock.json").exists():
            cmd = ["npm", "install", "--no-audit", "--no-fund"]   # already there: only what changed
        r = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            text = r.stdout + r.stderr
            if any(s in text for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "network")):
                pytest.skip(f"npm cannot reach its registry: {text.strip().splitlines()[-1]}")
            raise AssertionError(f"npm failed in {NODE_DIR}:\n{text}")
        _installed.append(True)
    return NODE_DIR

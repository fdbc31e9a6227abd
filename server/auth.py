"""Bearer tokens: which datasets and roles each token grants.

A tokens file (JSON, or TOML by its .toml suffix) maps token -> {datasets, roles}:
    {"s3cret": {"datasets": ["acme"], "roles": ["read", "export"]},
     "adm1n":  {"datasets": ["*"], "roles": ["read", "export", "write", "admin"]}}
Roles: read (count, preview, explain, get / list), export (materialize, export),
write (ingest and changes), admin (create / delete / list datasets). Roles do not imply
one another. Tokens are kept only as SHA-256 digests in memory.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from .errors import PermissionDenied, Unauthenticated

ROLES = ("read", "export", "write", "admin")
ALL = "*"


@dataclass(frozen=True)
class Grant:
    """What one token may do."""
    datasets: frozenset
    roles: frozenset

    def covers(self, dataset: str) -> bool:
        return ALL in self.datasets or dataset in self.datasets


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """The token table of a server."""

    def __init__(self, grants: dict):
        """grants: token -> {"datasets": [...], "roles": [...]}; ValueError naming a bad entry."""
        self._grants = {}
        if not isinstance(grants, dict) or not grants:
            raise ValueError("tokens: expected a non-empty table of token -> {datasets, roles}")
        for i, (token, g) in enumerate(grants.items()):
            where = f"tokens entry {i + 1}"
            if not isinstance(token, str) or len(token) < 8:
                raise ValueError(f"{where}: a token must be a string of at least 8 characters")
            if not isinstance(g, dict) or set(g) - {"datasets", "roles"}:
                raise ValueError(f"{where}: expected {{datasets: [...], roles: [...]}}")
            datasets, roles = g.get("datasets", []), g.get("roles", [])
            if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
                raise ValueError(f"{where}.datasets: expected a list of names or \"*\"")
            if not isinstance(roles, list) or any(r not in ROLES for r in roles):
                raise ValueError(f"{where}.roles: expected a list among {', '.join(ROLES)}")
            self._grants[_digest(token)] = Grant(frozenset(datasets), frozenset(roles))

    @classmethod
    def load(cls, path: str | Path) -> "Tokens":
        """Read a JSON or TOML (by .toml suffix) tokens file."""
        path = Path(path)
        text = path.read_text()
        if path.suffix.lower() == ".toml":
            import tomllib
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: not valid TOML: {e}") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON: {e}") from None
        return cls(data)

    def grant(self, metadata: Iterable) -> Grant:
        """The Grant of the call's "authorization: Bearer T" metadata; Unauthenticated if none."""
        header = None
        for key, value in metadata or ():
            if key == "authorization":
                header = value
                break
        if header is None:
            raise Unauthenticated("authorization", "missing bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization", 'expected "Bearer <token>"')
        g = self._grants.get(_digest(token.strip()))
        if g is None:
            raise Unauthenticated("authorization", "unknown token")
        return g


def authorize(tokens: Optional[Tokens], metadata, role: str, dataset: Optional[str]) -> Optional[Grant]:
    """Check a call: Unauthenticated without a valid token, PermissionDenied when the token
    lacks the dataset or the role. With no token table every call is allowed (None)."""
    if tokens is None:
        return None
    g = tokens.grant(metadata)
    if dataset is not None and not g.covers(dataset):
        raise PermissionDenied("dataset", f"token not valid for dataset {dataset!r}")
    if role not in g.roles:
        raise PermissionDenied("authorization", f"token lacks the {role!r} role")
    return g

"""Settings of `segments serve`: the command line, then SEGMENTS_* environment variables,
then a TOML config file, then the defaults.

Every serve flag `--some-flag` is also `SEGMENTS_SOME_FLAG` and `some_flag` in the config
file's [serve] table; the data folder is `--data`, `SEGMENTS_DATA` or the file's top-level
`data`. The config file is `--config FILE` or `SEGMENTS_CONFIG`. Tokens come from a file
(`tokens`, a path) or, for containers that inject secrets as variables, from
SEGMENTS_TOKENS_JSON (the table itself); never from the command line.

    data = "/var/lib/segments/data"
    [serve]
    port = 50051
    host = "0.0.0.0"
    tokens = "/etc/segments/tokens.json"
    metrics_port = 9464
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

ENV_PREFIX = "SEGMENTS_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Option:
    """One serve setting: its name (flag without dashes, with underscores), type and default."""
    name: str
    kind: type
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SERVE_OPTIONS = (
    Option("port", int, 50051, "TCP port (0: any free port)"),
    Option("host", str, None, "address to bind (default: 127.0.0.1; [::] with tokens)"),
    Option("tokens", str, None, "tokens file (JSON or .toml): token -> {datasets, roles}"),
    Option("tls_cert", str, None, "PEM certificate chain (with --tls-key)"),
    Option("tls_key", str, None, "PEM private key (with --tls-cert)"),
    Option("allow_unauthenticated", bool, False,
           "serve without tokens on an address other than loopback (anyone who can connect may do anything)"),
    Option("create_data", bool, False, "create the data folder when it does not exist"),
    Option("export_dir", str, None, "folder for exports (default: DATA/_exports)"),
    Option("ingest_root", str, None, "folder Ingest calls read from: dataset D's files under INGEST_ROOT/D/ "
                                     "only (default: Ingest refused)"),
    Option("default_deadline", float, None, "longest a call may run, in seconds, when its caller sets no "
                                            "shorter deadline (default: none)"),
    Option("workers", int, None, "thread pool size (default: sized for the machine)"),
    Option("group_ttl_days", int, 180, "default expiry of customer groups"),
    Option("chunk_ids", int, 65_536, "customer ids per materialize chunk"),
    Option("grace", float, 10.0, "seconds calls in flight get on shutdown"),
    Option("processes", int, 1, "server processes sharing the port (SO_REUSEPORT; needs a fixed --port)"),
    Option("warm", str, "all", "warm up before reporting SERVING: all, synthetic (kernels only), none, "
                               "or comma-separated dataset names"),
    Option("access_log", str, "-", "JSON access log: - (stderr), stdout, a file path, or off"),
    Option("log_level", str, "info", "server log level: debug, info, warning, error"),
    Option("metrics_port", int, None, "serve Prometheus metrics over HTTP on this port (default: off)"),
    Option("metrics_host", str, "127.0.0.1", "address of the metrics endpoint"),
    Option("max_open_datasets", int, 2000, "datasets kept open at once; past it the least recently used idle "
                                           "ones close and reopen on their next call (0: no limit)"),
    Option("max_open_files", int, None, "descriptors the open datasets' parts may hold (default: half the "
                                        "process's descriptor limit; 0: no limit)"),
    Option("max_mapped_bytes", str, None, "bytes the open datasets' parts may map, e.g. 64G (default: no limit)"),
    Option("idle_close_seconds", float, 0.0, "close a dataset no call used for this long (0: only past the "
                                             "budget)"),
    Option("tenant_concurrency", int, None, "engine calls one dataset may run at once (default: half the "
                                            "cores, at least 1; 0: no per-dataset limit)"),
    Option("tenant_queue", int, None, "calls one dataset may have waiting beyond those; past it "
                                      "RESOURCE_EXHAUSTED with a retry hint (default: leaves a quarter of "
                                      "the threads to other datasets)"),
    Option("build_nice", int, 10, "how far below reads loads and compactions run (nice, 0..19)"),
    Option("tracing", str, "off", "OpenTelemetry tracing: off, on (the process's provider), console or otlp "
                                  "(needs the tracing extra)"),
    Option("cluster", str, None, "cluster mode: datasets split across a Ray cluster (ADDRESS, auto, or local "
                                 "for a Ray started here); needs the cluster extra"),
    Option("partitions", int, None, "cluster mode: partitions of every dataset, fixed at the data folder's "
                                    "first use (default 4)"),
    Option("replicas", int, None, "cluster mode: replicas of each partition (default 2 on several nodes, else 1)"),
    Option("partition_root", str, None, "cluster mode: where each node keeps its partitions (default DATA/partitions)"),
)
OPTIONS = {o.name: o for o in SERVE_OPTIONS}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names where it came from."""


def add_serve_options(p: argparse.ArgumentParser) -> None:
    """Every serve option as a flag whose default is None, so that an absent flag can be
    told apart and filled from the environment, the config file or the default."""
    for o in SERVE_OPTIONS:
        default = f" (default: {o.default})" if o.default not in (None, False) else ""
        help_ = f"{o.help}{default}; env {o.env}"
        if o.kind is bool:
            p.add_argument(o.flag, action="store_true", default=None, help=help_)
        else:
            p.add_argument(o.flag, type=o.kind, default=None, help=help_)


def _convert(o: Option, value: Any, where: str) -> Any:
    if o.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if o.kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if o.kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def load_file(path: Optional[str]) -> dict:
    """The config file as {"data": ..., "serve": {...}}; ConfigError naming an unknown key."""
    if not path:
        return {}
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: not valid TOML: {e}") from None
    for key in data:
        if key not in ("data", "serve"):
            raise ConfigError(f"config file {path}: unknown key {key!r} (expected data and a [serve] table)")
    serve = data.get("serve", {})
    if not isinstance(serve, dict):
        raise ConfigError(f"config file {path}: serve must be a table")
    for key in serve:
        if key not in OPTIONS:
            raise ConfigError(f"config file {path}: [serve] has an unknown key {key!r}")
    return data


def config_path(args, environ=None) -> Optional[str]:
    environ = os.environ if environ is None else environ
    return getattr(args, "config", None) or environ.get(ENV_PREFIX + "CONFIG") or None


def data_dir(args, environ=None, file: Optional[dict] = None) -> str:
    """--data, then SEGMENTS_DATA, then the config file's `data`, then ./data."""
    environ = os.environ if environ is None else environ
    if getattr(args, "data", None):
        return args.data
    if environ.get(ENV_PREFIX + "DATA"):
        return environ[ENV_PREFIX + "DATA"]
    file = load_file(config_path(args, environ)) if file is None else file
    return str(file.get("data") or "./data")


def resolve_serve(args, environ=None) -> argparse.Namespace:
    """Every serve setting from its first source: flag, environment, config file, default.
    Also `data`, `config` and `sources` (setting -> where it came from)."""
    environ = os.environ if environ is None else environ
    path = config_path(args, environ)
    file = load_file(path)
    table = file.get("serve", {})
    out = argparse.Namespace(config=path, sources={})
    for o in SERVE_OPTIONS:
        given = getattr(args, o.name, None)
        if given is not None:
            value, where = given, o.flag
        elif o.env in environ:
            value, where = _convert(o, environ[o.env], o.env), o.env
        elif o.name in table:
            value, where = _convert(o, table[o.name], f"{path} [serve].{o.name}"), f"{path} [serve].{o.name}"
        else:
            value, where = o.default, "default"
        setattr(out, o.name, value)
        out.sources[o.name] = where
    out.data = data_dir(args, environ, file)
    out.tokens_json = environ.get(ENV_PREFIX + "TOKENS_JSON") or None
    out.reuse_port = bool(getattr(args, "reuse_port", False))
    out.process_index = int(getattr(args, "process_index", 0) or 0)
    return out


def check_data_folder(path: str, create: bool) -> Path:
    """The data folder; ConfigError when it does not exist and may not be created, or is a file."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.exists():
        raise ConfigError(f"data folder {path} is not a folder")
    if not create:
        raise ConfigError(f"data folder {path} does not exist (check --data / SEGMENTS_DATA, "
                          "or pass --create-data to start an empty one)")
    p.mkdir(parents=True)
    return p

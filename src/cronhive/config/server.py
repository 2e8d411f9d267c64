"""A node's settings. Precedence: command-line flag > config file > default.

The embedded default needs nothing: an SQLite file, a spool folder and development
certificates under one data directory, an API on 127.0.0.1:7433.
"""

from __future__ import annotations

import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cronhive.config import defaults
from cronhive.config._limits import parse_limits
from cronhive.errors import InvalidInput
from cronhive.notify._config import Smtp, Targets, parse_smtp, parse_targets
from cronhive.sqljobs._targets import SqlTarget, parse_databases

DEFAULT_LISTEN = "127.0.0.1:7433"
DEFAULT_WEB = "127.0.0.1:7434"
ISOLATION = ("bwrap", "none")
BLOBS = ("local", "s3")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:=-]{0,62}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    data_dir: Path
    db: str | None = None  # None: sqlite file in data_dir
    listen: str = DEFAULT_LISTEN
    web: str | None = DEFAULT_WEB
    metrics: str | None = None  # HOST:PORT of /metrics, /healthz, /readyz; None: off
    name: str = ""
    tags: frozenset[str] = frozenset()
    capacity: int = defaults.CAPACITY
    lease_ttl: float = defaults.LEASE_TTL
    lookahead: float = defaults.LOOKAHEAD  # arm slots this early (engine.scheduler); 0: off
    grace: float = defaults.GRACE
    drain_grace: float = defaults.DRAIN_GRACE  # at SIGTERM, for runs to end before hand-over
    db_wait: float | None = None  # seconds to wait for the database at start; None: forever
    certs_dir: Path | None = None  # None: data_dir/certs, created on first start
    policy: Path | None = None
    output_cap: int = defaults.OUTPUT_CAP
    max_message_bytes: int = 4 * 1024 * 1024  # largest gRPC request message
    tls_handshake_timeout: float = 10.0
    max_connections: int = 512  # gRPC API connections (TLS handshakes included)
    max_calls_per_user: int = 64  # concurrent gRPC calls of one certificate CN
    isolation: str = "bwrap"  # or "none": runs as the node's own processes
    run_user: str = "nobody"  # whom runs without run_as run as, on a root node
    # [limits]: every run's limits here, and the ceilings of a job's own (runner.Limits
    # fields; over runner.DEFAULT_LIMITS). See docs/runner.md.
    limits: Mapping[str, int] = field(default_factory=dict)
    # Reactions: the targets jobs may name (`[notify.NAME]`) and how mail leaves (`[smtp]`).
    notify: Targets = field(default_factory=Targets)
    smtp: Smtp | None = None
    public_url: str | None = None  # the web UI's address in notifications' links
    # [databases.NAME]: where SQL jobs may run (docs/sql-jobs.md); no secrets held here.
    databases: Mapping[str, SqlTarget] = field(default_factory=dict)
    # Blob store (scripts, output archive): "local" (blobs_dir) or "s3" (s3_* below).
    blobs: str = "local"
    blobs_dir: Path | None = None  # None: data_dir/blobs
    s3_endpoint: str | None = None  # None: AWS itself; e.g. http://127.0.0.1:9000
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str | None = None
    # None: from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    script_max_bytes: int = defaults.SCRIPT_MAX_BYTES  # largest script body accepted
    # Retention (engine.retention): 0 turns a rule off.
    retain_days: float = 30.0  # runs queued longer ago (each job's newest run stays)
    retain_runs_per_job: int = 1000  # runs kept per job, newest first
    retain_event_days: float = 30.0

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.data_dir / 'cronhive.db'}"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file of ``db_url``; None for PostgreSQL."""
        url = self.db_url
        if "://" not in url:
            return Path(url) if url.strip() else None
        if url.startswith("sqlite:///") and ":memory:" not in url:
            return Path(url.removeprefix("sqlite:///"))
        return None

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def blob_dir(self) -> Path:
        return self.blobs_dir or self.data_dir / "blobs"

    @property
    def script_cache_dir(self) -> Path:
        return self.data_dir / "scripts"

    @property
    def node_name(self) -> str:
        return self.name or socket.gethostname().split(".")[0] or "node"


def parse_listen(value: str, *, field: str = "listen") -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:7433`) -> (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]*):(\d{1,5})", value.strip())
    if not m:
        raise InvalidInput(f"{field}: expected HOST:PORT, got {value!r}", field=field)
    host = m.group(1) or m.group(3) or "0.0.0.0"  # noqa: S104 - an explicit ":PORT" asks for all
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise InvalidInput(f"{field}: port {port} out of range 1-65535", field=field)
    return host, port


def parse_tags(value: str | list[str] | tuple[str, ...], *, field: str = "tags") -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    tags = {t.strip() for t in items if t.strip()}
    for tag in tags:
        if not _TAG.fullmatch(tag):
            raise InvalidInput(
                f"{field}: bad tag {tag!r} (letters, digits and _.:=- ; at most 63)", field=field
            )
    return frozenset(tags)


def _wait(value: Any) -> float | None:
    """`forever`, or a duration: seconds, or a number with s/m/h (`30s`, `5m`)."""
    text = str(value).strip().lower()
    if text in ("forever", "inf", "infinite"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", text)
    if isinstance(value, bool) or not m:
        raise InvalidInput(
            f"db_wait: expected a duration like 30s, 5m or forever, got {value!r}",
            field="db_wait",
        )
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def load_server_config(path: Path | None, **flags: Any) -> ServerConfig:
    """Builds the config from an optional TOML file (keys = flag names) and flags that
    were given (None = not given). Raises InvalidInput naming the bad key."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text())
        except OSError as exc:
            raise InvalidInput(f"config {path}: {exc.strerror}", field="config") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"config {path}: {exc}", field="config") from exc
        known = {f.name for f in fields(ServerConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"config {path}: unknown key {unknown[0]!r}", field=unknown[0])
    values.update({k: v for k, v in flags.items() if v is not None})
    if "data_dir" not in values:
        raise InvalidInput("data_dir is required", field="data_dir")
    return _validated(ServerConfig(data_dir=Path(values.pop("data_dir"))), values)


def _validated(config: ServerConfig, values: dict[str, Any]) -> ServerConfig:
    out: dict[str, Any] = {}
    # [smtp] first: a mail target needs it.
    if "smtp" in values:
        out["smtp"] = parse_smtp(values.pop("smtp"))
    if "notify" in values:
        out["notify"] = parse_targets(values.pop("notify"), out.get("smtp"))
    if "public_url" in values:
        url = values.pop("public_url")
        if not isinstance(url, str) or not re.match(r"https?://[^\s/]+", url):
            raise InvalidInput(
                f"public_url: expected an http(s) URL, got {url!r}", field="public_url"
            )
        out["public_url"] = url.rstrip("/")
    for key, value in values.items():
        if key in ("certs_dir", "policy", "blobs_dir"):
            out[key] = Path(value)
        elif key == "tags":
            out[key] = parse_tags(value)
        elif key in ("web", "metrics") and str(value).strip().lower() in ("off", "none", "false"):
            out[key] = None  # no web UI / no metrics listener on this node
        elif key in ("listen", "web", "metrics"):
            parse_listen(str(value), field=key)
            out[key] = str(value)
        elif key == "name":
            if not _NAME.fullmatch(str(value)):
                raise InvalidInput(f"name: bad node name {value!r}", field="name")
            out[key] = str(value)
        elif key == "blobs":
            if value not in BLOBS:
                raise InvalidInput(
                    f"blobs: expected one of {', '.join(BLOBS)}, got {value!r}", field=key
                )
            out[key] = value
        elif key.startswith("s3_"):
            if not isinstance(value, str):
                raise InvalidInput(f"{key}: expected a string", field=key)
            out[key] = value
        elif key in ("retain_days", "retain_event_days"):
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{key}: expected days >= 0 (0: keep forever)", field=key)
            out[key] = float(value)
        elif key in ("capacity", "output_cap", "script_max_bytes", "retain_runs_per_job"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{key}: expected a whole number >= 0", field=key)
            out[key] = value
        elif key == "isolation":
            if value not in ISOLATION:
                raise InvalidInput(
                    f"isolation: expected one of {', '.join(ISOLATION)}, got {value!r}",
                    field=key,
                )
            out[key] = value
        elif key == "run_user":
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise InvalidInput(f"run_user: bad user name {value!r}", field=key)
            out[key] = value
        elif key in ("max_message_bytes", "max_connections", "max_calls_per_user"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInput(f"{key}: expected a whole number >= 1", field=key)
            out[key] = value
        elif key in ("lease_ttl", "grace", "drain_grace", "tls_handshake_timeout"):
            if not isinstance(value, int | float) or not 0 < value <= 3600:
                raise InvalidInput(f"{key}: expected seconds in (0, 3600]", field=key)
            out[key] = float(value)
        elif key == "lookahead":
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                raise InvalidInput("lookahead: expected seconds in [0, 1]", field=key)
            out[key] = float(value)
        elif key == "db_wait":
            out[key] = _wait(value)
        elif key == "databases":
            out[key] = parse_databases(value)
        elif key == "limits":
            out[key] = parse_limits(value)
            if out[key].get("cpu_weight", 1) > 10_000:
                raise InvalidInput("limits.cpu_weight: expected 1-10000", field=key)
        else:
            out[key] = value
    config = replace(config, **out)
    if config.blobs == "s3" and not config.s3_bucket:
        raise InvalidInput("blobs = s3 needs s3_bucket", field="s3_bucket")
    return config

"""The composition root: everything one `cronhive server` process is, wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from cronhive.api.server import ApiService, TransportLimits
from cronhive.auth import CertPaths, load_policy
from cronhive.auth._check import check_node_certs
from cronhive.auth.quotas import run_caps
from cronhive.blobs import BlobStore, open_blobs
from cronhive.config import ServerConfig
from cronhive.config.server import parse_listen
from cronhive.engine.archiver import Archiver
from cronhive.engine.deliverer import DelivererService
from cronhive.engine.lease import StoreFactory
from cronhive.engine.node import NodeConfig, NodeProcess
from cronhive.engine.retention import Retention, RetentionPolicy
from cronhive.errors import StoreUnavailable
from cronhive.runner import DEFAULT_LIMITS, Limits, Sandbox
from cronhive.sqljobs import SqlJobs
from cronhive.store import SessionLimits, Store, open_store
from cronhive.web import WebService

if TYPE_CHECKING:
    from cronhive.metrics import Metrics

log = logging.getLogger("cronhive")


def session_limits(lease_ttl: float, name: str = "") -> SessionLimits:
    """Deadlines for the node's sessions, from its lease: a frozen node's locks are freed
    and a dead connection noticed well within one lease."""
    within = max(1.0, lease_ttl / 2)
    # Waiting for a lock is normal (a finish waits for a tick holding its job row); what
    # must not wait long is a lock held by a node that stopped answering, and the
    # idle-in-transaction timeout ends those sessions.
    patient = max(10.0, 2 * lease_ttl)
    return SessionLimits(
        connect=within,
        statement=patient,
        lock=patient,
        idle_in_transaction=within,
        tcp_user_timeout=within,
        application_name=f"cronhive {name}".strip()[:63],
    )


def lease_limits(lease_ttl: float, name: str = "") -> SessionLimits:
    """Deadlines for the lease keeper's own session: renewing waits for nothing."""
    within = max(1.0, lease_ttl / 2)
    return replace(session_limits(lease_ttl, f"{name} lease"), statement=within, lock=within)


async def _open_waiting(config: ServerConfig) -> Store:
    """Opens the store, waiting for the database as a service manager expects: with
    backoff, one log line per change, for `config.db_wait` seconds (None: forever)."""
    loop = asyncio.get_running_loop()
    limits = session_limits(config.lease_ttl, config.node_name)
    deadline = None if config.db_wait is None else loop.time() + config.db_wait
    delay, problem = 0.1, ""
    while True:
        try:
            store = await open_store(config.db_url, limits=limits)
        except StoreUnavailable as exc:
            if deadline is not None and loop.time() + delay > deadline:
                raise
            if str(exc) != problem:
                problem = str(exc)
                log.warning("%s; waiting for it", problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            continue
        if problem:
            log.info("database reachable again")
        return store


def private_files(config: ServerConfig) -> None:
    """Data dir 0700; the SQLite file and its -wal, -shm and .lock 0600.

    The database file is created (empty, 0600) before SQLite first opens it, because SQLite
    gives -wal and -shm the mode of the database file; existing files are tightened.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(config.data_dir, 0o700)
    db = config.sqlite_path
    if db is None or not db.parent.is_dir():
        return  # PostgreSQL, or a missing folder that open_store reports
    for path in (db, Path(f"{db}.lock")):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{db}{suffix}", 0o600)


def sandbox_for(
    config: ServerConfig, certs: CertPaths, hide: Sequence[Path] = ()
) -> Sandbox | None:
    """The isolation of this node's runs, said in the log; None for ``isolation = "none"``.

    Hidden from every run: the data dir (database, spool, dev certificates), the
    certificate folder and the dev CA, a SQLite file kept elsewhere with its -wal/-shm,
    and ``hide`` (the config file: it may hold a database password).
    """
    if config.isolation == "none":
        log.warning(
            'isolation = "none": runs are not isolated; each can do what this node process '
            "can (read its keys and database unless run as another user)"
        )
        return None
    paths = [config.data_dir, certs.dir, config.blob_dir, *hide]
    if config.certs_dir is None:
        paths.append(certs.ca_home)
    db = config.sqlite_path
    if db is not None:
        paths += [db, *(Path(f"{db}{s}") for s in ("-wal", "-shm", ".lock"))]
    sandbox = Sandbox.probe(hide=paths, run_user=config.run_user)
    if sandbox.unavailable is not None:
        log.error(
            "runs are isolated by default but %s: this node refuses every run until it can "
            'isolate them (or the operator sets isolation = "none")',
            sandbox.unavailable,
        )
    else:
        who = f"as {config.run_user} unless run_as says" if os.geteuid() == 0 else "as this user"
        log.info("runs isolated with bubblewrap (%s)", who)
    return sandbox


def retention_policy(config: ServerConfig) -> RetentionPolicy:
    return RetentionPolicy(
        run_days=config.retain_days,
        runs_per_job=config.retain_runs_per_job,
        event_days=config.retain_event_days,
    )


def blob_store(config: ServerConfig) -> BlobStore:
    """The node's blob store (scripts, output archive), said in the log."""
    s3 = None
    if config.blobs == "s3":
        assert config.s3_bucket is not None  # checked with the configuration
        from cronhive.blobs.s3 import S3Settings  # obstore only where S3 is used

        s3 = S3Settings(
            bucket=config.s3_bucket,
            endpoint=config.s3_endpoint,
            prefix=config.s3_prefix,
            region=config.s3_region,
            access_key_id=config.s3_access_key_id,
            secret_access_key=config.s3_secret_access_key,
        )
    blobs = open_blobs(config.blobs, local_dir=config.blob_dir, s3=s3)
    log.info("blobs (scripts, output archive) in %s", blobs.describe())
    if not blobs.shared and config.sqlite_path is None:
        log.warning(
            "blobs are in a local directory of this node but the database may be shared: "
            "other nodes cannot fetch scripts stored here, and while other nodes are up "
            "this node keeps output in the database instead of archiving it (set blobs = "
            "s3, see docs/blobs.md)"
        )
    return blobs


def supervisor_database(config: ServerConfig) -> dict[str, str]:
    """Where the node's supervisor records an end the node could not (engine/_supervisor.py)."""
    path = config.sqlite_path
    if path is not None:
        return {"sqlite": str(path.resolve())}
    return {"postgresql": config.db_url.replace("postgresql+psycopg://", "postgresql://", 1)}


def _metered(metrics: Metrics | None, factory: StoreFactory) -> StoreFactory:
    """The lease keeper's store factory, its stores instrumented too (renewals are
    counted where they happen: on the keeper's own connection and thread)."""
    return factory if metrics is None else metrics.instrumenting(factory)


def _shutdown_on(sig: signal.Signals, node: NodeProcess) -> None:
    """Says why the node stops (an operator reading the log after a SIGTERM must see it)."""
    log.info("%s received: shutting down (drain, hand over, leave)", sig.name)
    node.shutdown()


def _web_url(config: ServerConfig) -> str | None:
    """The web UI's address for links in notifications."""
    if config.public_url:
        return config.public_url
    return None if config.web is None else f"https://{config.web}"


async def serve(config: ServerConfig, hide: Sequence[Path] = ()) -> None:
    """Runs a node until SIGTERM/SIGINT; raises CronhiveError if it cannot start.
    ``hide``: more paths no run may see (the config file)."""
    private_files(config)
    # Checked in a child process: this one never loads cryptography (auth/_check.py).
    if config.certs_dir is None:
        await check_node_certs(data_dir=config.data_dir)
        certs = CertPaths.of_dev(config.data_dir)
        log.info("development certificates in %s (client: admin.crt/admin.key)", certs.dir)
    else:
        certs = CertPaths(dir=config.certs_dir)
        await check_node_certs(certs=config.certs_dir)
        if certs.legacy_ca_key.exists():
            log.warning(
                "%s is on this node: whoever reads it can become any user; a node needs "
                "only ca.crt, server.crt and server.key (keep the CA where certificates "
                "are issued)",
                certs.legacy_ca_key,
            )
    host, port = parse_listen(config.listen)
    policy = load_policy(config.policy)
    sql = SqlJobs(config.databases, policy, grace=config.grace)
    limits = TransportLimits(
        max_message_bytes=config.max_message_bytes,
        handshake_timeout=config.tls_handshake_timeout,
        max_connections=config.max_connections,
        max_streams_per_identity=config.max_calls_per_user,
    )
    services: list[ApiService | WebService | MetricsService] = [
        ApiService(
            host=host, port=port, certs=certs, policy=policy, limits=limits, targets=config.notify
        )
    ]
    if config.web is not None:  # None: no web UI on this node
        web_host, web_port = parse_listen(config.web, field="web")
        services.append(
            WebService(
                host=web_host,
                port=web_port,
                certs=certs,
                policy=policy,
                handshake_timeout=config.tls_handshake_timeout,
                targets=config.notify,
            )
        )
    metrics: Metrics | None = None
    if config.metrics is not None:  # None: no metrics listener (the default), no wrapping
        from cronhive.metrics import Metrics, MetricsService  # prometheus_client: on demand

        metrics = Metrics()
        m_host, m_port = parse_listen(config.metrics, field="metrics")
        services.append(MetricsService(host=m_host, port=m_port, metrics=metrics))
    store = await _open_waiting(config)
    blobs = blob_store(config)
    archiver = Archiver(store, blobs)
    if metrics is not None:
        metrics.instrument(store)
    try:
        sandbox = sandbox_for(config, certs, hide)  # now that the -wal and -shm exist
        node = NodeProcess(
            store,
            NodeConfig(
                name=config.node_name,
                spool_dir=config.spool_dir,
                tags=config.tags,
                capacity=config.capacity,
                lease_ttl=config.lease_ttl,
                lookahead=config.lookahead,
                database=supervisor_database(config),
                grace=config.grace,
                drain_grace=config.drain_grace,
                output_cap=config.output_cap,
                sandbox=sandbox,
                limits=DEFAULT_LIMITS.merged(Limits(**config.limits)),
                lease_store=_metered(
                    metrics,
                    partial(
                        open_store,
                        config.db_url,
                        limits=lease_limits(config.lease_ttl, config.node_name),
                    ),
                ),
                extra=(
                    *services,
                    archiver,
                    Retention(store, blobs, retention_policy(config)),
                    DelivererService(config.notify, base_url=_web_url(config)),
                ),
                sql=sql,
                blobs=blobs,
                script_max_bytes=config.script_max_bytes,
                script_cache_dir=config.script_cache_dir,
                after_run=archiver.submit,
                caps=run_caps(policy),
            ),
        )
        if metrics is not None:
            metrics.instrument_worker(node.worker)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _shutdown_on, sig, node)
        log.info(
            "node %s starting (pid %d, db %s)",
            config.node_name,
            os.getpid(),
            config.db_url.split("@")[-1],
        )
        await node.run()
    finally:
        await blobs.close()
        await store.close()

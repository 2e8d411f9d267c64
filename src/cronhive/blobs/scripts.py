"""Stored scripts: content-addressed bodies in the blob store, and a node's cache of them.

A body is stored once under `scripts/sha256/<digest>` (the digest is its SHA-256 in
lowercase hex), whoever uploads it and however often. A node about to run a script
fetches it by digest, checks the digest (a corrupted or swapped object never runs),
and keeps it in its cache folder, written by rename so a half-written file is never
executed. The run is `interpreter... <cached file> args...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shlex
import tempfile
from pathlib import Path

from cronhive.blobs.base import BlobExists, BlobNotFound, BlobStore
from cronhive.errors import CronhiveError, InvalidInput, NotFound
from cronhive.model import ScriptRef

PREFIX = "scripts/sha256"
DEFAULT_MAX_BYTES = 1024 * 1024
MAX_INTERPRETER_ARGS = 8
_DIGEST = re.compile(r"[0-9a-f]{64}")
_PROGRAM = re.compile(r"/?[A-Za-z0-9_.+/-]{1,255}")


def digest_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def check_digest(text: str, *, field: str = "digest") -> str:
    if not _DIGEST.fullmatch(text):
        raise InvalidInput(f"{field}: expected a SHA-256 in lowercase hex", field=field)
    return text


def script_key(digest: str) -> str:
    return f"{PREFIX}/{check_digest(digest)}"


def check_interpreter(argv: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The interpreter argv, checked: a program name (looked up on the run's PATH) or
    an absolute path, then at most a few arguments."""
    argv = tuple(argv)
    if not argv:
        raise InvalidInput("interpreter: must not be empty", field="interpreter")
    if len(argv) > MAX_INTERPRETER_ARGS:
        raise InvalidInput(
            f"interpreter: at most {MAX_INTERPRETER_ARGS} words", field="interpreter"
        )
    if not _PROGRAM.fullmatch(argv[0]) or ".." in argv[0].split("/"):
        raise InvalidInput(f"interpreter: bad program {argv[0][:60]!r}", field="interpreter")
    for arg in argv[1:]:
        if not arg or "\x00" in arg or len(arg) > 255:
            raise InvalidInput("interpreter: bad argument", field="interpreter")
    return argv


def interpreter_for(body: bytes, given: str | None = None) -> tuple[str, ...]:
    """The interpreter to run `body` with: `given` (a command line, e.g. "python3 -u"),
    else the body's shebang line (`#!/usr/bin/env ruby`, `#!/bin/sh -e`), taken by program
    name so that any node finds it on its PATH. Raises InvalidInput when neither says."""
    if given is not None and given.strip():
        try:
            return check_interpreter(shlex.split(given))
        except ValueError as exc:
            raise InvalidInput(f"interpreter: {exc}", field="interpreter") from None
    first = body.split(b"\n", 1)[0]
    if not first.startswith(b"#!"):
        raise InvalidInput(
            "the script has no #! line: say which interpreter runs it (--interpreter)",
            field="interpreter",
        )
    words = first[2:].decode("utf-8", "replace").split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if w != "-S"]
    if not words:
        raise InvalidInput("the script's #! line names no interpreter", field="interpreter")
    return check_interpreter([os.path.basename(words[0]), *words[1:]])


async def upload(blobs: BlobStore, body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Stores `body` (once: the same body again is not rewritten); returns its digest."""
    if len(body) > max_bytes:
        raise InvalidInput(
            f"script: {len(body)} bytes, more than the limit of {max_bytes}", field="body"
        )
    if not body:
        raise InvalidInput("script: empty", field="body")
    digest = digest_of(body)
    with contextlib.suppress(BlobExists):  # content-addressed: what is there is this body
        await blobs.put(script_key(digest), body, exclusive=True)
    return digest


async def fetch(blobs: BlobStore, digest: str) -> bytes:
    """The body of `digest`, verified. Raises NotFound, or CronhiveError on a mismatch."""
    try:
        body = await blobs.get(script_key(digest))
    except BlobNotFound:
        raise NotFound(f"script {digest} is not in the blob store") from None
    if digest_of(body) != digest:
        raise CronhiveError(f"script {digest}: the stored body does not match its digest")
    return body


class ScriptCache:
    """A node's verified copies of script bodies, one file per digest under `root`."""

    def __init__(self, blobs: BlobStore, root: Path) -> None:
        self.blobs = blobs
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}

    async def path(self, script: ScriptRef) -> Path:
        """The cached file of `script`, fetched and verified first if need be."""
        path = self.root / check_digest(script.digest)
        lock = self._locks.setdefault(script.digest, asyncio.Lock())
        async with lock:
            if not path.exists():
                body = await fetch(self.blobs, script.digest)
                await asyncio.to_thread(_write, path, body)
        return path


def _write(path: Path, body: bytes) -> None:
    # The folder is the node's alone (inside the data dir); a sandboxed run sees just its
    # own file, bound in read-only, and readable by the run's uid.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

"""A node's certificate check, run in a child process so that the node itself never loads
cryptography (~11 MB of an idle node's memory, for a check done once at start).

    await check_node_certs(data_dir=DIR)    ensure_dev_certs(DIR): create what is missing,
                                            check what exists (see auth.certs)
    await check_node_certs(certs=DIR)       DIR/ca.crt, server.crt and server.key readable,
                                            PEM, an EC key matching its certificate

Either raises the error the same check raises in-process (InvalidInput naming the file,
Conflict), rebuilt from one JSON line the child prints. The child runs this interpreter
isolated (``-I``) with the node's own ``sys.path``: the same cronhive, nothing from the
working directory.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from cronhive.errors import Conflict, CronhiveError, InvalidInput

__all__ = ["check_node_certs"]

_CHILD = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "import cronhive.auth._check as c; c.main()"
)
_ERROR_EXIT = 2


async def check_node_certs(*, data_dir: Path | None = None, certs: Path | None = None) -> None:
    """Checks (and for `data_dir`, completes) a node's certificates in a child process."""
    mode, path = ("dev", data_dir) if data_dir is not None else ("certs", certs)
    assert path is not None, "give data_dir or certs"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _CHILD,
        json.dumps(sys.path),
        mode,
        str(path.absolute()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode == 0:
        return
    if proc.returncode == _ERROR_EXIT:
        raise _error(json.loads(out))
    last = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    raise CronhiveError(f"checking the certificates in {path} failed: {last[0]}")


def _error(doc: dict[str, str | None]) -> CronhiveError:
    message = doc["message"] or ""
    if doc["error"] == "InvalidInput":
        return InvalidInput(message, field=doc["field"])
    return Conflict(message) if doc["error"] == "Conflict" else CronhiveError(message)


def _check(mode: str, path: Path) -> None:
    from cronhive.auth.certs import CertPaths, ensure_dev_certs, load_cert, load_pair

    if mode == "dev":
        ensure_dev_certs(path)  # checks every file it keeps
        return
    paths = CertPaths(dir=path)
    load_cert(paths.ca_cert)
    load_pair(paths.server_cert, paths.server_key)


def main() -> None:
    """The child: ``<sys.path> dev|certs PATH``."""
    mode, path = sys.argv[2], Path(sys.argv[3])
    try:
        _check(mode, path)
    except CronhiveError as exc:
        kind = (
            "InvalidInput"
            if isinstance(exc, InvalidInput)
            else "Conflict"
            if isinstance(exc, Conflict)
            else "other"
        )
        field = exc.field if isinstance(exc, InvalidInput) else None
        print(json.dumps({"error": kind, "message": str(exc), "field": field}))
        sys.exit(_ERROR_EXIT)

"""Stored scripts from the CLI: `add/edit --script PATH [--interpreter CMD]`, `apply`'s
`script = "path"`, and `show NAME --script`.

The body is uploaded once (ScriptService.UploadScript; the same body again is stored
once, by its SHA-256) and the job keeps the digest and the interpreter, taken from the
script's `#!` line unless given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.blobs.scripts import DEFAULT_MAX_BYTES, interpreter_for
from cronhive.errors import InvalidInput

__all__ = ["attach_script", "read_script"]


def read_script(path: Path, interpreter: str | None) -> tuple[bytes, tuple[str, ...]]:
    """The script's body and interpreter. Raises InvalidInput naming `script`."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"script: {path}: {exc.strerror}", field="script") from None
    if len(body) > DEFAULT_MAX_BYTES:
        raise InvalidInput(
            f"script: {path} has {len(body)} bytes, more than {DEFAULT_MAX_BYTES}",
            field="script",
        )
    return body, interpreter_for(body, interpreter)


async def attach_script(
    client: Client, job: pb.Job, opts: dict[str, Any], base: Path | None = None
) -> set[str]:
    """Uploads `opts["script"]` (a path, relative to `base`) and points `job` at it;
    `opts["interpreter"]` alone changes only the interpreter. Returns the Job field
    paths changed."""
    path, interpreter = opts.get("script"), opts.get("interpreter")
    if path is None:
        if interpreter is None:
            return set()
        if not job.HasField("script"):
            raise InvalidInput("interpreter: the job runs no script", field="interpreter")
        del job.script.interpreter[:]
        job.script.interpreter.extend(interpreter_for(b"", str(interpreter)))
        return {"script"}
    if not isinstance(path, str | Path):
        raise InvalidInput("script: expected a file path", field="script")
    if interpreter is not None and not isinstance(interpreter, str):
        raise InvalidInput("interpreter: expected a command line", field="interpreter")
    file = Path(path) if base is None else base / path
    body, argv = read_script(file, interpreter)
    ref = await client.scripts.UploadScript(
        pb.UploadScriptRequest(body=body, name=file.name, owner=job.owner)
    )
    job.script.digest = ref.digest
    del job.script.interpreter[:]
    job.script.interpreter.extend(argv)
    job.shell = False
    return {"script", "shell"}

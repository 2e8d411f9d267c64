"""Generates the gRPC code under src/cronhive/api/_generated from proto/.

`python scripts/gen_proto.py` writes it; `--check` fails if what is committed is stale.
Uses grpcio-tools' protoc with grpclib's plugin (grpclib serves TLS 1.3 only, see
docs/security.md) and mypy-protobuf for typed stubs.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
OUT = ROOT / "src" / "cronhive" / "api" / "_generated"


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    if not protos:
        return
    bindir = Path(sysconfig.get_path("scripts"))
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}",
        f"--python_out={out}", f"--grpclib_python_out={out}", f"--mypy_out={out}",
        f"--plugin=protoc-gen-grpclib_python={bindir / 'protoc-gen-grpclib_python'}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        *protos,
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    _qualify_imports(out, protos)
    for d in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()


def _qualify_imports(out: Path, protos: list[str]) -> None:
    """protoc names a module by its proto path (`cronhive.v1.cronhive_pb2`), which would
    shadow our own `cronhive` package: point references at where the code really lives.
    Quoted names (descriptor pool keys) are left alone."""
    pkg = ".".join(OUT.relative_to(ROOT / "src").parts)  # also when `out` is a temp dir
    mods = [p.removesuffix(".proto").replace("/", ".") + "_pb2" for p in protos]
    for f in [*out.rglob("*.py"), *out.rglob("*.pyi")]:
        text = new = f.read_text()
        for mod in mods:
            parent, _, name = mod.rpartition(".")
            new = re.sub(rf"(?<![\w.'\"]){re.escape(mod)}\b", f"{pkg}.{mod}", new)
            new = re.sub(
                rf"^from {re.escape(parent)} import {name}\b",
                f"from {pkg}.{parent} import {name}",
                new,
                flags=re.M,
            )
        if new != text:
            f.write_text(new)


def files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        have, want = files(OUT) if OUT.exists() else set(), files(fresh)
        stale = sorted(have ^ want) + sorted(
            f for f in have & want if not filecmp.cmp(OUT / f, fresh / f, shallow=False)
        )
        if stale:
            print("generated gRPC code is stale; run: python scripts/gen_proto.py", file=sys.stderr)
            for f in stale:
                print(f"  {f}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

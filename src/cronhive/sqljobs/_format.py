"""What a SQL run writes: the bytes of its stdout and stderr (docs/sql-jobs.md, "Output").

stdout, in this order:
- each NOTICE, WARNING (any message the server sends that is not an error) as
  ``SEVERITY:  message`` on one line, as it arrives;
- each statement's command tag, row count included (``INSERT 0 3``, ``SELECT 2``);
- if the last statement returned rows: one empty line, then those rows as CSV with a
  header line.

The CSV is PostgreSQL's own (``COPY ... WITH (FORMAT csv, HEADER)``): the values are the
server's text output byte for byte, separated by ``,``, each line ending in ``\\n``; a NULL
is nothing at all between its commas, and a value is quoted with ``"`` (a ``"`` inside
doubled) when it is empty, or holds ``,``, ``"``, ``\\r`` or ``\\n``, or is ``\\.`` in a
one-column result: so an
empty string (``""``) and a NULL () differ.

stderr, for an error: ``ERROR:  message`` then ``SQLSTATE: 42501`` and, when the server
sent them, ``DETAIL:``, ``HINT:``, ``POSITION:`` (1-based character offset in the text),
``CONTEXT:`` lines.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from psycopg.pq.abc import PGresult

__all__ = ["csv_lines", "error_text", "notice_line"]

_SPECIAL = (b",", b'"', b"\r", b"\n")


def csv_field(value: bytes | None, single: bool = False) -> bytes:
    """One value; `single`: the only column, where a lone ``\\.`` is quoted (it would end
    a COPY stream)."""
    if value is None:
        return b""
    if value == b"" or (single and value == b"\\.") or any(c in value for c in _SPECIAL):
        return b'"' + value.replace(b'"', b'""') + b'"'
    return value


def csv_lines(result: PGresult) -> Iterator[bytes]:
    """The header, then one line per row (each ending in \\n), from the raw text result."""
    columns = range(result.nfields)
    single = result.nfields == 1
    yield b",".join(csv_field(result.fname(c), single) for c in columns) + b"\n"
    for row in range(result.ntuples):
        yield b",".join(csv_field(result.get_value(row, c), single) for c in columns) + b"\n"


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\n  ")  # continuation lines indented


def notice_line(diag: psycopg.errors.Diagnostic) -> bytes:
    severity = diag.severity_nonlocalized or diag.severity or "NOTICE"
    return f"{severity}:  {_one_line(diag.message_primary or '')}\n".encode()


def error_text(exc: psycopg.Error) -> bytes:
    """The error as stderr shows it; without a SQLSTATE (a client-side error) only the
    message."""
    diag = exc.diag
    severity = diag.severity_nonlocalized or "ERROR"
    lines = [f"{severity}:  {_one_line(diag.message_primary or str(exc))}"]
    if diag.sqlstate:
        lines.append(f"SQLSTATE: {diag.sqlstate}")
    for label, value in (
        ("DETAIL", diag.message_detail),
        ("HINT", diag.message_hint),
        ("POSITION", diag.statement_position),
        ("CONTEXT", diag.context),
    ):
        if value:
            lines.append(f"{label}: {_one_line(value)}")
    return ("\n".join(lines) + "\n").encode()

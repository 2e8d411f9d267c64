"""Mail deliveries over SMTP (aiosmtplib): MAILTO for cronhive, subject naming the job
and state, the output's last lines in the body."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from cronhive.notify._config import Mail

# Errors another attempt cannot fix.
PERMANENT: tuple[type[Exception], ...] = (aiosmtplib.SMTPRecipientsRefused,)


def compose(target: Mail, payload: Mapping[str, Any]) -> EmailMessage:
    run = payload.get("run", {})
    job = payload.get("job", {}).get("name") or "ad-hoc run"
    event = payload.get("event", "")
    msg = EmailMessage()
    msg["From"] = target.smtp.sender
    msg["To"] = target.to
    msg["Subject"] = f"[cronhive] {payload.get('owner', '')}/{job}: {run.get('state')} ({event})"
    lines = [
        f"job:       {payload.get('owner', '')}/{job}",
        f"event:     {event}",
        f"run:       {run.get('id')} (attempt {run.get('attempt')})",
        f"state:     {run.get('state')}",
        f"exit code: {run.get('exit_code')}",
        f"reason:    {run.get('reason') or ''}",
        f"node:      {run.get('node') or run.get('node_id') or ''}",
        f"scheduled: {run.get('scheduled_for')}",
        f"started:   {run.get('started_at')}",
        f"finished:  {run.get('finished_at')}",
    ]
    missed = payload.get("missed")
    if missed:
        lines.append(f"missed:    {missed['count']} slots, {missed['first']} .. {missed['last']}")
    links = payload.get("links", {})
    if links.get("run"):
        lines.append(f"web:       {links['run']}")
    tail = payload.get("output_tail") or ""
    if tail:
        lines += ["", "--- last lines of output ---", tail]
    msg.set_content("\n".join(lines) + "\n")
    return msg


async def send(target: Mail, payload: Mapping[str, Any]) -> None:
    smtp = target.smtp
    await aiosmtplib.send(
        compose(target, payload),
        hostname=smtp.host,
        port=smtp.port,
        start_tls=smtp.starttls,
        use_tls=False,
        username=smtp.user,
        password=smtp.password,
        timeout=smtp.timeout,
    )

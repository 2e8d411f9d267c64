"""`import-crontab` maps MAILTO to a mail on failure, against a real node whose config
names a mail target and a real SMTP server (aiosmtpd): a failing imported entry mails
once; `MAILTO=""` mails no one; an address no target is named for is refused or skipped."""

from __future__ import annotations

import json
import socket
import time
import tomllib
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from clikit import Cli, running_node

CRONTAB = """MAILTO=ops@example.org
# name: loud-fail
0 3 * * * echo boom; exit 3
MAILTO=""
# name: quiet-fail
0 4 * * * exit 4
"""


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[int, Inbox]]:
    box = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


@pytest.fixture(scope="module")
def mcli(tmp_path_factory: pytest.TempPathFactory, inbox: tuple[int, Inbox]) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("mailto")
    config = home / "node.toml"
    config.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {inbox[0]}\nfrom = "cronhive@localhost"\n\n'
        '[notify.ops-mail]\nmail = "ops@example.org"\n'
    )
    with running_node(home / "data", extra=("--config", str(config))) as c:
        yield c


def _notify(cli: Cli, name: str) -> Any:
    return json.loads(cli.ok("show", "--json", name))["notify"]


def test_a_failing_entry_under_mailto_mails_once(mcli: Cli, inbox: tuple[int, Inbox]) -> None:
    box = inbox[1]
    done = mcli("import-crontab", "-", "--mailto", "ops@example.org=ops-mail", stdin=CRONTAB)
    assert done.returncode == 0, done
    assert _notify(mcli, "loud-fail") == {"failure": ["ops-mail"]}
    assert _notify(mcli, "quiet-fail") == {}
    assert mcli("trigger", "-f", "loud-fail").returncode == 3
    assert mcli("trigger", "-f", "quiet-fail").returncode == 4
    deadline = time.monotonic() + 30
    while not box.messages:
        assert time.monotonic() < deadline, "no mail arrived"
        time.sleep(0.1)
    (mail,) = box.messages
    assert mail["To"] == "ops@example.org"
    assert "loud-fail" in mail["Subject"] and "failed" in mail["Subject"]
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes) and b"boom" in body
    # Both failures are recorded; only the MAILTO'd one was a notification, delivered once.
    notes = json.loads(mcli.ok("notifications", "--json"))
    assert [(n["job_name"], n["state"]) for n in notes] == [("loud-fail", "delivered")]
    assert len(box.messages) == 1


def test_unnamed_addresses_are_refused_or_skipped_and_any_goes_to_one(
    mcli: Cli, tmp_path: Path
) -> None:
    text = "MAILTO=dev@example.org, ops@example.org\n*/5 * * * * echo hi\n"
    refused = mcli("import-crontab", "-", "--mailto", "ops@example.org=ops-mail", stdin=text)
    assert refused.returncode == 2
    assert "-:1: MAILTO=dev@example.org has no notification target" in refused.stderr
    assert 'mail = "dev@example.org"' in refused.stderr
    out = tmp_path / "jobs.toml"
    skipped = mcli("import-crontab", "-", "-o", str(out), "--skip-unsupported",
                   "--mailto", "ops@example.org=ops-mail", stdin=text)  # fmt: skip
    assert skipped.returncode == 0 and "dev@example.org" in skipped.stderr
    assert tomllib.loads(out.read_text())["jobs"]["echo-hi"]["notify"] == {"failure": ["ops-mail"]}
    anyone = mcli("import-crontab", "-", "-o", str(out), "--mailto", "ops-mail", stdin=text)
    assert anyone.returncode == 0, anyone
    assert tomllib.loads(out.read_text())["jobs"]["echo-hi"]["notify"] == {"failure": ["ops-mail"]}
    bad = mcli("import-crontab", "-", "--mailto", "ops@example.org=", stdin=text)
    assert bad.returncode == 2 and "--mailto: expected ADDRESS=TARGET" in bad.stderr

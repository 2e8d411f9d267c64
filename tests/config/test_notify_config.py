"""Notification targets in the node configuration: [notify.NAME] and [smtp]."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronhive.config import ServerConfig, load_server_config
from cronhive.errors import InvalidInput
from cronhive.notify import Chain, Mail, Webhook


def _load(tmp_path: Path, text: str) -> ServerConfig:
    f = tmp_path / "node.toml"
    f.write_text(f'data_dir = "{tmp_path}"\n{text}')
    return load_server_config(f)


def test_webhook_mail_and_chain_targets_are_read_secrets_kept_out_of_repr(
    tmp_path: Path,
) -> None:
    (tmp_path / "hook.secret").write_text("s3cr3t-from-a-file-123\n")
    (tmp_path / "smtp.pass").write_text("mail-password\n")
    c = _load(
        tmp_path,
        f"""
public_url = "https://cron.example.com/"
[smtp]
host = "mail.example.com"
port = 587
starttls = true
user = "cronhive"
password_file = "{tmp_path / "smtp.pass"}"
from = "cronhive@example.com"

[notify.ops]
webhook = "https://hooks.example.com/cronhive"
secret_file = "{tmp_path / "hook.secret"}"

[notify.oncall]
mail = "oncall@example.com"

[notify.reindex]
job = "group:search/reindex"
""",
    )
    targets = c.notify
    assert targets.names() == ["oncall", "ops", "reindex"]
    ops, oncall, reindex = (targets.get(n) for n in ("ops", "oncall", "reindex"))
    assert isinstance(ops, Webhook) and ops.secret == b"s3cr3t-from-a-file-123"
    assert isinstance(oncall, Mail) and oncall.to == "oncall@example.com"
    assert (oncall.smtp.port, oncall.smtp.starttls, oncall.smtp.password) == (
        587,
        True,
        "mail-password",
    )
    assert reindex == Chain(name="reindex", owner="group:search", job="reindex")
    assert c.public_url == "https://cron.example.com"
    shown = repr(c)
    assert "s3cr3t" not in shown and "mail-password" not in shown


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[notify.x]\nwebhook = "ftp://h/"\nsecret = "0123456789abcdef"\n', "notify.x.webhook"),
        ('[notify.x]\nwebhook = "https://h/"\n', "notify.x"),
        ('[notify.x]\nwebhook = "https://h/"\nsecret = "short"\n', "notify.x"),
        ('[notify.x]\nmail = "a@b.c"\n', "notify.x"),
        ('[notify.x]\nmail = "not-an-address"\n', "notify.x.mail"),
        ('[notify.x]\njob = "reindex"\n', "notify.x.job"),
        ('[notify.x]\nmail = "a@b.c"\njob = "user:a/b"\n', "notify.x"),
        (
            '[notify.x]\nwebhook = "https://h/"\nsecret_file = "/nonexistent"\n',
            "notify.x.secret_file",
        ),
        (
            '[notify.x]\nwebhook = "https://h/"\nsecret = "0123456789abcdef"\nurl = 1\n',
            "notify.x.url",
        ),
        ('[notify."bad name"]\njob = "user:a/b"\n', "notify.bad name"),
        ("[smtp]\nport = 25\n", "smtp.host"),
        ('[smtp]\nhost = "h"\npassword = "inline"\n', "smtp.password"),
        ('public_url = "nowhere"\n', "public_url"),
    ],
)
def test_bad_targets_are_refused_naming_the_key(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _load(tmp_path, text)
    assert err.value.field == field, str(err.value)

"""Node settings: precedence, defaults, and bad values refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronhive.config import load_server_config
from cronhive.config.server import parse_listen
from cronhive.errors import InvalidInput


def test_defaults_are_the_embedded_node(tmp_path: Path) -> None:
    c = load_server_config(None, data_dir=tmp_path)
    assert c.db_url == f"sqlite:///{tmp_path / 'cronhive.db'}"
    assert (c.listen, c.web, c.capacity, c.lease_ttl) == (
        "127.0.0.1:7433",
        "127.0.0.1:7434",
        16,
        5.0,
    )


def test_flags_beat_the_file_and_the_file_beats_defaults(tmp_path: Path) -> None:
    f = tmp_path / "node.toml"
    f.write_text(f'data_dir = "{tmp_path}"\ncapacity = 4\ntags = ["a", "b"]\nweb = "off"\n')
    c = load_server_config(f, capacity=8, name=None)
    assert (c.capacity, c.tags, c.web) == (8, frozenset({"a", "b"}), None)


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        ({"listen": "nowhere"}, "listen"),
        ({"listen": "127.0.0.1:70000"}, "listen"),
        ({"tags": "ok,bad tag"}, "tags"),
        ({"capacity": -1}, "capacity"),
        ({"name": "x/y"}, "name"),
        ({"lease_ttl": 0}, "lease_ttl"),
        ({"isolation": "chroot"}, "isolation"),
        ({"run_user": "../root"}, "run_user"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
        ({"max_connections": True}, "max_connections"),
        ({"tls_handshake_timeout": -1}, "tls_handshake_timeout"),
        ({"lookahead": 1.5}, "lookahead"),
        ({"lookahead": -0.1}, "lookahead"),
        ({"lookahead": True}, "lookahead"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, flags: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        load_server_config(None, data_dir=tmp_path, **flags)
    assert err.value.field == field and field in str(err.value)


def test_unknown_or_broken_file_keys_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "node.toml"
    f.write_text(f'data_dir = "{tmp_path}"\ncapacty = 4\n')
    with pytest.raises(InvalidInput, match="unknown key 'capacty'"):
        load_server_config(f)
    f.write_text("data_dir = ")
    with pytest.raises(InvalidInput, match="config"):
        load_server_config(f)


def test_listen_forms() -> None:
    assert parse_listen("[::1]:7433") == ("::1", 7433)
    assert parse_listen(":7433") == ("0.0.0.0", 7433)


def test_isolation_and_transport_defaults(tmp_path: Path) -> None:
    c = load_server_config(None, data_dir=tmp_path)
    assert (c.isolation, c.run_user) == ("bwrap", "nobody")
    assert (c.max_message_bytes, c.max_connections, c.max_calls_per_user) == (4 << 20, 512, 64)
    f = tmp_path / "node.toml"
    f.write_text(f'data_dir = "{tmp_path}"\nisolation = "none"\nmax_message_bytes = 1024\n')
    c = load_server_config(f)
    assert (c.isolation, c.max_message_bytes) == ("none", 1024)


def test_slots_are_armed_a_second_ahead_unless_told(tmp_path: Path) -> None:
    assert load_server_config(None, data_dir=tmp_path).lookahead == 1.0
    f = tmp_path / "node.toml"
    f.write_text(f'data_dir = "{tmp_path}"\nlookahead = 0\n')
    assert load_server_config(f).lookahead == 0.0

"""Configuration of a node: flags, an optional TOML file, and the embedded defaults."""

from __future__ import annotations

from cronhive.config.server import ServerConfig, load_server_config, parse_listen

__all__ = ["ServerConfig", "load_server_config", "parse_listen"]

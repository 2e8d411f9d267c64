"""A real certificate directory, made with the code under test."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronhive.auth.certs import CertPaths, init_certs


@pytest.fixture
def pki(tmp_path: Path) -> CertPaths:
    return init_certs(tmp_path / "certs", days=30)

"""One default node shared by the security tests of a module, in a folder outside /tmp;
its policy is the default one plus run_as grants (admin may run jobs as `daemon` and as
`root`), to attack from each identity.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from securitykit import GRANT_POLICY, Node, host_dir, running_node


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with host_dir() as home:
        policy = home / "policy.toml"
        policy.write_text(GRANT_POLICY)
        with running_node(home / "data", ["--policy", str(policy)]) as n:
            yield n

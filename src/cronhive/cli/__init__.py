"""The `cronhive` command: the one sync edge of an async core.

Exit codes: 0 success, 1 failure (a run failed, the server refused), 2 usage or invalid
input, 3 not found. Each verb lives in its own module and registers itself on `cli`.
"""

from __future__ import annotations

from cronhive.cli._app import cli, main

# Importing a verb module registers its commands on `cli`.
from cronhive.cli import _cron  # noqa: F401  # isort: skip
from cronhive.cli import _certs  # noqa: F401  # isort: skip

from cronhive.cli import _server  # noqa: F401  # isort: skip
from cronhive.cli import _runs  # noqa: F401  # isort: skip
from cronhive.cli import _jobs  # noqa: F401  # isort: skip
from cronhive.cli import _nodes  # noqa: F401  # isort: skip
from cronhive.cli import _apply  # noqa: F401  # isort: skip
from cronhive.cli import _crontab  # noqa: F401  # isort: skip
from cronhive.cli import _token  # noqa: F401  # isort: skip
from cronhive.cli import _runsview  # noqa: F401  # isort: skip
from cronhive.cli import _notifications  # noqa: F401  # isort: skip

__all__ = ["cli", "main"]

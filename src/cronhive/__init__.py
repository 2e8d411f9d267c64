"""cronhive: a distributed cron.

Schedules fire exactly once across any number of nodes sharing one database; runs go to
whichever node has room; every run's status, exit code and output are kept and streamable.
"""

from __future__ import annotations

__version__ = "0.1.0"

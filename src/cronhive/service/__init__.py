"""service: the application layer, every user-facing operation once.

    Service(store=, clock=, hub=, policy=, targets=, sql=, blobs=)   one per node

Each operation takes the caller's `Identity`, authorizes it (cronhive.auth), changes the
store and records its event in one transaction (`Store` writes take `event=`), and
answers model objects. The front ends (api: gRPC, web: HTTPS + JSON) are adapters that
translate requests, answers and errors and call it; they import neither the engine nor
the store. What the caller may not see answers `NotFound`, exactly like a missing id.

    jobs           create_job, update_job (Draft), get_job, list_jobs, delete_job,
                   set_enabled (pause, resume), trigger, warning
    runs           start_run, stop_run, run_status, list_runs (RunFilter), output,
                   view / views (RunView: live sizes, node name, why it waits)
    cluster        list_nodes, events
    tokens         create_token, list_tokens, revoke_token; the web's sign-in
    scripts        upload_script, get_script, job_script
    notifications  list_notifications, retry_notification, (set_)notify_defaults
    limits         what a run's command and env may be (also api.validate's)
"""

from __future__ import annotations

from dataclasses import dataclass

from cronhive.service._base import POLL_SECONDS
from cronhive.service._listing import RunFilter
from cronhive.service.cluster import ClusterOps
from cronhive.service.jobs import Draft, JobOps
from cronhive.service.notifications import NotificationOps
from cronhive.service.runs import RunOps, RunView
from cronhive.service.scripts import ScriptOps
from cronhive.service.tokens import TokenOps

__all__ = ["POLL_SECONDS", "Draft", "RunFilter", "RunView", "Service"]


@dataclass(kw_only=True, eq=False)
class Service(ScriptOps, JobOps, RunOps, ClusterOps, TokenOps, NotificationOps):
    """Every operation of one node (see the module docstring)."""

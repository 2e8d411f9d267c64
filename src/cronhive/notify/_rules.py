"""A job's notify triggers: parsed from the CLI and files, checked against the node's
targets, and chains checked for cycles before anything is stored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cronhive.errors import InvalidInput, NotFound
from cronhive.model import JobSpec, NotifyOn
from cronhive.notify._config import Chain, Targets

if TYPE_CHECKING:  # the CLI imports this: it must not load the store and SQLAlchemy
    from cronhive.store.base import Store, Visibility

EVENTS = tuple(str(e) for e in NotifyOn)
MAX_CHAIN_LOOKUPS = 200  # a chain graph bigger than this is refused, not walked forever


def _bad(why: str) -> InvalidInput:
    return InvalidInput(f"notify: {why}", field="notify")


def normalize(notify: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """{event: targets} with events checked and targets deduplicated, sorted; a target
    list may be given as one string (`"ops"` or `"ops,chat"`)."""
    out: dict[str, tuple[str, ...]] = {}
    for event, targets in notify.items():
        key = str(event).removeprefix("on_")
        if key not in EVENTS:
            raise _bad(f"unknown event {event!r} (expected one of {', '.join(EVENTS)})")
        items = targets.split(",") if isinstance(targets, str) else list(targets)
        names = sorted({str(t).strip() for t in items if str(t).strip()})
        if names:
            out[key] = tuple(sorted({*out.get(key, ()), *names}))
    return out


def parse_notify_flags(flags: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """`--notify failure=ops --notify recovery=ops,chat` -> {event: targets}."""
    merged: dict[str, list[str]] = {}
    for flag in flags:
        event, sep, targets = flag.partition("=")
        if not sep or not targets.strip():
            raise _bad(f"expected EVENT=TARGET[,TARGET...], got {flag!r}")
        merged.setdefault(event.strip(), []).extend(targets.split(","))
    return normalize(merged)


def _chained(notify: Mapping[str, tuple[str, ...]], targets: Targets) -> list[Chain]:
    found = [targets.get(n) for names in notify.values() for n in names]
    return sorted(
        {t for t in found if isinstance(t, Chain)}, key=lambda c: (c.owner, c.job, c.name)
    )


async def check_notify(spec: JobSpec, targets: Targets, store: Store, visible: Visibility) -> None:
    """Refuses a target the node configuration does not name, a chained job the caller
    may not see (or that does not exist), and a chain leading back to `spec`'s job."""
    for event, names in spec.notify.items():
        for name in names:
            if name not in targets:
                known = ", ".join(targets.names()) or "none configured"
                raise _bad(f"unknown target {name!r} for {event} (targets: {known})")
    me = (spec.owner, spec.name)
    for chain in _chained(spec.notify, targets):
        if visible is not None and chain.owner not in visible:
            raise _bad(f"target {chain.name!r} chains a job you may not see")
        try:
            await store.find_job(chain.job, owner=chain.owner, visible_to=None)
        except NotFound:
            if (chain.owner, chain.job) != me:
                raise _bad(
                    f"target {chain.name!r} chains {chain.owner}/{chain.job}, no such job"
                ) from None
    # Depth-first from the job as it will be: any path back to it is a cycle.
    lookups = 0
    stack: list[tuple[tuple[str, str], list[str]]] = [
        ((c.owner, c.job), [f"{spec.owner}/{spec.name}"]) for c in _chained(spec.notify, targets)
    ]
    seen: set[tuple[str, str]] = set()
    while stack:
        (owner, name), path = stack.pop()
        here = [*path, f"{owner}/{name}"]
        if (owner, name) == me:
            raise _bad("chain cycle " + " -> ".join(here) + " (a chain must end)")
        if (owner, name) in seen:
            continue
        seen.add((owner, name))
        lookups += 1
        if lookups > MAX_CHAIN_LOOKUPS:
            raise _bad(f"chain graph larger than {MAX_CHAIN_LOOKUPS} jobs")
        try:
            job = await store.find_job(name, owner=owner, visible_to=None)
        except NotFound:
            continue
        for c in _chained(job.spec.notify, targets):
            stack.append(((c.owner, c.job), here))


def check_defaults(notify: Mapping[str, tuple[str, ...]], targets: Targets) -> None:
    """An owner's defaults name known targets, and no chain: a default applies to every
    job of the owner, the chained one too, which would loop."""
    for event, names in notify.items():
        for name in names:
            target = targets.get(name)
            if target is None:
                known = ", ".join(targets.names()) or "none configured"
                raise _bad(f"unknown target {name!r} for {event} (targets: {known})")
            if isinstance(target, Chain):
                raise _bad(f"target {name!r} chains a job: a default cannot (it would loop)")

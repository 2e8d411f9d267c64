"""Small presentation helpers for the templates: ages, durations and the runs chart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from cronhive.model import Execution, RunState

__all__ = ["age", "duration", "duration_of", "runs_chart"]


def duration(seconds: float | None) -> str:
    """`1.2s`, `3m 05s`, `2h 03m`; an em dash for none."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def duration_of(ex: Execution, now: datetime) -> float | None:
    """Seconds a run took (or has taken so far, while it runs)."""
    if ex.started_at is None:
        return None
    end = ex.finished_at or (now if ex.state is RunState.RUNNING else None)
    return None if end is None else max(0.0, (end - ex.started_at).total_seconds())


def age(at: datetime | None, now: datetime) -> str:
    """How long ago (`5s ago`) or from now (`in 3m 00s`)."""
    if at is None:
        return "—"
    delta = (now - at).total_seconds()
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


def runs_chart(runs: Sequence[Execution], now: datetime, *, width: int = 600) -> str:
    """An inline SVG bar chart of `runs` (oldest left): height = duration, colour = state
    (CSS classes, so the page's stylesheet decides the colours)."""
    height, gap = 80, 2
    shown = [r for r in reversed(runs) if r.state is not RunState.QUEUED][-60:]
    if not shown:
        return ""
    longest = max((duration_of(r, now) or 0.0) for r in shown) or 1.0
    bar = min(24, max(3, (width - gap * len(shown)) // len(shown)))
    parts = [
        f'<svg class="chart" role="img" aria-label="durations of the last {len(shown)} runs" '
        f'width="{width}" height="{height + 2}" viewBox="0 0 {width} {height + 2}">'
    ]
    for i, run in enumerate(shown):
        took = duration_of(run, now) or 0.0
        h = max(2, round(height * took / longest))
        x, y = i * (bar + gap), height - h
        title = escape(f"{run.queued_at:%Y-%m-%d %H:%M:%S} {run.state}: {duration(took)}")
        parts.append(
            f'<rect class="bar {escape(str(run.state))}" x="{x}" y="{y}" width="{bar}" '
            f'height="{h}"><title>{title}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)

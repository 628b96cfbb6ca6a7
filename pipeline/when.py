"""Parse WHEN options: ISO-8601 dates/times or relative durations ('24h', '7d')."""

from __future__ import annotations

import datetime as dt

from .config import parse_duration
from .timestamps import iso, parse_iso


def parse_when(value: str, now: dt.datetime | None = None) -> str:
    """Return an ISO timestamp; raise ValueError with a helpful message."""
    now = now or dt.datetime.now(dt.timezone.utc)
    seconds = parse_duration(value) if not value.strip().isdigit() else None
    if seconds is not None:
        return iso(now - dt.timedelta(seconds=seconds))
    try:
        when = parse_iso(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither a relative time like 24h / 7d nor an ISO date like 2026-11-01") from None
    return iso(when)

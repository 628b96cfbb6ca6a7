"""Source health for `borderwatch status` and the container health check."""

from __future__ import annotations

import datetime as dt

from . import store
from .config import FeedsConfig

LEASE_TTL = 120.0


def source_status(db, feeds: FeedsConfig | None) -> list[dict]:
    states = store.source_states(db)
    ids = [s.id for s in feeds.sources] if feeds else sorted(states)
    rows = []
    for sid in ids:
        st = states.get(sid, {})
        src = feeds.get(sid) if feeds else None
        rows.append({
            "id": sid, "name": (src.name if src else st.get("name")) or sid, "url": src.url if src else st.get("url"),
            "enabled": bool(src.enabled) if src else bool(st.get("enabled", 1)),
            "last_poll": st.get("last_poll"), "last_success": st.get("last_success"),
            "consecutive_failures": st.get("consecutive_failures") or 0,
            "last_error": st.get("last_error") if st.get("consecutive_failures") else None,
            "items_seen": st.get("items_seen") or 0, "next_poll": st.get("next_poll"),
        })
    return rows


def health_problems(db, rows: list[dict], now: dt.datetime | None = None) -> list[str]:
    now = now or dt.datetime.now(dt.timezone.utc)
    problems = []
    holder = store.lease_holder(db)
    if holder is None or store.parse_iso(holder[1]) + dt.timedelta(seconds=LEASE_TTL) < now:
        problems.append("the scheduler is not running (no fresh lease in the database)")
    enabled = [r for r in rows if r["enabled"]]
    failing = [r for r in enabled if r["consecutive_failures"]]
    if enabled and len(failing) * 2 > len(enabled):
        problems.append(f"{len(failing)} of {len(enabled)} sources are failing")
    return problems

"""Source health: `borderwatch status`, the container health check, and health alerts.

A source is unhealthy when it has failed ``failing_after`` polls in a row, when its page
selector matched nothing on a page that loaded, or when it has published nothing new for
longer than ``silent_after`` (by default several times its own usual gap between items,
learned from the articles it published, with a floor). Health alerts fire on transitions
only: one alert when a source becomes unhealthy, one "recovered" when it is healthy again,
never one per poll. The state lives in the database (``source_health``), and the alerts go
into an outbox (``health_alerts``) delivered like digests (email or Apprise, retried with
back-off).
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from . import lease, store
from .config import AlertPolicy, FeedsConfig, Source
from .errors import ConfigError
from .models import Delivery, SourceState

SILENT_FACTOR = 4  # silent after this many usual gaps without a new item
SILENT_FLOOR = 2 * 86400.0  # never call a source silent sooner than this
SILENT_DEFAULT = 7 * 86400.0  # when the source has too little history to learn from
MIN_HISTORY = 5  # published items needed to learn a source's gap

PROBLEM_WORDS = {"failing": "is failing", "selector": "page selector matched nothing", "silent": "has gone silent"}


def _utc(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.timezone.utc)


def learned_silence(published: list[str]) -> float | None:
    """SILENT_FACTOR x the median gap between a source's latest items (floored), or None if too few."""
    times = sorted((t for t in (store.parse_iso(p) for p in published) if t), reverse=True)
    if len(times) < MIN_HISTORY:
        return None
    gaps = [(a - b).total_seconds() for a, b in zip(times, times[1:])]
    return max(SILENT_FLOOR, SILENT_FACTOR * statistics.median(gaps))


def silent_threshold(source: Source | None, policy: AlertPolicy, published: list[str]) -> tuple[float, str]:
    """(seconds, how it was chosen) for a source."""
    if source is not None and source.silent_after:
        return source.silent_after, "set for this source"
    if policy.silent_after:
        return policy.silent_after, "alerts.silent_after"
    learned = learned_silence(published)
    if learned is not None:
        return learned, f"{SILENT_FACTOR}x its usual gap between items"
    return SILENT_DEFAULT, "default (too little history to learn from)"


def _problem(st: dict, src: Source | None, policy: AlertPolicy, activity: dict, health: dict | None,
             now: dt.datetime) -> tuple[str | None, str | None, str | None]:
    """(problem, detail, since) for one source's current state."""
    failures = int(st.get("consecutive_failures") or 0)
    failing_after = (src.failing_after if src and src.failing_after else None) or policy.failing_after
    error = st.get("last_error") or ""
    if failures and error.startswith("selector matched nothing"):
        # the page loaded but its layout no longer matches: not a network glitch, so no waiting
        return "selector", error, st.get("last_success")
    if failures >= failing_after:
        return "failing", f"{failures} failed polls in a row; last error: {error}", st.get("last_success")
    page = (src.type if src else st.get("type")) == "page"
    if page and failures == 0 and st.get("last_success") and st.get("last_entries") == 0:
        selector = src.link_selector if src else None
        return "selector", f"the link selector {selector!r} matched nothing on the page (has its layout changed?)", None
    if not st.get("last_success"):
        return None, None, None
    reference = activity.get("last_new") or (health or {}).get("watching_since")
    ref_time = store.parse_iso(reference)
    if ref_time is None:
        return None, None, None
    threshold, why = silent_threshold(src, policy, activity.get("published", []))
    if (now - ref_time).total_seconds() > threshold:
        return "silent", f"no new item since {reference} (silent after {_human(threshold)}: {why})", reference
    return None, None, None


def _human(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0 or seconds >= 10 * 86400:
        return f"{seconds / 86400:.0f}d"
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / 3600:.0f}h"


def source_status(db, feeds: FeedsConfig | None, now: dt.datetime | None = None, ids: list[str] | None = None) -> list[dict]:
    """Every source (or ``ids``) with its poll state and current health problem, if any."""
    now = _utc(now)
    states = store.source_states(db, ids)
    if ids is None:
        ids = [s.id for s in feeds.sources] if feeds else sorted(states)
    policy = feeds.alerts if feeds else AlertPolicy()
    activity = store.source_activity(db, ids)
    healths = store.health_states(db)
    backlog = store.backlog_counts(db)
    rows = []
    for sid in ids:
        st = states.get(sid, {})
        src = feeds.get(sid) if feeds else None
        enabled = bool(src.enabled) if src else bool(st.get("enabled", 1))
        problem, detail, since = _problem(st, src, policy, activity.get(sid, {}), healths.get(sid), now) if enabled else (None, None, None)
        rows.append({
            "id": sid, "name": (src.name if src else st.get("name")) or sid, "url": src.url if src else st.get("url"),
            "enabled": enabled,
            "last_poll": st.get("last_poll"), "last_success": st.get("last_success"),
            "consecutive_failures": st.get("consecutive_failures") or 0,
            "last_error": st.get("last_error") if st.get("consecutive_failures") else None,
            "items_seen": st.get("items_seen") or 0, "next_poll": st.get("next_poll"),
            "problem": problem, "detail": detail,
            "silent_since": since if problem == "silent" else None,
            "last_new_item": activity.get(sid, {}).get("last_new"),
            # items deferred by a per-poll cap or waiting to retry their article page; and those given up
            "backlog": backlog.get(sid, (0, 0))[0], "gave_up": backlog.get(sid, (0, 0))[1],
        })
    return rows


def evaluate_health(db, feeds: FeedsConfig, now: dt.datetime | None = None, ids: list[str] | None = None) -> list[dict]:
    """Compare each source's health with the stored state; on a change, record it and queue one
    alert per operator target. Returns the events ({source, event, detail})."""
    now = _utc(now)
    enabled = {s.id for s in feeds.enabled()}
    rows = [r for r in source_status(db, feeds, now, [i for i in (ids or [s.id for s in feeds.sources]) if i in enabled])]
    healths = store.health_states(db)
    changes, alerts, events = [], [], []
    stamp = store.iso(now)
    for r in rows:
        prev = healths.get(r["id"])
        before = prev["problem"] if prev else None
        if prev is not None and before == r["problem"]:
            continue
        changes.append({"source": r["id"], "problem": r["problem"], "detail": r["detail"],
                        "since": r["silent_since"] or stamp if r["problem"] else None,
                        "watching_since": prev["watching_since"] if prev else stamp, "updated": stamp})
        if r["problem"] is None and before is None:
            continue  # first sight of a healthy source
        event = r["problem"] or "recovered"
        events.append({"source": r["id"], "event": event, "detail": r["detail"]})
        subject, body = alert_text(r, event, before, stamp)
        alerts += [{"target": t, "source": r["id"], "event": event, "subject": subject, "body": body, "created": stamp}
                   for t in feeds.alerts.to]
    if changes:
        store.record_health(db, changes, alerts)
    return events


def alert_text(row: dict, event: str, before: str | None, when: str) -> tuple[str, str]:
    name = row["name"]
    if event == "recovered":
        subject = f"borderwatch: source {name} recovered"
        body = f"{name} ({row['url']}) is healthy again (it {PROBLEM_WORDS.get(before, 'had a problem')}). Checked at {when}."
        return subject, body
    subject = f"borderwatch: source {name} {PROBLEM_WORDS[event]}"
    hint = {"failing": "Check the URL in a browser, then `borderwatch sources test " + row["id"] + "`.",
            "selector": "Update link_selector in feeds.yaml to match the page's new layout.",
            "silent": "Check that the source still publishes at this URL; set alerts.silent_after for slow sources."}[event]
    return subject, f"{name} ({row['url']}): {row['detail']}. {hint} Detected at {when}."


def health_problems(db, rows: list[dict], now: dt.datetime | None = None) -> list[str]:
    """Why the deployment is unhealthy: no fresh scheduler lease, or most enabled sources failing."""
    problems = []
    state, line = scheduler_state(db, now)
    if state != "running":
        problems.append(f"no cluster member is running: {line}" if getattr(db, "dialect", "sqlite") == "postgresql"
                        else "the scheduler is not running (no live lease holder in the database)")
    enabled = [r for r in rows if r["enabled"]]
    failing = [r for r in enabled if r["consecutive_failures"]]
    if enabled and len(failing) * 2 > len(enabled):
        problems.append(f"{len(failing)} of {len(enabled)} sources are failing")
    return problems


CLUSTER_ALIVE = 60.0  # a cluster member with a heartbeat this recent counts as running


def scheduler_state(db, now: dt.datetime | None = None) -> tuple[str, str]:
    """('running' | 'stale' | 'not running', a line for people). On PostgreSQL, the cluster members
    (`run` processes with a heartbeat in the last minute) are the scheduler."""
    if getattr(db, "dialect", "sqlite") == "postgresql":
        from .store.cluster import members_line

        return members_line(store.db_path(db), CLUSTER_ALIVE)
    holder = store.lease_holder(db)
    if holder is None:
        return "not running", "not running"
    owner, heartbeat = holder
    state = lease.state(owner, store.parse_iso(heartbeat), now)
    seen = heartbeat.replace("T", " ").rstrip("Z") + " UTC"
    if state == "stale":
        why = "its process is gone" if lease.owner_gone(owner) else "no heartbeat since " + seen
        return state, f"stale ({lease.label(owner)}: {why}; the next `borderwatch run` takes over)"
    return state, f"running ({lease.label(owner)}, last heartbeat {seen})"


@dataclass
class StatusReport:
    """Everything `status` shows."""

    sources: list[SourceState]
    scheduler: str  # the scheduler lease in words: running (who, last heartbeat), stale (why), or not running
    scheduler_running: bool
    config_errors: tuple[str, str] | None  # (errors seen by `run`, when)
    deliveries: dict[str, int]  # count by status
    delivery_problems: list[Delivery]
    problems: list[str] = field(default_factory=list)  # health problems (empty: healthy)
    feeds_error: ConfigError | None = None  # feeds.yaml is invalid: stored sources are shown

    @property
    def failing(self) -> int:
        return sum(1 for s in self.sources if s.consecutive_failures)

    @property
    def healthy(self) -> bool:
        return not self.problems


def status_report(st, feeds: FeedsConfig | None, feeds_error: ConfigError | None = None,
                  now: dt.datetime | None = None) -> StatusReport:
    """Assemble the status of a Store ``st`` (sources with health, lease, config errors, deliveries)."""
    rows = source_status(st.db, feeds, now)
    state, line = scheduler_state(st.db, now)
    return StatusReport([SourceState(**r) for r in rows], line, state == "running",
                        st.get_meta("config_errors"), st.delivery_summary(), st.delivery_problems(),
                        health_problems(st.db, rows, now), feeds_error)

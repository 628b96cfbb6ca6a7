"""What is owed to whom: due periods per cadence, and the hits a digest carries."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..config import RuleSet
from .. import store

log = logging.getLogger("borderwatch.digest")

CADENCES = ("immediate", "hourly", "daily", "weekly")


def zone(name: str) -> dt.tzinfo:
    """The time zone named ``name``; an unknown name is an error, never a silent UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name like America/Mexico_City "
                         "(the zone database comes from the tzdata package)") from None


def due_period(sub: dict, now: dt.datetime) -> str | None:
    """The period a digest is due for now, as a stable key, or None before the first slot.

    The key names the latest scheduled slot at or before ``now`` (in the subscriber's
    zone), so a run that missed a slot still sends once for it, and never twice. A slot
    before the subscription was created does not count: the first digest goes out at the
    first scheduled slot after subscribing (a daily-at-23:00 subscriber added at 15:05 gets
    mail at 23:00, not at once).
    """
    local = now.astimezone(zone(sub["tz"]))
    cadence = sub["cadence"]
    if cadence == "immediate":
        return "immediate:" + store.iso(now)
    if cadence == "hourly":
        slot = local.replace(minute=0, second=0, microsecond=0)
        key = "hourly:" + local.strftime("%Y-%m-%dT%H")
    elif cadence in ("daily", "weekly"):
        slot = local.replace(hour=int(sub["hour"]), minute=0, second=0, microsecond=0)
        if cadence == "weekly":
            slot -= dt.timedelta(days=(local.weekday() - int(sub["weekday"])) % 7)
        if slot > local:
            slot -= dt.timedelta(days=7 if cadence == "weekly" else 1)
        key = f"{cadence}:" + slot.strftime("%Y-%m-%d")
    else:
        return None
    created = store.parse_iso(sub.get("created"))
    if created is not None and slot < created:
        return None  # the first slot after subscribing has not come yet
    return key


def due_digests(db, rules: RuleSet, now: dt.datetime, email: str | None = None):
    """(subscriber, period, groups) for every digest due now that has something in it."""
    for sub in store.subscribers(db, email):
        try:
            period = due_period(sub, now)
        except ValueError as exc:  # a zone this machine does not know: this subscriber waits, others go on
            log.error("subscriber %s: %s", sub["email"], exc)
            continue
        if period is None or store.has_delivery(db, sub["email"], period):
            continue
        groups = build_groups(db, sub, rules)
        if groups:  # no empty digests
            yield sub, period, groups


def followed_rules(sub: dict, rules: RuleSet) -> list[str]:
    """Rule ids a subscriber follows: named rules plus rules with a named tag; all when neither is set."""
    if not sub.get("rules") and not sub.get("tags"):
        return [r.id for r in rules.rules]
    wanted = set(sub.get("rules") or [])
    tags = set(sub.get("tags") or [])
    return [r.id for r in rules.rules if r.id in wanted or tags.intersection(r.tags)]


@dataclass
class Item:
    """One story in a digest: its first-seen copy, and where else it appeared."""

    hit: int
    rule: str
    title: str
    url: str
    source: str
    published: str
    snippet: str
    marks: list
    terms: list[str]
    story: int | None
    also_in: list[str] = field(default_factory=list)
    other_rules: list[str] = field(default_factory=list)
    hit_ids: list[int] = field(default_factory=list)


@dataclass
class Group:
    rule: str
    title: str
    items: list[Item]


def build_groups(db, sub: dict, rules: RuleSet) -> list[Group]:
    """Owed hits grouped by rule (in rule-file order), each story once, newest first."""
    rows = store.owed_hits(db, sub["email"], followed_rules(sub, rules), sub["created"],
                           [r.id for r in rules.rules if r.suggest == "email"])
    order = {r.id: i for i, r in enumerate(rules.rules)}
    # the first-seen copy of a story heads it; later copies are listed as "also in"
    rows.sort(key=lambda r: (order.get(r["rule"], 1 << 30), r["article"]))
    stories: dict[object, Item] = {}
    for r in rows:
        key = r["story"] if r["story"] is not None else ("hit", r["hit"])
        item = stories.get(key)
        if item is None:
            stories[key] = Item(r["hit"], r["rule"], r["title"], r["url"], r["source_name"], r["published"],
                                r["snippet"], r["marks"], r["terms"], r["story"], hit_ids=[r["hit"]])
        else:
            item.hit_ids.append(r["hit"])
            if r["rule"] != item.rule and r["rule"] not in item.other_rules:
                item.other_rules.append(r["rule"])
    copies = store.story_copies(db, [i.story for i in stories.values() if i.story is not None])
    for item in stories.values():
        names = [c["source_name"] for c in copies.get(item.story, []) if c["url"] != item.url]
        item.also_in = list(dict.fromkeys(n for n in names if n != item.source))
    groups = []
    for rule in rules.rules:
        items = [i for i in stories.values() if i.rule == rule.id]
        if items:
            items.sort(key=lambda i: i.published or "", reverse=True)
            groups.append(Group(rule.id, rule.title, items))
    return groups

"""Render the next digest without sending or recording anything."""

from __future__ import annotations

import datetime as dt

from .. import store
from ..config import RuleSet
from ..settings import Settings
from . import render
from .select import build_groups, due_digests


def preview(db, rules: RuleSet, email: str | None = None, now: dt.datetime | None = None,
            settings: Settings | None = None) -> render.Rendered | None:
    now = now or dt.datetime.now(dt.timezone.utc)
    subs = store.subscribers(db, email)
    for sub in subs:
        groups = build_groups(db, sub, rules)
        if groups:
            sender = render.sender_address((settings or Settings.from_env()).digest_from)
            return render.render(groups, sub, now, render.unsubscribe_header(sender, sub["token"], None))
    return None


def due_now(db, rules: RuleSet, email: str | None = None, now: dt.datetime | None = None) -> list[dict]:
    now = now or dt.datetime.now(dt.timezone.utc)
    return [{"subscriber": sub["email"], "period": period, "stories": sum(len(g.items) for g in groups)}
            for sub, period, groups in due_digests(db, rules, now, email)]

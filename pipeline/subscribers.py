"""Validating subscriptions: addresses, rule ids, tags and time zones."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .addresses import display_target, is_channel, validate_email, validate_target  # noqa: F401 (re-exported)
from .config import RuleSet
from .errors import InvalidArgument


def validate_subscription(email: str, rules: str | None, tags: str | None, tz: str, ruleset: RuleSet):
    email = validate_target(email)
    rule_list = [r.strip() for r in rules.split(",") if r.strip()] if rules else None
    tag_list = [t.strip() for t in tags.split(",") if t.strip()] if tags else None
    unknown = [r for r in rule_list or [] if ruleset.get(r) is None]
    if unknown:
        raise InvalidArgument(f"unknown rule id(s): {', '.join(unknown)} (known: {', '.join(r.id for r in ruleset.rules)})", "rules")
    known_tags = {t for r in ruleset.rules for t in r.tags}
    bad_tags = [t for t in tag_list or [] if t not in known_tags]
    if bad_tags:
        raise InvalidArgument(f"unknown tag(s): {', '.join(bad_tags)} (known: {', '.join(sorted(known_tags))})", "tags")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"unknown time zone {tz!r} (use a name like America/Mexico_City)", "tz") from None
    return email, rule_list, tag_list

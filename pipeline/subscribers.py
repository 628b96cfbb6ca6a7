"""Validating subscriptions: addresses, rule ids, tags and time zones."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import RuleSet

# Pragmatic address check: one @, a dotted domain, no spaces, quotes, angle brackets or controls.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def validate_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not _EMAIL.match(email) or ".." in email:
        raise ValueError(f"{email!r} is not a valid email address")
    return email.lower()  # addresses are one subscriber whatever their case (Boss@ = boss@)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def is_channel(target: str) -> bool:
    """An Apprise URL (slack://..., json://host/path, ...) rather than an email address."""
    return "://" in target


def display_target(target: str) -> str:
    """A target as logs and messages may show it: channel URLs carry secrets (webhook tokens),
    so only their scheme and a short fingerprint are shown."""
    if not is_channel(target):
        return target
    import hashlib

    return f"{target.split('://', 1)[0]}://…{hashlib.sha256(target.encode()).hexdigest()[:6]}"


def validate_target(target: str) -> str:
    """An email address (normalised), or an Apprise URL that Apprise understands."""
    target = target.strip()
    if not is_channel(target):
        return validate_email(target)
    scheme = target.split("://", 1)[0]
    if not _URL.match(target) or len(target) > 2000:
        raise ValueError(f"{scheme}://... is not a valid URL (no spaces or control characters)")
    try:
        import apprise
    except ImportError:
        raise ValueError(f"{scheme}:// targets need Apprise: pip install 'borderwatch[notify]'") from None
    if apprise.Apprise.instantiate(target, suppress_exceptions=True) is None:
        raise ValueError(f"Apprise does not understand this {scheme}:// URL (formats: https://github.com/caronc/apprise/wiki)")
    return target


def validate_subscription(email: str, rules: str | None, tags: str | None, tz: str, ruleset: RuleSet):
    email = validate_target(email)
    rule_list = [r.strip() for r in rules.split(",") if r.strip()] if rules else None
    tag_list = [t.strip() for t in tags.split(",") if t.strip()] if tags else None
    unknown = [r for r in rule_list or [] if ruleset.get(r) is None]
    if unknown:
        raise ValueError(f"unknown rule id(s): {', '.join(unknown)} (known: {', '.join(r.id for r in ruleset.rules)})")
    known_tags = {t for r in ruleset.rules for t in r.tags}
    bad_tags = [t for t in tag_list or [] if t not in known_tags]
    if bad_tags:
        raise ValueError(f"unknown tag(s): {', '.join(bad_tags)} (known: {', '.join(sorted(known_tags))})")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (use a name like America/Mexico_City)") from None
    return email, rule_list, tag_list

"""Subscriber addresses: email addresses (normalised) and Apprise channel URLs."""

from __future__ import annotations

import re

from .errors import InvalidArgument

# Pragmatic address check: one @, a dotted domain, no spaces, quotes, angle brackets or controls.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def validate_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not _EMAIL.match(email) or ".." in email:
        raise InvalidArgument(f"{email!r} is not a valid email address", "email")
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
        raise InvalidArgument(f"{scheme}://... is not a valid URL (no spaces or control characters)", "email")
    try:
        import apprise
    except ImportError:
        raise InvalidArgument(f"{scheme}:// targets need Apprise: pip install 'borderwatch[notify]'", "email") from None
    if apprise.Apprise.instantiate(target, suppress_exceptions=True) is None:
        raise InvalidArgument(f"Apprise does not understand this {scheme}:// URL (formats: https://github.com/caronc/apprise/wiki)", "email")
    return target

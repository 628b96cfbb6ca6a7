"""Timestamps: one stored format ('2026-11-23T10:00:00Z', sorts as text) and one ISO-8601 reader."""

from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc


def iso(value: dt.datetime | None) -> str | None:
    """One timestamp format everywhere: '2026-11-23T10:00:00Z' (naive times are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(dt.datetime.now(UTC))


def parse_iso(value: str | dt.datetime | None) -> dt.datetime | None:
    """Read an ISO-8601 date or time ('Z' or an offset; naive means UTC) as an aware datetime.

    None or '' gives None; anything else that is not ISO-8601 raises ValueError.
    """
    if value is None or value == "":
        return None
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)

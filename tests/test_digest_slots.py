"""The first digest goes out at the first scheduled slot after subscribing (explicit clock)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.digest.select import due_period, zone

UTC = dt.timezone.utc


def sub(cadence, created, hour=7, weekday=0, tz="UTC"):
    return {"cadence": cadence, "hour": hour, "weekday": weekday, "tz": tz, "created": created}


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_daily_at_23_added_at_15_05_waits_for_23_00():
    s = sub("daily", "2026-11-23T15:05:00Z", hour=23)
    assert due_period(s, at("2026-11-23T15:05:30")) is None
    assert due_period(s, at("2026-11-23T22:59:59")) is None
    assert due_period(s, at("2026-11-23T23:00:00")) == "daily:2026-11-23"
    assert due_period(s, at("2026-11-24T08:00:00")) == "daily:2026-11-23"  # missed slot: sent once, late


def test_weekly_sunday_added_on_monday_waits_for_sunday():
    # 2026-11-23 is a Monday; weekday 6 = Sunday
    s = sub("weekly", "2026-11-23T10:00:00Z", hour=7, weekday=6, tz="America/Mexico_City")
    for day in range(23, 29):
        assert due_period(s, at(f"2026-11-{day}T20:00:00")) is None, day
    assert due_period(s, at("2026-11-29T12:59:00")) is None  # 06:59 in Mexico City
    assert due_period(s, at("2026-11-29T13:00:00")) == "weekly:2026-11-29"


def test_hourly_waits_for_the_next_hour_and_immediate_does_not_wait():
    assert due_period(sub("hourly", "2026-11-23T15:05:00Z"), at("2026-11-23T15:30:00")) is None
    assert due_period(sub("hourly", "2026-11-23T15:05:00Z"), at("2026-11-23T16:00:00")) == "hourly:2026-11-23T16"
    assert due_period(sub("immediate", "2026-11-23T15:05:00Z"), at("2026-11-23T15:06:00")).startswith("immediate:")


def test_an_unknown_time_zone_is_an_error_not_utc():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus_Mons'"):
        zone("Mars/Olympus_Mons")
    assert zone("America/Mexico_City").utcoffset(dt.datetime(2026, 11, 23)) == dt.timedelta(hours=-6)

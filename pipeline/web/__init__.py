"""`borderwatch serve`: the web surface (dashboard, Atom feeds, unsubscribe, healthz, metrics)."""

from .app import WebConfig, create_app

__all__ = ["WebConfig", "create_app"]

"""The running application's state for `run`: settings, database, and config with hot reload.

Config files are re-read by ``App.reload`` when their modification time changes; an invalid edit is
logged and kept as ``config_error`` while the last valid config stays in force.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from . import store
from .config import ConfigError, FeedsConfig, RuleSet, Settings, load_feeds, load_rules
from .rules import Matcher, compile_rules

log = logging.getLogger("borderwatch")


def _mtime(path: str) -> float | None:
    try:
        st = os.stat(path)
        return st.st_mtime_ns + st.st_size
    except OSError:
        return None


@dataclass
class App:
    settings: Settings
    db: object = None
    feeds: FeedsConfig | None = None
    rules: RuleSet | None = None
    matcher: Matcher | None = None
    errors: dict[str, str] = field(default_factory=dict)  # file -> last load error
    _stamps: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, need_feeds: bool = True, need_rules: bool = True) -> "App":
        """Load config (raising ConfigError when invalid) and open the database."""
        app = cls(settings)
        if need_feeds:
            app.feeds = load_feeds(settings.feeds)
            app._stamps["feeds"] = _mtime(settings.feeds)
        if need_rules:
            app.rules = load_rules(settings.keywords)
            app.matcher = compile_rules(app.rules, settings.semantic)
            app._stamps["rules"] = _mtime(settings.keywords)
        app.db = store.connect(settings.db)
        if app.feeds:
            store.sync_sources(app.db, app.feeds.sources)
        return app

    def reload(self) -> dict[str, bool]:
        """Re-read changed config files; return which ones changed and loaded."""
        changed = {"feeds": False, "rules": False}
        stamp = _mtime(self.settings.feeds)
        if self.feeds is not None and stamp != self._stamps.get("feeds"):
            self._stamps["feeds"] = stamp
            try:
                self.feeds = load_feeds(self.settings.feeds)
                store.sync_sources(self.db, self.feeds.sources)
                self.errors.pop("feeds", None)
                changed["feeds"] = True
                log.info("reloaded %s: %d sources", self.settings.feeds, len(self.feeds.sources))
            except ConfigError as exc:
                self.errors["feeds"] = str(exc)
                log.error("invalid edit of %s, keeping the last valid sources:\n%s", self.settings.feeds, exc)
        stamp = _mtime(self.settings.keywords)
        if self.rules is not None and stamp != self._stamps.get("rules"):
            self._stamps["rules"] = stamp
            try:
                rules = load_rules(self.settings.keywords)
                self.rules, self.matcher = rules, compile_rules(rules, self.settings.semantic)
                self.errors.pop("rules", None)
                changed["rules"] = True
                log.info("reloaded %s: %d rules", self.settings.keywords, len(rules.rules))
            except ConfigError as exc:
                self.errors["rules"] = str(exc)
                log.error("invalid edit of %s, keeping the last valid rules:\n%s", self.settings.keywords, exc)
        return changed

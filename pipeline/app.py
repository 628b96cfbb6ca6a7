"""The library face: ``pipeline.open()`` returns a ``Borderwatch``, whose methods are what the CLI does.

Each method loads what it needs (config files, the Store) on first use and hands the work to the
owner of the concept (rules/, store/, digest/, status.py, schedule.py, opml.py ...); nothing here
speaks SQL or HTTP.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import store
from .config import (ConfigError, ConfigIssue, FeedsConfig, RuleSet, Settings, load_feeds, load_rules, load_yaml,
                     parse_feeds, parse_rules)
from .errors import AlreadyExists, BorderwatchError, FetchError, InvalidArgument, NotFound
from .models import WEEKDAYS, HitRow, Subscriber
from .rules import Hit, Matcher, compile_rules
from .rules.backtest import Backtest, backtest
from .runtime import App
from .status import StatusReport, status_report
from .timestamps import iso
from .when import parse_when


@dataclass
class CheckReport:
    """What `check` found: every problem as FILE:LINE: message, and how many sources and rules loaded."""

    problems: list[ConfigIssue]
    sources: int = 0
    rules: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


class Borderwatch:
    """borderwatch as a library: ``with pipeline.open(db=..., feeds=..., keywords=...) as bw: bw.hits(...)``.

    Config files are read when first needed (a method that needs only the database never reads them);
    the database is opened read-only for reads (never created) and read-write for writes. ``close()``
    (or leaving the ``with`` block) closes it. Errors are ``pipeline.errors.BorderwatchError`` subclasses.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._store: store.SQLiteStore | None = None
        self._feeds: FeedsConfig | None = None
        self._rules: RuleSet | None = None
        self._matcher: Matcher | None = None

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> "Borderwatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Borderwatch db={self.settings.db!r} feeds={self.settings.feeds!r} keywords={self.settings.keywords!r}>"

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def store(self, write: bool = False) -> store.Store:
        """The Store: read-only (an existing database) unless ``write``; reopened read-write when needed."""
        if self._store is not None and write and self._store.readonly:
            self.close()
        if self._store is None:
            self._store = store.open_store(self.settings.db, readonly=not write)
        return self._store

    @property
    def feeds(self) -> FeedsConfig:
        if self._feeds is None:
            self._feeds = load_feeds(self.settings.feeds)
        return self._feeds

    @property
    def rules(self) -> RuleSet:
        if self._rules is None:
            self._rules = load_rules(self.settings.keywords)
        return self._rules

    @property
    def matcher(self) -> Matcher:
        if self._matcher is None:
            self._matcher = compile_rules(self.rules, self.settings.semantic)
        return self._matcher

    def _app(self) -> App:
        """The running-application state `run` works on, over this face's open database."""
        st = self.store(write=True)
        st.sync_sources(self.feeds.sources)
        return App(self.settings, st.db, self.feeds, self.rules, self.matcher)

    # ------------------------------------------------------------------ polling

    def poll_once(self, send_digests: bool = True, progress: bool = False, now: dt.datetime | None = None) -> dict:
        """One full cycle: poll every enabled source, match, store, and (unless told not to) send
        the digests that are due. Returns the summary `run --once` prints. Raises AlreadyRunning
        if a `run` holds this database."""
        from .schedule import run_once

        return run_once(self._app(), progress=progress, send_digests=send_digests, now=now)

    def run_forever(self, metrics_port: int | None = None, send_digests: bool = True) -> int:
        """Poll sources on their schedules and send digests until SIGINT/SIGTERM (`borderwatch run`); with a
        PostgreSQL ``db``, as a cluster member (pipeline/cluster.py) sharing the work with the others.
        Returns how many worker threads were still busy at the end (abandoned CPU work, nothing half-written):
        a program that must exit now can then leave with ``os._exit``."""
        if self.settings.db_is_url:  # PostgreSQL: a cluster member; any number share the work
            from .cluster import Member

            member = Member(self.settings, metrics_port=metrics_port, send_digests=send_digests)
            member.run_forever()
            return member.stuck_threads()
        from .schedule import Runner

        runner = Runner(self._app(), metrics_port=metrics_port, send_digests=send_digests)
        runner.run_forever()
        return runner.stuck_threads()

    # ------------------------------------------------------------------ hits and rules

    def hits(self, rules: list[str] | str | None = None, tags: list[str] | str | None = None, source: str | None = None,
             since: str | dt.datetime | None = None, until: str | dt.datetime | None = None, search: str | None = None,
             limit: int = 50, suggested: bool = False, language: str | None = None) -> list[HitRow]:
        """Stored articles with hits, newest published first. ``since``/``until`` take '24h', '7d', an ISO date
        or a datetime; ``tags`` keeps rules carrying one of them (read from keywords.yaml); ``search`` is an
        SQLite FTS5 query over titles and texts (InvalidQuery if malformed); ``suggested`` lists the semantic
        layer's suggestions instead of the rules' hits; ``language`` keeps articles in that language (ISO 639-1)."""
        rule_ids = [rules] if isinstance(rules, str) else list(rules) if rules else None
        tags = [tags] if isinstance(tags, str) else list(tags) if tags else None
        if limit < 1:
            raise InvalidArgument(f"limit must be at least 1, got {limit}", "limit")
        st = self.store()
        ruleset = self.rules if (rule_ids or tags) and os.path.exists(self.settings.keywords) else None
        if rule_ids:  # a typo must not answer "no hits": known = the rules file's and those with stored hits
            known = sorted(({r.id for r in ruleset.rules} if ruleset else set()) | set(st.hit_rules()))
            unknown = [r for r in rule_ids if r not in known]
            if unknown:
                raise InvalidArgument(f"unknown rule {', '.join(unknown)} (known: {', '.join(known) or 'none'})", "rule")
        if tags:
            if ruleset is None:
                raise InvalidArgument(f"--tag needs the rules file ({self.settings.keywords} not found)", "tag")
            known_tags = sorted({t for r in ruleset.rules for t in r.tags})
            unknown = [t for t in tags if t not in known_tags]
            if unknown:
                raise InvalidArgument(f"unknown tag {', '.join(unknown)} (known: {', '.join(known_tags) or 'none'})", "tag")
            tagged = [r.id for r in ruleset.rules if set(tags) & set(r.tags)]
            rule_ids = [r for r in (rule_ids or tagged) if r in tagged]
        if source:
            known_sources = sorted(st.source_states())
            if source not in known_sources:
                raise InvalidArgument(f"unknown source {source} (known: {', '.join(known_sources) or 'none'})", "source")
        if language is not None and not re.fullmatch(r"[A-Za-z]{2,3}", language):
            raise InvalidArgument(f"{language!r} is not a language code; use a two-letter ISO 639-1 code such as "
                                  "en or es", "language")
        q = store.HitQuery(rule_ids, source, when(since, "since"), when(until, "until"), search, limit, suggested,
                           language=language.lower() if language else None)
        return st.hits(q)

    def match(self, title: str, text: str) -> list[Hit]:
        """Which rules match this title and text (nothing is stored)."""
        return self.matcher.match(title, text)

    def explain(self, title: str, text: str) -> list:
        """For every rule, why it matches this title and text or why not (rules.explain records)."""
        from .rules.explain import explain

        return explain(self.matcher, title, text)

    def article(self, url: str) -> dict:
        """A stored article (id, url, title, text, source, published) by its URL, as given or canonical."""
        found = self.store().article_by_url(url.strip())
        if found is None:
            raise NotFound(f"no stored article with the URL {url.strip()} in {self.settings.db} "
                           "(`borderwatch hits --json` lists stored URLs)")
        return found

    def extract(self, url: str, timeout: float = 20.0) -> tuple[str, str]:
        """Fetch one article page through the normal fetcher; return its (title, main text). Raises FetchError."""
        from .rules.tools import load_url

        try:
            return load_url(url, timeout)
        except FetchError as exc:
            raise FetchError(f"cannot load {url}: {exc}", exc.kind) from None

    def extract_pages(self, inputs: list[str], base_url: str | None = None, timeout: float = 20.0,
                      stdin: bytes | None = None) -> list[dict]:
        """What borderwatch would store for each page (a saved HTML file, ``-`` for ``stdin``, or a URL fetched
        like a poll): {"input", "url", "title", "text", "published", "author", "language", "error"} records."""
        from .extract import extract_inputs

        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise InvalidArgument("must be an http(s) URL, e.g. https://example.org/news/story.html", "base_url")
        return extract_inputs(list(inputs), base_url, timeout, stdin)

    def backtest(self, since: str | dt.datetime | None = None, apply: bool = False) -> Backtest:
        """Run the current rules over stored articles (published since ``since``) and compare with the
        stored hits; with ``apply``, store the added hits as backfilled (never emailed)."""
        return backtest(self.store(write=apply), self.matcher, when(since, "since"), apply=apply)

    def check(self) -> CheckReport:
        """Validate feeds.yaml and keywords.yaml; every problem, not just the first."""
        report = CheckReport([])
        for path, parse, attr in ((self.settings.feeds, parse_feeds, "sources"), (self.settings.keywords, parse_rules, "rules")):
            data, issues = load_yaml(path)
            if data is not None:
                parsed, more = parse(data, path)
                issues += more
                if parsed is not None:
                    setattr(report, attr, len(getattr(parsed, attr)))
            elif not issues:  # an empty file: `run` refuses it, so `check` does too
                issues = [ConfigIssue(str(path), 0, "empty file")]
            report.problems += issues
        return report

    # ------------------------------------------------------------------ health

    def status(self, now: dt.datetime | None = None) -> StatusReport:
        """Every source with its poll state, the scheduler lease, delivery problems and health.
        An invalid feeds.yaml does not stop it: the stored sources are shown and ``feeds_error`` is set."""
        feeds, error = None, None
        try:
            feeds = self.feeds
        except ConfigError as exc:
            error = exc
        return status_report(self.store(), feeds, error, now)

    def prune(self, older_than: str | dt.datetime = "365d", dry_run: bool = False) -> tuple[int, str]:
        """Delete articles without hits fetched before ``older_than`` (then VACUUM); returns
        (how many, the cutoff timestamp). Hits are never deleted. ``dry_run`` only counts."""
        cutoff = when(older_than, "older_than")
        if dry_run:
            return self.store().prunable(cutoff), cutoff
        return self.store(write=True).prune(cutoff), cutoff

    def browse_command(self, host: str = "127.0.0.1", port: int = 8001, open_browser: bool = True) -> list[str]:
        """The Datasette command line that serves this database with canned queries."""
        from .browse import serve_command

        if store.is_postgres(self.settings.db):
            raise InvalidArgument("browse serves a SQLite file with Datasette; for PostgreSQL use psql or any SQL "
                                  "client on the same URL (the tables are documented in the README)", "db")
        self.store()  # it exists and is a borderwatch database
        return serve_command(self.settings.db, host, port, open_browser=open_browser)

    # ------------------------------------------------------------------ subscribers and digests

    def subscribers(self, email: str | None = None) -> list[Subscriber]:
        return self.store().subscribers(email)

    def subscribe(self, email: str, rules: list[str] | str | None = None, tags: list[str] | str | None = None,
                  cadence: str = "daily", hour: int = 7, weekday: int | str = 0, tz: str = "UTC") -> Subscriber:
        """Subscribe ``email`` (an address, any case, or an Apprise URL); rule ids and tags are checked
        against keywords.yaml. AlreadyExists if it is subscribed (change it with ``update_subscriber``)."""
        from .subscribers import validate_subscription

        _check_schedule(cadence, hour, weekday)
        email, rule_list, tag_list = validate_subscription(email, _joined(rules), _joined(tags), tz, self.rules)
        st = self.store(write=True)
        if st.find_subscriber(email):
            raise AlreadyExists(f"{email} is already subscribed; change it with `borderwatch subscribers update {email} "
                                "--cadence ...` (only the options you give change)")
        st.add_subscriber(email, rule_list, tag_list, cadence, hour, _weekday(weekday), tz)
        return st.find_subscriber(email)

    def update_subscriber(self, email: str, rules: list[str] | str | None = None, tags: list[str] | str | None = None,
                          cadence: str | None = None, hour: int | None = None, weekday: int | str | None = None,
                          tz: str | None = None) -> Subscriber:
        """Change only what is given (``rules=""``/``tags=""``: follow all rules). NotFound if not subscribed."""
        from .subscribers import validate_subscription

        st = self.store(write=True)
        current = st.find_subscriber(email.strip())
        if current is None:
            raise NotFound(f"no subscriber {email.strip()}; add one with `borderwatch subscribers add`")
        _check_schedule(cadence or current.cadence, current.hour if hour is None else hour,
                        current.weekday if weekday is None else weekday)
        _, rule_list, tag_list = validate_subscription(current.email, _joined(rules), _joined(tags), tz or current.tz,
                                                       self.rules)
        changes = {"cadence": cadence, "hour": hour, "tz": tz, "weekday": None if weekday is None else _weekday(weekday)}
        changes = {k: v for k, v in changes.items() if v is not None}
        if rules is not None:
            changes["rules"] = rule_list
        if tags is not None:
            changes["tags"] = tag_list
        st.update_subscriber(current.email, changes)
        return st.find_subscriber(current.email)

    def unsubscribe(self, target: str) -> str:
        """Remove the subscriber with this address (any case) or unsubscribe token, and its delivery
        history; returns its address. NotFound if there is none."""
        removed = self.store(write=True).remove_subscriber(target.strip())
        if removed is None:
            raise NotFound(f"no subscriber with the address or token {target.strip()!r} "
                           "(`borderwatch subscribers list` shows them)")
        return removed

    def preview(self, email: str | None = None, now: dt.datetime | None = None):
        """The next digest of ``email`` (default: the first subscriber with something owed), rendered
        but neither sent nor recorded; None when nothing is owed. NotFound for an unknown ``email``
        or when there are no subscribers at all."""
        from .digest.preview import preview

        st = self.store()
        sub = st.find_subscriber(email.strip()) if email else None
        if email and sub is None:
            raise NotFound(f"no subscriber {email.strip()} (`borderwatch subscribers list` shows them)")
        if not email and not st.subscribers():
            raise NotFound("there are no subscribers (add one with `borderwatch subscribers add`)")
        return preview(st.db, self.rules, sub.email if sub else None, now, settings=self.settings)

    def due_digests(self, email: str | None = None, now: dt.datetime | None = None) -> list[dict]:
        """Who is due a digest now, for which period, with how many stories (sends nothing)."""
        from .digest.preview import due_now

        return due_now(self.store().db, self.rules, email, now)

    def send_digests(self, email: str | None = None, outbox: str = "outbox", transport=None,
                     now: dt.datetime | None = None):
        """Create the digests due now and deliver every owed one (SMTP from the settings, else .eml files
        in ``outbox``); returns a SendReport. Delivery failures are in the report, not raised."""
        from .digest.send import send_due, transport_for

        return send_due(self.store(write=True).db, self.rules, now, transport or transport_for(self.settings, outbox),
                        email, settings=self.settings)

    def resend(self, delivery_id: int, outbox: str = "outbox", transport=None, now: dt.datetime | None = None):
        """Send again a delivery whose outcome is unknown, or that failed (the operator's decision);
        returns a SendReport. NotFound for no such delivery, DeliveryError for one in another state."""
        from .digest.send import resend, transport_for

        return resend(self.store(write=True).db, delivery_id, transport or transport_for(self.settings, outbox), now=now,
                      settings=self.settings)

    # ------------------------------------------------------------------ feeds.yaml, sources and OPML

    def add_source(self, url: str, source_id: str | None = None, name: str | None = None) -> dict:
        """Add the site at ``url`` to feeds.yaml: its feed (the URL, the page's <link rel="alternate">, or a
        common feed path), or a page source with a guessed link_selector. Returns what was added."""
        from .config import ID_RE
        from .feedsfile import append_sources, clean_text, current, edit, new_source
        from .opml import slug, url_problem
        from .sources import discover_sync

        url = url.strip()
        if problem := url_problem(url):
            raise InvalidArgument(f"{url!r}: {problem}", "URL")
        if source_id is not None and (not ID_RE.match(source_id) or len(source_id) > 60):
            raise InvalidArgument(f"{source_id!r} must match [a-z0-9-] (for example dea-press)", "id")
        path = self.settings.feeds
        existing = current(path)
        by_url = {s.url: s.id for s in existing.sources} if existing else {}
        if url in by_url:
            raise AlreadyExists(f"{url} is already in {path} as {by_url[url]}")
        found = discover_sync(url)
        if found.url in by_url:
            raise AlreadyExists(f"its feed {found.url} is already in {path} as {by_url[found.url]}")
        known_ids = {s.id for s in existing.sources} if existing else set()
        if source_id in known_ids:
            raise AlreadyExists(f"the id {source_id} is taken in {path}; choose another with --id")
        label = clean_text(name or found.name or (urlsplit(found.url).hostname or found.url))
        sid, n = source_id or slug(label), 2
        base = sid
        while sid in known_ids:
            sid, n = f"{base}-{n}", n + 1
        edit(path, lambda doc: append_sources(doc, [new_source(sid, found.url, label or sid, found.type,
                                                               found.link_selector)]))
        self._feeds = None
        return {"id": sid, "name": label or sid, "url": found.url, "type": found.type,
                "link_selector": found.link_selector, "how": found.how, "items": found.entries}

    def set_source_enabled(self, source_id: str, enabled: bool) -> None:
        """Set ``enabled`` of a source in feeds.yaml (a running `run` picks it up within seconds). NotFound
        if feeds.yaml has no such source."""
        from .feedsfile import edit, set_enabled, source_ids

        path = self.settings.feeds

        def change(doc):
            if not set_enabled(doc, source_id, enabled):
                raise NotFound(f"no source {source_id} in {path} (known: {', '.join(map(str, source_ids(doc))) or 'none'})")

        edit(path, change)
        self._feeds = None

    def test_source(self, target: str):
        """Poll a source (an id from feeds.yaml, or a URL) once, storing nothing; returns (Source, TrialResult)
        with what would be new and what would match."""
        from .config import Source
        from .sources import discover_sync, trial_poll

        feeds = self.feeds if os.path.exists(self.settings.feeds) else None
        source = feeds.get(target) if feeds else None
        if source is None and feeds:
            source = next((x for x in feeds.sources if x.url == target), None)
        if source is None:
            if "://" not in target:
                known = ", ".join(x.id for x in feeds.sources) if feeds else "none"
                raise InvalidArgument(f"no source {target} in {self.settings.feeds} (known: {known}); or give a URL",
                                      "ID|URL")
            found = discover_sync(target.strip())
            source = Source(id="test", url=found.url, name=found.name, type=found.type,
                            link_selector=found.link_selector, fetch_articles=found.type == "page")
        if store.is_postgres(self.settings.db) or os.path.exists(self.settings.db):
            return source, trial_poll(source, self.store().db, self.matcher)
        with store.open_store(":memory:") as scratch:
            return source, trial_poll(source, scratch.db, self.matcher)


    def export_opml(self) -> str:
        from .opml import export_opml

        return export_opml(self.feeds)

    def import_opml(self, path: str | os.PathLike, write: bool = True, strict: bool = False):
        """The entries of an OPML file not yet in feeds.yaml, each checked: returns (opml.OPMLImport with
        ``new``, ``rejected`` and ``known``, whether feeds.yaml was written). With ``write``, the new ones
        are added to feeds.yaml (comments kept, validated, atomic); with ``strict``, none if any is
        rejected. ConfigError if the file is not OPML."""
        from .feedsfile import append_sources, current, edit
        from .opml import entries, import_opml

        try:
            result = import_opml(Path(path).read_bytes(), current(self.settings.feeds))
        except (OSError, BorderwatchError):
            raise
        except Exception as exc:  # defusedxml and ElementTree parse errors
            raise ConfigError([ConfigIssue(os.fspath(path), 0, "not a valid OPML file: "
                                           + str(exc).splitlines()[0])]) from None
        written = bool(result.new) and write and not (strict and result.rejected)
        if written:
            edit(self.settings.feeds, lambda doc: append_sources(doc, entries(result.new)))
            self._feeds = None
        return result, written

def _joined(value: list[str] | str | None) -> str | None:
    return ",".join(value) if isinstance(value, (list, tuple)) else value


def _weekday(value: int | str) -> int:
    return WEEKDAYS.index(value) if isinstance(value, str) else value


def _check_schedule(cadence: str, hour: int, weekday: int | str) -> None:
    from .digest.select import CADENCES

    if cadence not in CADENCES:
        raise InvalidArgument(f"cadence must be one of {', '.join(CADENCES)}, got {cadence!r}", "cadence")
    if not isinstance(hour, int) or not 0 <= hour <= 23:
        raise InvalidArgument(f"hour must be 0-23, got {hour!r}", "hour")
    if weekday not in WEEKDAYS and weekday not in range(7):
        raise InvalidArgument(f"weekday must be one of {', '.join(WEEKDAYS)} (or 0-6), got {weekday!r}", "weekday")


def when(value: str | dt.datetime | None, param: str) -> str | None:
    """A WHEN argument ('24h', '7d', an ISO date, or a datetime) as a stored timestamp; InvalidArgument if bad."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return iso(value)
    try:
        return parse_when(value)
    except ValueError as exc:
        raise InvalidArgument(str(exc), param) from None


def open(db: str | os.PathLike | None = None, feeds: str | os.PathLike | None = None,  # noqa: A001
         keywords: str | os.PathLike | None = None, settings: Settings | None = None) -> Borderwatch:
    """Open borderwatch over a database and config files. Arguments not given come from the
    environment (BORDERWATCH_DB, BORDERWATCH_FEEDS, BORDERWATCH_KEYWORDS), then the defaults
    (borderwatch.db, feeds.yaml, keywords.yaml in the current directory)."""
    settings = settings or Settings.from_env()
    return Borderwatch(settings.with_overrides(db=_str(db), feeds=_str(feeds), keywords=_str(keywords)))


def _str(path) -> str | None:
    return None if path is None else os.fspath(path)

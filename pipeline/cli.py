"""The borderwatch command line: parse options, call one library function, print."""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import click

from . import __version__, store
from .errors import BorderwatchError
from .config import ConfigError, Settings, load_feeds, load_rules, load_yaml, parse_feeds, parse_rules

EXIT_RUNTIME, EXIT_CONFIG = 1, 2


def common(*, feeds: bool = True, keywords: bool = True, db: bool = True):
    """Options shared by commands: --feeds, --keywords, --db (with their env variables)."""

    def wrap(fn):
        if db:
            fn = click.option("--db", "db_path", envvar="BORDERWATCH_DB", default="borderwatch.db", show_default=True,
                              help="SQLite database (env BORDERWATCH_DB).")(fn)
        if keywords:
            fn = click.option("--keywords", "keywords_path", envvar="BORDERWATCH_KEYWORDS", default="keywords.yaml",
                              show_default=True, help="Rule file (env BORDERWATCH_KEYWORDS).")(fn)
        if feeds:
            fn = click.option("--feeds", "feeds_path", envvar="BORDERWATCH_FEEDS", default="feeds.yaml",
                              show_default=True, help="Source list (env BORDERWATCH_FEEDS).")(fn)
        return fn

    return wrap


def settings(kw: dict) -> Settings:
    return Settings.from_env(feeds=kw.pop("feeds_path", None), keywords=kw.pop("keywords_path", None),
                             db=kw.pop("db_path", None))


def config_errors(fn):
    """Turn ConfigError into FILE:LINE lines on stderr and exit status 2."""

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for issue in exc.issues:
                click.echo(str(issue), err=True)
            sys.exit(EXIT_CONFIG)

    return inner


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def when_option(value: str | None) -> str | None:
    from .when import parse_when

    if value is None:
        return None
    try:
        return parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def setup_logging(level: str, fmt: str) -> None:
    from .logs import configure

    configure(level, fmt)


class Main(click.Group):
    """The command group; failures that are not bugs become one line on stderr, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for issue in exc.issues:
                click.echo(str(issue), err=True)
            sys.exit(EXIT_CONFIG)
        except BorderwatchError as exc:  # StorageError, AlreadyRunning, NotFound, ...: one line each
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except sqlite3.Error as exc:
            click.echo(f"error: database: {exc}; check --db and that no other process holds it", err=True)
            sys.exit(EXIT_RUNTIME)
        except OSError as exc:
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            click.echo(f"error:{where}: {exc.strerror or exc}; check the path and its permissions", err=True)
            sys.exit(EXIT_RUNTIME)


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="borderwatch")
def main() -> None:
    """borderwatch: watch news sources on US-Mexico security and migration, match keyword
    rules, store hits in SQLite, and email digests.

    Start with `borderwatch demo` (offline), then `borderwatch run --once`.
    """


# --------------------------------------------------------------------------- run


@main.command()
@common()
@click.option("--once", is_flag=True, help="Poll every source once, send due digests, print a summary, exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the summary as JSON.")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port (needs the metrics extra).")
@click.option("--no-digests", is_flag=True, help="Do not send digests (poll only).")
@config_errors
def run(once: bool, as_json: bool, log_format: str, log_level: str, metrics_port: int | None, no_digests: bool, **kw) -> None:
    """Poll sources on their schedules and send digests, until SIGINT/SIGTERM.

    With --once: one full cycle (poll all enabled sources, match, store, send the
    digests that are due) and a summary, then exit; status 1 if every source failed.
    """
    from .app import App

    setup_logging(log_level, log_format)
    app = App.open(settings(kw))
    if once:
        from .schedule import run_once

        summary = run_once(app, progress=sys.stderr.isatty() and not as_json, send_digests=not no_digests)
        if as_json:
            echo_json(summary)
        else:
            _print_summary(summary)
        d = summary.get("digests") or {}
        delivery_failed = bool(d.get("retry") or d.get("failed") or d.get("unknown"))
        sys.exit(EXIT_RUNTIME if (summary["sources"] and summary["ok"] == 0) or delivery_failed else 0)
    from .schedule import Runner, AlreadyRunning

    try:
        Runner(app, metrics_port=metrics_port, send_digests=not no_digests).run_forever()
    except AlreadyRunning as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_RUNTIME)


def _print_summary(s: dict) -> None:
    click.echo(f"sources: {s['ok']} ok ({s['not_modified']} unchanged), {s['failed']} failed of {s['sources']}; "
               f"new articles: {s['new_articles']}; new hits: {s['new_hits']}; {s['seconds']}s")
    for f in s.get("failures", []):
        click.echo(f"  failed {f['source']}: {f['error']}")
    for h in s.get("health", []):
        click.echo(f"  source health: {h['source']} {'recovered' if h['event'] == 'recovered' else h['event']}"
                   + (f" ({h['detail']})" if h["detail"] else ""))
    d = s.get("digests")
    if d:
        click.echo(f"digests: {d['created']} new, {d['sent']} sent, {d['retry']} to retry, {d['failed']} failed"
                   + (f"; files: {', '.join(d['files'])}" if d["files"] else ""))
        for e in d.get("errors", []):
            click.echo(f"  delivery failed: {e}", err=True)


# --------------------------------------------------------------------------- check


@main.command()
@common(db=False)
def check(**kw) -> None:
    """Validate feeds.yaml and keywords.yaml; print every problem as FILE:LINE: message.

    Exit status 2 if any problem was found.
    """
    s = settings(kw)
    problems = []
    counts = {}
    for path, parse in ((s.feeds, parse_feeds), (s.keywords, parse_rules)):
        data, issues = load_yaml(path)
        if data is not None:
            parsed, more = parse(data, path)
            issues += more
            if parsed is not None:
                counts[path] = len(getattr(parsed, "sources", None) or getattr(parsed, "rules", ()))
        elif not issues:  # an empty file: `run` refuses it, so `check` does too
            from .config import ConfigIssue

            issues = [ConfigIssue(str(path), 0, "empty file")]
        problems += issues
    for p in problems:
        click.echo(str(p), err=True)
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found", err=True)
        sys.exit(EXIT_CONFIG)
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    click.echo(f"ok: {s.feeds} ({n(counts.get(s.feeds, 0), 'source')}), {s.keywords} ({n(counts.get(s.keywords, 0), 'rule')})")


# --------------------------------------------------------------------------- rules


@main.group()
def rules() -> None:
    """Try rules on text, URLs or files, and backtest edits against stored articles."""


@rules.command("test")
@common(feeds=False)
@click.option("--text", help="Text to match (the first line is taken as the title).")
@click.option("--url", help="Fetch this article page and match its title and main text.")
@click.option("--article", "article_url", help="A stored article (by its URL) from the database.")
@click.option("--explain", is_flag=True, help="For every rule, say why it matched or why not (missing group, "
              "exclusion, distance for near, nearest term).")
@click.option("--json", "as_json", is_flag=True, help='Print {"matches": [{"rule", "terms", "snippets"}]} '
              '(with --explain also "explain": [{"rule", "matched", "reason", "groups", "nearest", ...}]).')
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@config_errors
def rules_test(text: str | None, url: str | None, article_url: str | None, explain: bool, as_json: bool,
               files: tuple[str, ...], **kw) -> None:
    """Show which rules match a text, a URL, a stored article or files, with the terms and
    highlighted snippets; with --explain, why each rule matched or did not."""
    from .rules import compile_rules
    from .rules.tools import load_url

    s = settings(kw)
    matcher = compile_rules(load_rules(s.keywords))
    docs: list[tuple[str, str, str]] = []
    if text is not None:
        title, _, body = text.partition("\n")
        docs.append(("--text", title, body))
    if url:
        try:
            title, body = load_url(url)
        except Exception as exc:
            click.echo(f"error: cannot load {url}: {exc}", err=True)
            sys.exit(EXIT_RUNTIME)
        docs.append((url, title, body))
    if article_url:
        stored = store.article_by_url(store.connect_readonly(s.db), article_url.strip())
        if stored is None:
            click.echo(f"error: no stored article with the URL {article_url.strip()} in {s.db} "
                       "(`borderwatch hits --json` lists stored URLs)", err=True)
            sys.exit(EXIT_RUNTIME)
        docs.append((stored["url"], stored["title"] or "", stored["text"] or ""))
    for f in files:
        content = Path(f).read_text(encoding="utf-8", errors="replace")
        title, _, body = content.partition("\n")
        docs.append((f, title, body))
    if not docs:
        if sys.stdin.isatty():
            raise click.UsageError("give --text, --url, --article or FILE (or pipe text on stdin)")
        title, _, body = sys.stdin.read().partition("\n")
        docs.append(("stdin", title, body))
    matches = []
    for name, title, body in docs:
        for hit in matcher.match(title, body):
            matches.append({"rule": hit.rule, "terms": hit.terms, "snippets": [hit.highlighted], "source": name})
    explained = []
    if explain:
        from .rules.explain import explain as explain_rules

        explained = [(name, e) for name, title, body in docs for e in explain_rules(matcher, title, body)]
    if as_json:
        out = {"matches": [{k: m[k] for k in ("rule", "terms", "snippets")} for m in matches]}
        if explain:
            out["explain"] = [{**e.as_dict(), **({"input": name} if len(docs) > 1 else {})} for name, e in explained]
        echo_json(out)
        return
    if explain:
        for name, e in explained:
            label = f" [{name}]" if len(docs) > 1 else ""
            click.echo(click.style(e.rule, bold=True) + label + ": " + ("MATCH" if e.matched else "no match")
                       + " — " + e.reason)
            if e.snippet:
                click.echo("    " + e.snippet)
        return
    if not matches:
        click.echo("no rule matches")
        return
    for m in matches:
        label = f" [{m['source']}]" if len(docs) > 1 else ""
        click.echo(click.style(m["rule"], bold=True) + label + ": " + ", ".join(m["terms"]))
        for snip in m["snippets"]:
            click.echo("    " + snip)


@rules.command("backtest")
@common(feeds=False)
@click.option("--since", help="Only articles published since WHEN (24h, 7d, or an ISO date).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--apply", is_flag=True, help="Store the added hits, marked as backfilled (never emailed).")
@click.option("--show", default=10, show_default=True, help="How many added/removed examples to list per rule.")
@config_errors
def rules_backtest(since: str | None, as_json: bool, apply: bool, show: int, **kw) -> None:
    """Run the (edited) rules over stored articles; show what would be added and removed."""
    from .rules import compile_rules
    from .rules.backtest import backtest

    s = settings(kw)
    matcher = compile_rules(load_rules(s.keywords))
    db = store.connect(s.db) if apply else store.connect_readonly(s.db)
    result = backtest(db, matcher, when_option(since))
    titles = store.article_titles(db, [a for a, _ in result.added] + [a for a, _ in result.removed])
    written = store.backfill_hits(db, result.added) if apply else 0
    if as_json:
        echo_json({"articles": result.articles, "kept": result.kept, "per_rule": result.per_rule(),
                   "added": [{"article": a, "rule": h.rule, "title": titles[a]["title"], "url": titles[a]["url"],
                              "terms": h.terms} for a, h in result.added],
                   "removed": [{"article": a, "rule": r, "title": titles[a]["title"], "url": titles[a]["url"]}
                               for a, r in result.removed],
                   "applied": written})
        return
    click.echo(f"{result.articles} articles checked: {len(result.added)} hits would be added, "
               f"{len(result.removed)} removed, {result.kept} unchanged")
    for rule, c in result.per_rule().items():
        click.echo(f"  {rule}: +{c['added']} -{c['removed']}")
        for a, h in [x for x in result.added if x[1].rule == rule][:show]:
            click.echo(f"    + {titles[a]['title'][:90]}  ({', '.join(h.terms)})")
        for a, r in [x for x in result.removed if x[1] == rule][:show]:
            click.echo(f"    - {titles[a]['title'][:90]}")
    if apply:
        click.echo(f"stored {written} backfilled hits (they will not be emailed)")


# --------------------------------------------------------------------------- hits


@main.command()
@common(feeds=False)
@click.option("--rule", "rule_ids", multiple=True, help="Only hits of this rule (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only hits of rules with this tag (repeatable).")
@click.option("--source", help="Only articles from this source id.")
@click.option("--since", help="Published since WHEN: 24h, 7d or an ISO date.")
@click.option("--until", help="Published before WHEN.")
@click.option("--search", help="Full-text query over titles and texts (SQLite FTS5 syntax).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--suggested", is_flag=True,
              help="Show the semantic layer's suggestions (likely keyword misses, never emailed unless the rule "
                   "says `suggest: email`) instead of the rules' hits.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per line; "rule_versions" gives the version of each rule that made the hit.')
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@config_errors
def hits(rule_ids, tags, source, since, until, search, limit, suggested, as_json, as_csv, **kw) -> None:
    """Query stored hits, newest first."""
    from .rules.match import highlight

    s = settings(kw)
    db = store.connect_readonly(s.db)
    rules_filter = list(rule_ids) if rule_ids else None
    ruleset = load_rules(s.keywords) if (rule_ids or tags) and Path(s.keywords).exists() else None
    if rule_ids:  # a typo must not answer "no hits": known = the rules file's and those with stored hits
        known = sorted(({r.id for r in ruleset.rules} if ruleset else set()) | set(store.hit_rules(db)))
        unknown = [r for r in rule_ids if r not in known]
        if unknown:
            raise click.BadParameter(f"unknown rule {', '.join(unknown)} (known: {', '.join(known) or 'none'})",
                                     param_hint="--rule")
    if tags:
        if ruleset is None:
            raise click.BadParameter(f"--tag needs the rules file ({s.keywords} not found)", param_hint="--tag")
        known_tags = sorted({t for r in ruleset.rules for t in r.tags})
        unknown = [t for t in tags if t not in known_tags]
        if unknown:
            raise click.BadParameter(f"unknown tag {', '.join(unknown)} (known: {', '.join(known_tags) or 'none'})",
                                     param_hint="--tag")
        tagged = [r.id for r in ruleset.rules if set(tags) & set(r.tags)]
        rules_filter = [r for r in (rules_filter or tagged) if r in tagged]
    if source:
        known_sources = sorted(store.source_states(db))
        if source not in known_sources:
            raise click.BadParameter(f"unknown source {source} (known: {', '.join(known_sources) or 'none'})",
                                     param_hint="--source")
    q = store.HitQuery(rules_filter, source, when_option(since), when_option(until), search, limit, suggested)
    try:
        rows = store.query_hits(db, q)
    except sqlite3.OperationalError as exc:  # a malformed FTS query
        if search:
            raise click.BadParameter(f"invalid search query ({exc}); see https://sqlite.org/fts5.html#full_text_query_syntax",
                                     param_hint="--search") from None
        raise
    records = [{"url": r["url"], "title": r["title"], "source": r["source"], "published": r["published"],
                "fetched": r["fetched"], "rules": r["rules"], "snippet": highlight(r["snippet"] or "", r["marks"]),
                "story": r["story"], "rule_versions": r["rule_versions"], "rules_modified": r["rules_mtime"]}
               for r in rows]
    if not as_json and not as_csv:
        _hits_table(rows)
        return
    if as_json:
        for rec in records:
            echo_json(rec)
    elif as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(["published", "source", "rules", "title", "url", "story", "snippet"])
        for rec in records:
            w.writerow([rec["published"], rec["source"], " ".join(rec["rules"]), rec["title"], rec["url"],
                        rec["story"], rec["snippet"]])


def _hits_table(records: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=shutil.get_terminal_size((120, 24)).columns)
    if not records:
        console.print("no hits")
        return
    table = Table(show_lines=False, expand=True)
    for col, kwargs in (("published (UTC)", {"no_wrap": True, "max_width": 16}), ("source", {"max_width": 18}),
                        ("rules", {"max_width": 18}), ("title and URL", {"ratio": 2}), ("snippet", {"ratio": 3})):
        table.add_column(col, overflow="ellipsis" if col != "title and URL" else "fold", **kwargs)
    for r in records:
        snippet = Text(r["snippet"] or "")
        for start, end in r["marks"]:
            snippet.stylize("bold yellow", start, end)
        title = Text(r["title"] or "")
        title.append("\n" + (r["url"] or ""), style="dim")
        table.add_row((r["published"] or "")[:16].replace("T", " "), r["source"], ", ".join(r["rules"]), title, snippet)
    console.print(table)


# --------------------------------------------------------------------------- status


@main.command()
@common(keywords=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of sources.")
@click.option("--check", "health", is_flag=True,
              help="Health check: exit 1 if the scheduler is not running or most sources are failing.")
@click.option("--deliveries", is_flag=True,
              help="Digests owed with an error, failed or of unknown outcome: last error and next attempt.")
def status(as_json: bool, health: bool, deliveries: bool, **kw) -> None:
    """Every source with its last poll, last success, failures, last error and next poll.

    Times are UTC. Digests that could not be delivered are listed after the sources
    (with --deliveries: only them; with --json: a JSON array of them).
    """
    from .status import health_problems, source_status

    s = settings(kw)
    db = store.connect_readonly(s.db)
    if deliveries:
        problems = store.delivery_problems(db)
        if as_json:
            echo_json(problems)
        else:
            _delivery_lines(problems, store.delivery_summary(db))
        return
    try:
        feeds = load_feeds(s.feeds)
    except ConfigError as exc:
        feeds = None
        if not as_json:
            click.echo(f"warning: {s.feeds} is invalid; showing stored sources\n{exc}", err=True)
    rows = source_status(db, feeds)
    if health:
        problems = health_problems(db, rows)
        for p in problems:
            click.echo(f"unhealthy: {p}", err=True)
        if not problems:
            click.echo("healthy")
        sys.exit(EXIT_RUNTIME if problems else 0)
    if as_json:
        echo_json(rows)
        return
    _status_table(rows, db)


def _status_table(rows: list[dict], db) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=shutil.get_terminal_size((140, 24)).columns)
    wide = console.width >= 120  # narrower: errors go under the table, wrapped, instead of a squeezed column
    table = Table(expand=True, caption="times in UTC", caption_justify="left")
    columns = ["id", "last poll", "last success", "fails", "items", "backlog", "next poll"] + (["health / last error"] if wide else [])
    for col in columns:
        table.add_column(col, overflow="fold" if col == "health / last error" else "ellipsis",
                         no_wrap=col != "health / last error")
    fmt = lambda v: (v or "-")[:16].replace("T", " ")  # noqa: E731
    notes = []
    for r in rows:
        style = "red" if r["consecutive_failures"] or r["problem"] in ("failing", "selector") else (
            "yellow" if r["problem"] == "silent" else None)
        note = r["last_error"] or ""
        if r["problem"] == "silent":
            note = f"silent since {fmt(r['silent_since'])}"
        elif r["problem"] == "selector":
            note = "selector matched nothing" + (f"; {note}" if note else "")
        if not r.get("enabled", True):
            note, style = "disabled (`borderwatch sources enable " + r["id"] + "`)", "dim"
        cells = [r["id"], fmt(r["last_poll"]), fmt(r["last_success"]), str(r["consecutive_failures"]),
                 str(r["items_seen"]), str(r["backlog"]) + (f" ({r['gave_up']} given up)" if r["gave_up"] else ""),
                 fmt(r["next_poll"])]
        table.add_row(*cells, *([Text(note)] if wide else []), style=style)
        if note and not wide:
            notes.append((r["id"], note, style))
    console.print(table)
    for sid, note, style in notes:
        console.print(Text(f"{sid}: {note}", style=style or ""))
    from .status import scheduler_state

    failing = sum(1 for r in rows if r["consecutive_failures"])
    console.print(f"{len(rows)} sources, {failing} failing; scheduler: {scheduler_state(db)[1]}", highlight=False)
    config_errors = store.get_meta(db, "config_errors")
    if config_errors:
        console.print(f"[red]configuration errors[/red] (seen by run at {config_errors[1]}; the last valid version is in force):")
        console.print(Text(config_errors[0]))
    _delivery_lines(store.delivery_problems(db), store.delivery_summary(db))


def _delivery_lines(problems: list[dict], summary: dict[str, int]) -> None:
    """Delivery counts, then each digest that is owed with an error, failed or unknown, with the reason."""
    if summary:
        click.echo("deliveries: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.items())))
    for p in problems:
        when = (f"; next attempt {p['next_attempt'].replace('T', ' ').rstrip('Z')} UTC"
                if p["status"] == "pending" and p["next_attempt"] else "")
        click.echo(f"  {p['status']} {p['subscriber']} ({p['period']}, {p['attempts']} attempts): "
                   f"{p['last_error'] or 'no error recorded'}{when}")
        if p["status"] == "unknown":
            click.echo(f"    the server may have it: check that mailbox, then `borderwatch digest resend {p['id']}` "
                       "sends it again")


# --------------------------------------------------------------------------- subscribers


@main.group()
def subscribers() -> None:
    """Add, list and remove digest subscribers."""


_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _subscription_options(update: bool):
    """--rules, --tags, --cadence, --hour, --weekday, --tz: defaults for add; for update, only what is given changes."""

    def default(value):
        return {} if update else {"default": value, "show_default": True}

    def wrap(fn):
        for opt in reversed([
            click.option("--rules", "rule_ids", help="Comma-separated rule ids to follow (default: all rules)."),
            click.option("--tags", help="Comma-separated rule tags to follow."),
            click.option("--cadence", type=click.Choice(["immediate", "hourly", "daily", "weekly"]), **default("daily")),
            click.option("--hour", type=click.IntRange(0, 23), help="Local hour for daily/weekly digests.", **default(7)),
            click.option("--weekday", type=click.Choice(_WEEKDAYS), help="Day for weekly digests.", **default("mon")),
            click.option("--tz", help="Time zone for hours and dates, e.g. America/Mexico_City.", **default("UTC")),
        ]):
            fn = opt(fn)
        return fn

    return wrap


def _describe(email, rules_list, tag_list, cadence, hour, tz) -> str:
    what = ", ".join((rules_list or []) + [f"tag:{t}" for t in tag_list or []]) or "all rules"
    return f"{email}: {what}, {cadence}" + (f" at {hour:02d}:00 {tz}" if cadence in ("daily", "weekly") else "")


@subscribers.command("add")
@common(feeds=False)
@click.argument("email")
@_subscription_options(update=False)
@config_errors
def subscribers_add(email, rule_ids, tags, cadence, hour, weekday, tz, **kw) -> None:
    """Subscribe EMAIL: an email address (one subscriber whatever its case), or an Apprise URL
    for a chat or webhook channel (slack://..., msteams://..., tgram://..., json://host/path;
    needs pip install 'borderwatch[notify]').

    An existing subscriber is refused: change it with `subscribers update`.
    The first digest goes out at the first scheduled slot after subscribing.
    """
    from .subscribers import validate_subscription

    s = settings(kw)
    ruleset = load_rules(s.keywords)
    try:
        email, rules_list, tag_list = validate_subscription(email, rule_ids, tags, tz, ruleset)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    db = store.connect(s.db)
    if store.find_subscriber(db, email):
        click.echo(f"error: {email} is already subscribed; change it with `borderwatch subscribers update {email} "
                   "--cadence ...` (only the options you give change)", err=True)
        sys.exit(EXIT_CONFIG)
    store.add_subscriber(db, email, rules_list, tag_list, cadence, hour, _WEEKDAYS.index(weekday), tz)
    click.echo("subscribed " + _describe(email, rules_list, tag_list, cadence, hour, tz))


@subscribers.command("update")
@common(feeds=False)
@click.argument("email")
@_subscription_options(update=True)
@config_errors
def subscribers_update(email, rule_ids, tags, cadence, hour, weekday, tz, **kw) -> None:
    """Change an existing subscription: only the options given change (--rules '' follows all rules)."""
    from .subscribers import validate_subscription

    s = settings(kw)
    ruleset = load_rules(s.keywords)
    db = store.connect(s.db)
    current = store.find_subscriber(db, email.strip())
    if current is None:
        click.echo(f"error: no subscriber {email.strip()}; add one with `borderwatch subscribers add`", err=True)
        sys.exit(EXIT_RUNTIME)
    try:
        _, rules_list, tag_list = validate_subscription(current["email"], rule_ids, tags, tz or current["tz"], ruleset)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    changes = {"cadence": cadence, "hour": hour, "tz": tz,
               "weekday": _WEEKDAYS.index(weekday) if weekday else None,
               "rules": rules_list if rule_ids is not None else None, "tags": tag_list if tags is not None else None}
    changes = {k: v for k, v in changes.items() if v is not None or (k == "rules" and rule_ids is not None)
               or (k == "tags" and tags is not None)}
    store.update_subscriber(db, current["email"], changes)
    new = store.find_subscriber(db, current["email"])
    click.echo("updated " + _describe(new["email"], new["rules"], new["tags"], new["cadence"], new["hour"], new["tz"]))


@subscribers.command("list")
@common(feeds=False, keywords=False)
@click.option("--json", "as_json", is_flag=True)
def subscribers_list(as_json: bool, **kw) -> None:
    """List subscribers."""
    db = store.connect_readonly(settings(kw).db)
    rows = store.subscribers(db)
    if as_json:
        echo_json([{k: r[k] for k in ("email", "rules", "tags", "cadence", "hour", "weekday", "tz", "created")} for r in rows])
        return
    if not rows:
        click.echo("no subscribers (add one with `borderwatch subscribers add EMAIL`)")
    for r in rows:
        what = ", ".join((r["rules"] or []) + [f"tag:{t}" for t in r["tags"] or []]) or "all rules"
        click.echo(f"{r['email']}\t{r['cadence']}\t{what}\t{r['tz']}")


@subscribers.command("remove")
@common(feeds=False, keywords=False)
@click.argument("target")
def subscribers_remove(target: str, **kw) -> None:
    """Unsubscribe TARGET: an address (any case) or the unsubscribe token from a digest
    (its List-Unsubscribe header or footer). Its delivery history is removed too."""
    db = store.connect(settings(kw).db)
    removed = store.remove_subscriber(db, target.strip())
    if removed is None:
        click.echo(f"error: no subscriber with the address or token {target.strip()!r} "
                   "(`borderwatch subscribers list` shows them)", err=True)
        sys.exit(EXIT_RUNTIME)
    click.echo(f"removed {removed}")


# --------------------------------------------------------------------------- digest


@main.group()
def digest() -> None:
    """Preview and send digest emails."""


@digest.command("preview")
@common(feeds=False)
@click.option("--subscriber", "email", help="Whose digest (default: the first subscriber).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the HTML here instead of printing the text version.")
@config_errors
def digest_preview(email: str | None, out: str | None, **kw) -> None:
    """Render what the next digest would contain; sends and marks nothing."""
    from .digest.preview import preview

    s = settings(kw)
    if out and not Path(out).resolve().parent.is_dir():
        raise click.BadParameter(f"directory {Path(out).parent} does not exist; create it first", param_hint="--out")
    db = store.connect_readonly(s.db)
    sub = store.find_subscriber(db, email.strip()) if email else None
    if email and sub is None:
        click.echo(f"error: no subscriber {email.strip()} (`borderwatch subscribers list` shows them)", err=True)
        sys.exit(EXIT_RUNTIME)
    if not email and not store.subscribers(db):
        click.echo("nothing to preview: there are no subscribers (add one with `borderwatch subscribers add`)", err=True)
        return
    result = preview(db, load_rules(s.keywords), sub["email"] if sub else None)
    if result is None:
        who = sub["email"] if sub else "any subscriber"
        click.echo(f"nothing to preview: no new hits for {who} since their last digest (or since subscribing)", err=True)
        return
    if out:
        Path(out).write_text(result.html, encoding="utf-8")
        click.echo(f"wrote {out}: {result.subject}")
    else:
        click.echo(f"Subject: {result.subject}\n\n{result.text}")


@digest.command("send")
@common(feeds=False)
@click.option("--subscriber", "email", help="Only this subscriber.")
@click.option("--dry-run", is_flag=True, help="Show who is due and how many hits, send nothing.")
@click.option("--outbox", default="outbox", show_default=True, help="Directory for .eml files when SMTP_HOST is unset.")
@click.option("--json", "as_json", is_flag=True)
@config_errors
def digest_send(email: str | None, dry_run: bool, outbox: str, as_json: bool, **kw) -> None:
    """Send the digests that are due now (SMTP from the environment, else .eml files in ./outbox/)."""
    from .digest.preview import due_now
    from .digest.send import send_due, transport_from_env

    s = settings(kw)
    db = store.connect(s.db)
    ruleset = load_rules(s.keywords)
    if dry_run:
        due = due_now(db, ruleset, email)
        if as_json:
            echo_json(due)
        else:
            for d in due:
                click.echo(f"{d['subscriber']}: {d['period']}, {d['stories']} stories")
            click.echo(f"{len(due)} digest(s) due; nothing sent (dry run)")
        return
    report = send_due(db, ruleset, transport=transport_from_env(outbox), email=email)
    if as_json:
        echo_json(report.as_dict())
    elif report.busy:
        click.echo(f"another process ({report.busy}) is delivering digests now; it sends what is due, "
                   "so this one sent nothing")
    else:
        click.echo(f"digests: {report.created} new, {report.sent} sent, {report.retry} to retry, "
                   f"{report.failed} failed, {report.unknown} unknown")
        for e in report.errors:
            click.echo(f"  {e}", err=True)
        for f in report.files:
            click.echo(f"  wrote {f}")
    sys.exit(EXIT_RUNTIME if report.retry or report.failed else 0)


@digest.command("resend")
@common(feeds=False, keywords=False)
@click.argument("delivery_id", type=int)
@click.option("--outbox", default="outbox", show_default=True, help="Directory for .eml files when SMTP_HOST is unset.")
@click.option("--json", "as_json", is_flag=True)
def digest_resend(delivery_id: int, outbox: str, as_json: bool, **kw) -> None:
    """Send again the digest DELIVERY_ID whose outcome is unknown (the connection broke after the
    server had the whole message: check the recipient's mailbox first) or that failed.
    `borderwatch status` lists such deliveries with their ids."""
    from .digest.send import resend, transport_from_env

    db = store.connect(settings(kw).db)
    try:
        report = resend(db, delivery_id, transport=transport_from_env(outbox))
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_RUNTIME)
    if as_json:
        echo_json(report.as_dict())
    elif report.busy:
        click.echo(f"error: another process ({report.busy}) is delivering digests now; try again when it is done", err=True)
    elif report.sent:
        click.echo(f"delivery {delivery_id}: sent" + (f" ({report.files[0]})" if report.files else ""))
    else:
        click.echo(f"delivery {delivery_id}: not sent: {'; '.join(report.errors)}", err=True)
    sys.exit(0 if report.sent else EXIT_RUNTIME)


# --------------------------------------------------------------------------- serve


@main.command()
@common()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 to expose it).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int, **kw) -> None:
    """The web surface (pip install 'borderwatch[serve]'): dashboard at /, Atom feeds at
    /rules/ID.atom and /tags/TAG.atom, unsubscribe links at /unsubscribe/TOKEN, /healthz, /metrics.

    Links in feeds and digests use BORDERWATCH_PUBLIC_URL (e.g. https://watch.example.org)
    when set. Reads never create the database; no page lists subscribers.
    """
    try:
        from .web.app import WebConfig, serve as run_server
    except ImportError as exc:
        click.echo(f"error: serve needs the serve extra ({exc.name} is missing): pip install 'borderwatch[serve]'", err=True)
        sys.exit(EXIT_RUNTIME)
    s = settings(kw)
    if not Path(s.db).exists():
        click.echo(f"note: no database at {s.db} yet; pages will say so until `borderwatch run` creates it", err=True)
    run_server(WebConfig(s.db, s.feeds, s.keywords, s.public_url), host, port)


# --------------------------------------------------------------------------- misc


@main.command()
@common(feeds=False, keywords=False)
@click.option("--older-than", default="365d", show_default=True, help="Delete articles fetched before this (e.g. 365d).")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def prune(older_than: str, dry_run: bool, **kw) -> None:
    """Delete old articles that have no hits (hits are never deleted), then VACUUM."""
    cutoff = when_option(older_than)
    if dry_run:
        n = store.prunable(store.connect_readonly(settings(kw).db), cutoff)
        click.echo(f"would delete {n} articles without hits fetched before {cutoff} (dry run: nothing deleted)")
        return
    n = store.prune(store.connect(settings(kw).db), cutoff)
    click.echo(f"deleted {n} articles without hits fetched before {cutoff}")


@main.command()
@common(feeds=False, keywords=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True)
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
def browse(host: str, port: int, no_open: bool, **kw) -> None:
    """Open the database in Datasette with canned queries (pip install 'borderwatch[browse]')."""
    from .browse import serve_command

    db_path = settings(kw).db
    store.connect_readonly(db_path).close()  # it exists and is a borderwatch database
    try:
        cmd = serve_command(db_path, host, port, open_browser=not no_open)
    except RuntimeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_RUNTIME)
    os.execvp(cmd[0], cmd)


@main.group()
def opml() -> None:
    """Import and export the feed list as OPML."""


@opml.command("export")
@common(keywords=False, db=False)
@config_errors
def opml_export(**kw) -> None:
    """Print feeds.yaml as OPML."""
    from .opml import export_opml

    click.echo(export_opml(load_feeds(settings(kw).feeds)), nl=False)


@opml.command("import")
@common(keywords=False, db=False)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--print", "print_only", is_flag=True, help="Print the YAML of the new sources instead of adding them.")
@click.option("--strict", is_flag=True, help="Import nothing if any entry is rejected.")
@click.option("--json", "as_json", is_flag=True, help='Print {"added": [...], "rejected": [...], "known": N}.')
@config_errors
def opml_import(file: str, print_only: bool, strict: bool, as_json: bool, **kw) -> None:
    """Add the feeds (and exported page sources) of an OPML FILE to feeds.yaml.

    Each entry is checked first; rejected entries are listed with the reason and the valid
    ones are added (with --strict: none if any is rejected). feeds.yaml keeps its comments,
    the whole result is validated before it is written, and the write is atomic.
    Exit status 1 if an entry was rejected.
    """
    from .feedsfile import EditError, append_sources, current, edit
    from .opml import entries, import_opml, sources_yaml

    feeds_path = settings(kw).feeds
    existing = current(feeds_path)
    try:
        result = import_opml(Path(file).read_bytes(), existing)
    except Exception as exc:  # defusedxml and ElementTree parse errors
        raise click.BadParameter(f"{file} is not a valid OPML file: {str(exc).splitlines()[0]}", param_hint="FILE") from None
    for what, why in result.rejected:
        click.echo(f"rejected {what}: {why}", err=True)
    write = result.new and not print_only and not (strict and result.rejected)
    if print_only and result.new:
        click.echo(sources_yaml(result.new), nl=False)
    elif write:
        try:
            edit(feeds_path, lambda doc: append_sources(doc, entries(result.new)))
        except EditError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_RUNTIME)
    if as_json:
        echo_json({"added": [c.__dict__ for c in result.new] if write else [],
                   "rejected": [{"entry": w, "reason": r} for w, r in result.rejected], "known": result.known})
    elif not print_only:
        verdict = (f"added {len(result.new)} source{'s' if len(result.new) != 1 else ''} to {feeds_path}" if write
                   else "nothing added" + (" (--strict: some entries were rejected)" if strict and result.rejected and result.new else ""))
        click.echo(f"{verdict}; {len(result.rejected)} rejected, {result.known} already present")
    sys.exit(EXIT_RUNTIME if result.rejected else 0)


# --------------------------------------------------------------------------- sources


@main.group()
def sources() -> None:
    """Add, disable, enable and test sources; feeds.yaml is edited in place (comments kept,
    validated before writing, written atomically)."""


def _feeds_path(kw: dict) -> str:
    return settings(kw).feeds


@sources.command("add")
@common(keywords=False, db=False)
@click.argument("url")
@click.option("--id", "source_id", help="Source id ([a-z0-9-]; default: from the site's name).")
@click.option("--name", help="Display name (default: the feed's or page's title).")
@click.option("--json", "as_json", is_flag=True, help="Print the added source as JSON.")
@config_errors
def sources_add(url: str, source_id: str | None, name: str | None, as_json: bool, **kw) -> None:
    """Add the site at URL: its feed (the URL itself, the page's <link rel="alternate">, or a common
    feed path such as /feed), or a page source with a guessed link_selector when it has no feed."""
    from .config import ID_RE
    from .feedsfile import append_sources, clean_text, current, edit, new_source
    from .opml import slug, url_problem
    from .sources import discover_sync

    url = url.strip()
    if problem := url_problem(url):
        raise click.BadParameter(f"{url!r}: {problem}", param_hint="URL")
    if source_id is not None and (not ID_RE.match(source_id) or len(source_id) > 60):
        raise click.BadParameter(f"{source_id!r} must match [a-z0-9-] (for example dea-press)", param_hint="--id")
    path = _feeds_path(kw)
    existing = current(path)
    by_url = {s.url: s.id for s in existing.sources} if existing else {}
    if url in by_url:
        click.echo(f"error: {url} is already in {path} as {by_url[url]}", err=True)
        sys.exit(EXIT_CONFIG)
    found = discover_sync(url)
    if found.url in by_url:
        click.echo(f"error: its feed {found.url} is already in {path} as {by_url[found.url]}", err=True)
        sys.exit(EXIT_CONFIG)
    known_ids = {s.id for s in existing.sources} if existing else set()
    label = clean_text(name or found.name or (urlsplit_host(found.url)))
    if source_id in known_ids:
        click.echo(f"error: the id {source_id} is taken in {path}; choose another with --id", err=True)
        sys.exit(EXIT_CONFIG)
    sid, n = source_id or slug(label), 2
    base = sid
    while sid in known_ids:
        sid, n = f"{base}-{n}", n + 1
    edit(path, lambda doc: append_sources(doc, [new_source(sid, found.url, label or sid, found.type, found.link_selector)]))
    record = {"id": sid, "name": label or sid, "url": found.url, "type": found.type, "link_selector": found.link_selector,
              "how": found.how, "items": found.entries}
    if as_json:
        echo_json(record)
        return
    click.echo(f"added {sid} to {path}: {found.type} {found.url}" + (f" (link_selector {found.link_selector!r})"
               if found.link_selector else ""))
    click.echo(f"  {found.how}; {found.entries} items there now. Try it: borderwatch sources test {sid}")


def urlsplit_host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


def _set_enabled(kw: dict, source_id: str, enabled: bool) -> None:
    from .errors import NotFound
    from .feedsfile import edit, set_enabled, source_ids

    path = _feeds_path(kw)

    def change(doc):
        if not set_enabled(doc, source_id, enabled):
            raise NotFound(f"no source {source_id} in {path} (known: {', '.join(map(str, source_ids(doc))) or 'none'})")

    edit(path, change)
    click.echo(f"{'enabled' if enabled else 'disabled'} {source_id} in {path}"
               + ("" if enabled else " (kept with its history; `borderwatch sources enable` brings it back)"))


@sources.command("disable")
@common(keywords=False, db=False)
@click.argument("source_id", metavar="ID")
@config_errors
def sources_disable(source_id: str, **kw) -> None:
    """Stop polling source ID (sets enabled: false; a running `run` picks it up within seconds)."""
    _set_enabled(kw, source_id, False)


@sources.command("enable")
@common(keywords=False, db=False)
@click.argument("source_id", metavar="ID")
@config_errors
def sources_enable(source_id: str, **kw) -> None:
    """Poll source ID again."""
    _set_enabled(kw, source_id, True)


@sources.command("test")
@common()
@click.argument("target", metavar="ID|URL")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@config_errors
def sources_test(target: str, as_json: bool, **kw) -> None:
    """Poll a source (an ID from feeds.yaml, or a URL) once and show what would be new and what
    would match; stores nothing. Exit status 1 if the poll failed."""
    from .config import Source
    from .rules import compile_rules
    from .sources import discover_sync, trial_poll

    s = settings(kw)
    feeds = load_feeds(s.feeds) if Path(s.feeds).exists() else None
    source = feeds.get(target) if feeds else None
    if source is None and feeds:
        source = next((x for x in feeds.sources if x.url == target), None)
    if source is None:
        if "://" not in target:
            known = ", ".join(x.id for x in feeds.sources) if feeds else "none"
            raise click.BadParameter(f"no source {target} in {s.feeds} (known: {known}); or give a URL",
                                     param_hint="ID|URL")
        found = discover_sync(target.strip())
        source = Source(id="test", url=found.url, name=found.name, type=found.type, link_selector=found.link_selector,
                        fetch_articles=found.type == "page")
    matcher = compile_rules(load_rules(s.keywords))
    db = store.connect_readonly(s.db) if Path(s.db).exists() else store.connect(":memory:")
    result = trial_poll(source, db, matcher)
    new = [{"title": a.title, "url": a.url, "published": a.published,
            "matches": [{"rule": h.rule, "terms": h.terms} for h in a.hits]} for a in result.new]
    if as_json:
        echo_json({"source": source.id, "url": source.url, "type": source.type, "ok": result.ok, "error": result.error,
                   "items": result.items, "already_stored": result.already_stored, "new": new})
    elif not result.ok:
        click.echo(f"{source.id} ({source.url}): failed: {result.error}", err=True)
    else:
        matching = sum(1 for a in new if a["matches"])
        click.echo(f"{source.id} ({source.type} {source.url}): ok, {result.items} items, {len(new)} would be new "
                   f"({matching} matching a rule), {result.already_stored} already stored; nothing was stored")
        for a in new:
            click.echo(f"  new: {a['title'][:100]}  {a['url']}")
            for m in a["matches"]:
                click.echo(f"    matches {m['rule']}: {', '.join(m['terms'])}")
    sys.exit(0 if result.ok else EXIT_RUNTIME)


@main.command()
@click.option("--dir", "directory", default=".", show_default=True, help="Where to put demo.db and outbox/.")
@click.option("--keywords", "keywords_path", envvar="BORDERWATCH_KEYWORDS", default=None,
              help="Rule file (default: ./keywords.yaml if present, else the bundled one).")
def demo(directory: str, keywords_path: str | None) -> None:
    """Offline tour: serve bundled sample feeds on 127.0.0.1, run one cycle into a fresh
    database, write the digest to ./outbox/, and say where to look."""
    from .demo import run_demo

    setup_logging("warning", "human")
    try:
        run_demo(Path(directory), keywords_path, echo=click.echo)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        sys.exit(EXIT_CONFIG)


if __name__ == "__main__":  # pragma: no cover
    main()

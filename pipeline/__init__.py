"""borderwatch: poll news sources, match keyword rules, store hits, email digests.

As a library::

    import pipeline

    with pipeline.open(db="borderwatch.db", feeds="feeds.yaml", keywords="keywords.yaml") as bw:
        bw.poll_once(send_digests=False)
        for row in bw.hits(rules=["fentanyl-seizures"], since="7d"):
            print(row.published, row.title, row.snippet.marked())
        report = bw.backtest(since="30d")

The names below are imported on first use, so worker processes that import one stage module
(e.g. the feed-parser sandbox) do not load the whole library.
"""

__version__ = "0.1.0"
USER_AGENT = f"borderwatch/{__version__} (+https://github.com/borderwatch/borderwatch; news monitor)"

_EXPORTS = {
    "open": "app", "Borderwatch": "app", "CheckReport": "app", "OPMLImport": "opml",
    "Settings": "settings",
    "HitRow": "models", "Snippet": "models", "SourceState": "models", "Subscriber": "models", "Delivery": "models",
    "Hit": "rules.match", "Transport": "digest.send", "Backtest": "rules.backtest", "StatusReport": "status",
    "BorderwatchError": "errors", "ConfigError": "errors", "ConfigIssue": "errors", "InvalidArgument": "errors",
    "InvalidQuery": "errors", "NotFound": "errors", "AlreadyExists": "errors", "MissingExtra": "errors", "AlreadyRunning": "errors", "StorageError": "errors",
    "FetchError": "errors", "Blocked": "errors", "DeliveryError": "errors", "TransientError": "errors",
    "PermanentError": "errors", "UnknownOutcome": "errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

"""/metrics in the Prometheus text format, computed from the database at scrape time (totals only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .. import store


class _Snapshot:
    def __init__(self, db, feeds, now):
        from ..status import source_status

        self.data = store.metrics_snapshot(db)
        self.rows = source_status(db, feeds, now)

    def collect(self):
        c = self.data["counts"]
        for name, key, doc in (("articles", "articles", "Articles stored"), ("stories", "stories", "Stories stored"),
                               ("sources", "sources", "Sources known to the database")):
            yield GaugeMetricFamily(f"borderwatch_{name}", doc, value=c[key])
        hits = GaugeMetricFamily("borderwatch_hits", "Hits stored, by rule", labels=["rule"])
        for rule, n in sorted(self.data["hits_by_rule"].items()):
            hits.add_metric([rule], n)
        yield hits
        deliveries = GaugeMetricFamily("borderwatch_deliveries", "Digest deliveries, by state", labels=["status"])
        for status, n in sorted(self.data["deliveries"].items()):
            deliveries.add_metric([status], n)
        yield deliveries
        yield GaugeMetricFamily("borderwatch_subscribers_active", "Active subscribers (a count, no addresses)",
                                value=self.data["subscribers_active"])
        health = GaugeMetricFamily("borderwatch_sources_by_health", "Sources by health", labels=["health"])
        kinds = {"ok": 0, "failing": 0, "silent": 0, "selector": 0, "disabled": 0}
        for r in self.rows:
            kinds["disabled" if not r["enabled"] else (r["problem"] or "ok")] += 1
        for kind, n in kinds.items():
            health.add_metric([kind], n)
        yield health
        failures = GaugeMetricFamily("borderwatch_source_consecutive_failures", "Consecutive failed polls", labels=["source"])
        for r in self.rows:
            failures.add_metric([r["id"]], r["consecutive_failures"])
        yield failures


def render_metrics(db, feeds, now) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(db, feeds, now))
    return generate_latest(registry), CONTENT_TYPE_LATEST

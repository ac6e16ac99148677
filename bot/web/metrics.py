"""GET /healthz (database + scheduler liveness) and GET /metrics (Prometheus, computed at scrape time,
only with the `[web] metrics_token` bearer token: its subscriber counts move when a sign-up is new)."""
from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.store import bounces as bounce_store
from bot.store import channels as channel_store
from bot.store import dashboard, stats
from bot.store import subscribers as subs

if TYPE_CHECKING:
    from bot.web.context import Web

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def histogram(values: list[float], buckets: tuple[float, ...] = LATENCY_BUCKETS) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets (with +Inf) and the sum, from raw samples."""
    out = [(floatToGoString(b), float(sum(1 for v in values if v <= b))) for b in buckets]
    out.append(("+Inf", float(len(values))))
    return out, float(sum(values))


class StoreCollector(Collector):
    """Reads current figures from the database on every scrape (no in-process counters to lose)."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """Yield every Flashbot metric family."""
        items = GaugeMetricFamily("flashbot_items", "Stored feed items", labels=["flash"])
        for is_flash, n in sorted(dashboard.item_counts(self.engine).items()):
            items.add_metric(["true" if is_flash else "false"], n)
        yield items
        dels = GaugeMetricFamily("flashbot_deliveries", "Deliveries by channel and state (compacted ones included)", labels=["channel", "state"])
        for channel, states in sorted(dashboard.delivery_counts(self.engine).items()):
            for state, n in sorted(states.items()):
                dels.add_metric([channel, state], n)
        yield dels
        lat = HistogramMetricFamily("flashbot_send_latency_seconds",
                                    "Detection to first delivery of Flash items of the last 24 h", labels=["channel"])
        for channel, values in sorted(dashboard.latency_samples(self.engine).items()):
            buckets, total = histogram(values)
            lat.add_metric([channel], buckets, total)
        yield lat
        yield self._alert_latency()
        yield from self._totals()
        yield from self._sources()
        people = GaugeMetricFamily("flashbot_subscribers", "Subscribers by status", labels=["status"])
        for status, modes in sorted(subs.counts(self.engine).items()):
            people.add_metric([status], sum(modes.values()))
        yield people
        yield from self._bounces()

    def _bounces(self) -> Iterator[Metric]:
        received = CounterMetricFamily("flashbot_bounces_received", "Bounce mails and provider events stored", labels=["source"])
        processed = CounterMetricFamily("flashbot_bounces_processed", "Bounce mails and events processed",
                                        labels=["kind", "result"])
        left = CounterMetricFamily("flashbot_bounce_removals", "Subscribers suppressed or unsubscribed by bounces, "
                                   "complaints and mailto unsubscribes", labels=["action", "reason"])
        for name, value in sorted(bounce_store.counters(self.engine).items()):
            parts = name.split(":")
            if parts[0] == "received" and len(parts) == 2:
                received.add_metric([parts[1]], value)
            elif parts[0] == "processed" and len(parts) == 3:
                processed.add_metric(parts[1:], value)
            elif parts[0] in ("suppressed", "unsubscribed") and len(parts) == 2:
                left.add_metric(parts, value)
        yield from (received, processed, left)
        waiting = GaugeMetricFamily("flashbot_bounce_mails", "Stored bounce mails and events by state", labels=["state"])
        per_state: dict[str, int] = {}
        for (state, _), n in bounce_store.state_counts(self.engine).items():
            per_state[state] = per_state.get(state, 0) + n
        for state, n in sorted(per_state.items()):
            waiting.add_metric([state], n)
        yield waiting

    def _alert_latency(self) -> Metric:
        """Every alert's first send per channel, from publication and from detection (all time)."""
        lat = HistogramMetricFamily("flashbot_alert_latency_seconds",
                                    "Publication or detection to the first send of each alert, per channel",
                                    labels=["channel", "origin"])
        for (channel, origin), h in sorted(dashboard.alert_latency_histogram(self.engine).items()):
            buckets = [(floatToGoString(b), float(n)) for b, n in zip(dashboard.ALERT_BUCKETS, h["buckets"])]
            lat.add_metric([channel, origin], buckets + [("+Inf", float(h["count"]))], float(h["sum"]))
        return lat

    def _totals(self) -> Iterator[Metric]:
        """Counters kept by the stats table: they only grow, whatever housekeeping prunes."""
        families = [
            (stats.DELIVERY, CounterMetricFamily("flashbot_delivery_outcomes",
                                                 "Deliveries that ended, by channel and outcome (sent, failed, bounced)",
                                                 labels=["channel", "outcome"]), lambda label, o: [label, o]),
            (stats.POLL, CounterMetricFamily("flashbot_polls", "Source polls by outcome (ok, not_modified, error)",
                                             labels=["outcome"]), lambda label, o: [o]),
            (stats.SUBSCRIBER, CounterMetricFamily("flashbot_subscriber_events",
                                                   "Sign-ups, confirmations, unsubscribes and suppressions",
                                                   labels=["event"]), lambda label, o: [o]),
            (stats.BOUNCE, CounterMetricFamily("flashbot_bounce_outcomes",
                                               "Bounces and complaints recorded on sent mails (hard, soft, complaint)",
                                               labels=["kind"]), lambda label, o: [o]),
        ]
        for metric, family, labels in families:
            for (label, outcome), n in sorted(stats.totals(self.engine, metric).items()):
                family.add_metric(labels(label, outcome), n)
            yield family

    def _sources(self) -> Iterator[Metric]:
        failing = GaugeMetricFamily("flashbot_source_consecutive_failures", "Consecutive failed polls", labels=["source"])
        paused = GaugeMetricFamily("flashbot_source_paused", "1 when the source is paused", labels=["source"])
        errors = GaugeMetricFamily("flashbot_sources_in_error", "Sources whose last poll failed")
        n_err = 0
        for s in dashboard.source_list(self.engine):
            failing.add_metric([s["name"]], s["consecutive_failures"] or 0)
            paused.add_metric([s["name"]], 1 if s["paused"] else 0)
            n_err += 1 if s["consecutive_failures"] else 0
        errors.add_metric([], n_err)
        yield from (failing, paused, errors)
        chan = GaugeMetricFamily("flashbot_channel_paused", "1 when a channel is paused", labels=["channel"])
        for c in channel_store.channel_states(self.engine):
            chan.add_metric([c["channel"]], 1 if c["paused"] else 0)
        yield chan


def routes(w: Web) -> list[Route]:
    """/healthz and /metrics, bound to a registry of this app instance only."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(w.engine))

    def _scrape() -> bytes:
        return generate_latest(registry)

    token = (w.cfg.web.metrics_token or "").encode()

    async def metrics(request: Request) -> Response:
        if not token:
            # Off without a token: it would tell anyone whether a signed-up address was new.
            return Response("Not Found\n", status_code=404, media_type="text/plain")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "replace"), token):
            return Response("Unauthorized\n", status_code=401, media_type="text/plain",
                            headers={"www-authenticate": 'Bearer realm="flashbot-metrics"'})
        try:
            body = await w.db(_scrape)
        except Exception:  # noqa: BLE001 - a scrape must answer, not crash
            log.exception("metrics scrape failed")
            return Response("metrics unavailable\n", status_code=503, media_type="text/plain")
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def _ping() -> None:
        with w.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def healthz(request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await w.db(_ping)
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["database"] = f"error: {type(exc).__name__}"
        if w.scheduler_alive is None:
            checks["scheduler"] = "not running in this process"
        else:
            try:
                checks["scheduler"] = "ok" if w.scheduler_alive() else "stalled"
            except Exception as exc:  # noqa: BLE001
                checks["scheduler"] = f"error: {type(exc).__name__}"
        healthy = checks["database"] == "ok" and checks["scheduler"] in ("ok", "not running in this process")
        return JSONResponse({"status": "ok" if healthy else "fail", "checks": checks},
                            status_code=200 if healthy else 503)

    return [Route("/metrics", metrics, methods=["GET"]), Route("/healthz", healthz, methods=["GET"])]

"""Prometheus metrics, computed at scrape time from the shared stores (Redis counters, queues, heartbeats).

Mount the view: `path("metrics/", djtasks.metrics.view)`. Staff users may read it, and so may a
scraper sending `Authorization: Bearer <DJTASKS["METRICS_TOKEN"]>`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import defaultdict
from collections.abc import Iterator

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.core.states import RETRY
from djtasks.record.models import DeadLetter
from djtasks.transport import decode
from djtasks.transport.broker import Broker, get_broker
from djtasks.transport.telemetry import BUCKETS

logger = logging.getLogger("djtasks")


class DjtasksCollector(Collector):
    """Read djtasks' counters, queues and heartbeats on each collect (workers are other processes)."""

    def __init__(self, broker: Broker | None = None):
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        broker = self.broker or get_broker()
        done, runtime, wait = broker.read_stats()
        finished = CounterMetricFamily(
            "djtasks_tasks", "Task attempts finished, by task, queue and state.", labels=["task", "queue", "state"]
        )
        retries = CounterMetricFamily(
            "djtasks_task_retries", "Task attempts that ended in a retry.", labels=["task", "queue"]
        )
        for (name, queue, state), count in sorted(done.items()):
            finished.add_metric([name, queue, state], count)
            if state == RETRY:
                retries.add_metric([name, queue], count)
        yield finished
        yield retries
        yield _histogram(
            "djtasks_task_runtime_seconds", "Time tasks spent running.", runtime, broker.stats_key("runtime")
        )
        yield _histogram(
            "djtasks_task_wait_seconds", "Time tasks waited between ready and started.", wait, broker.stats_key("wait")
        )
        depth = GaugeMetricFamily(
            "djtasks_queue_depth", "Messages in each queue, by where they wait.", labels=["queue", "state"]
        )
        for queue, counts in broker.queue_stats().items():
            for state, count in counts.items():
                depth.add_metric([queue, state], count)
        yield depth
        live = broker.workers()
        yield GaugeMetricFamily("djtasks_workers_online", "Workers whose heartbeat is alive.", value=len(live))
        active = GaugeMetricFamily("djtasks_worker_active_tasks", "Tasks each worker holds now.", labels=["worker"])
        processed = CounterMetricFamily(
            "djtasks_worker_processed", "Tasks each live worker has finished.", labels=["worker"]
        )
        for worker_id, raw in sorted(live.items()):
            info = raw if isinstance(raw, dict) else decode.loads(raw)[0]
            held = info.get("active") if isinstance(info, dict) else None
            tally = decode.integer(info.get("processed", 0)) if isinstance(info, dict) else None
            if not isinstance(held, list) or tally is None:
                decode.skipped(
                    broker.coordination_key("worker", worker_id), "heartbeat", "not a heartbeat of this version"
                )
                continue
            active.add_metric([worker_id], len(held))
            processed.add_metric([worker_id], tally)
        yield active
        yield processed
        try:
            letters = DeadLetter.objects.count()
        except DatabaseError as exc:
            logger.warning("Metrics: dead letters not counted (%s)", exc)
        else:
            yield GaugeMetricFamily("djtasks_dead_letters", "Dead letters kept in the database.", value=letters)


def _histogram(name: str, documentation: str, fields: dict[tuple[str, ...], float], key: str) -> HistogramMetricFamily:
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
    sums: dict[str, float] = defaultdict(float)
    slots = {str(index): index for index in range(len(BUCKETS) + 1)}
    for (task_name, slot), value in fields.items():
        if slot == "sum":
            sums[task_name] = value
        elif slot in slots:
            counts[task_name][slots[slot]] = int(value)
        else:
            decode.skipped(key, json.dumps([task_name, slot]), f"no bucket {slot!r} (0..{len(BUCKETS)}, or sum)")
    family = HistogramMetricFamily(name, documentation, labels=["task"])
    for task_name in sorted(counts):
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, BUCKETS), "+Inf"], counts[task_name], strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric([task_name], buckets, sums[task_name])
    return family


def render(broker: Broker | None = None) -> bytes:
    """Return the metrics in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DjtasksCollector(broker))
    return generate_latest(registry)


def allowed(request: HttpRequest) -> bool:
    """Staff users may read the metrics, and so may a request bearing METRICS_TOKEN."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = get_settings().METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())


@never_cache
@require_GET
def view(request: HttpRequest) -> HttpResponse:
    """Serve the metrics to staff users and to scrapers bearing the token."""
    if not allowed(request):
        response = HttpResponse(
            "Authentication required: log in as staff or send the metrics bearer token.\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="djtasks metrics"'
        return response
    try:
        body = render()
    except BrokerUnavailable as exc:
        return HttpResponse(f"Redis unavailable: {exc}\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)

"""List filters whose choices come from the registry and Redis, never from a DISTINCT over the table."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from djtasks.core import registry
from djtasks.core.conf import get_settings
from djtasks.core.exceptions import BrokerUnavailable
from djtasks.transport.broker import get_broker

logger = logging.getLogger("djtasks")


class ChoicesFilter(admin.SimpleListFilter):
    """Filter on one column by exact value; the choices are computed, the selected value always kept."""

    field: str

    def choices_from(self, request: HttpRequest) -> list[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = set(self.choices_from(request))
        selected = self.value()
        if selected:
            values.add(selected)
        return [(v, v) for v in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class TaskNameFilter(ChoicesFilter):
    title = _("task name")
    parameter_name = "task_name"
    field = "task_name"

    def choices_from(self, request: HttpRequest) -> list[str]:
        return registry.names()


class QueueFilter(ChoicesFilter):
    title = _("queue")
    parameter_name = "queue"
    field = "queue"

    def choices_from(self, request: HttpRequest) -> list[str]:
        queues = {get_settings().DEFAULT_QUEUE}
        queues.update(t.queue_name for t in (registry.get(n) for n in registry.names()) if t is not None)
        try:
            queues.update(get_broker().queue_stats())
        except BrokerUnavailable as exc:
            logger.warning("Queue filter without Redis's queues: %s", exc)
        return sorted(queues)


class WorkerFilter(ChoicesFilter):
    """Workers online and those seen recently (gone ones too), from Redis: the rows are never scanned for them."""

    title = _("worker")
    parameter_name = "worker"
    field = "worker"

    def choices_from(self, request: HttpRequest) -> list[str]:
        try:
            broker = get_broker()
            return sorted({*broker.workers(), *broker.seen_workers()})
        except BrokerUnavailable as exc:
            logger.warning("Worker filter without Redis's workers: %s", exc)
            return []

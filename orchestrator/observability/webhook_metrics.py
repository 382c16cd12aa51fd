"""The webhook sender's metrics, read from its tallies at each scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from orchestrator.domain.webhook_delivery import Verdict

# The outbox's word for a try to be made again is its row's status, `pending`; the metric says what
# happened to the try.
_RESULT = {verdict.value: verdict.value for verdict in Verdict} | {Verdict.RETRY.value: "retry"}


class WebhookDeliveryCounts(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """`counts`: tries settled by this process so far, by verdict."""
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "sespcl_webhook_deliveries",
            "Status callback tries settled, by result (pending: to be tried again)",
            labels=["result"],
        )
        counts = dict(self._counts())  # a copy: the sender's loop updates it meanwhile
        for verdict, result in _RESULT.items():
            family.add_metric([result], counts.get(verdict, 0))
        yield family

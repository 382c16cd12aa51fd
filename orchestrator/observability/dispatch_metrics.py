"""The dispatcher's metrics: counters and histograms as calls go (the DispatchMeter port), and
gauges read from the dispatcher at scrape time (its nodes, its held events)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.domain.interaction import AnsweredBy
from orchestrator.observability.exporter import DURATION_BUCKETS, LATENCY_BUCKETS
from orchestrator.services.dispatch.meter import NodeView

# The digits a DTMF key can be: anything else is never a label (a label per value would grow
# without bound).
_KEYS = frozenset("0123456789*#ABCD")
_VERDICTS = frozenset(v.value for v in AnsweredBy)


class PrometheusDispatchMeter:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._originate = Histogram(
            "sespcl_originate_latency_seconds",
            "Originate sent to its node's first sign (the channel exists): the pacer's signal",
            ["node"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._answer = Histogram(
            "sespcl_answer_latency_seconds",
            "Originate sent to the far end's answer",
            ["trunk"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._duration = Histogram(
            "sespcl_call_duration_seconds",
            "Answer to hang-up, per answered attempt",
            ["trunk"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._attempts = Counter(
            "sespcl_call_attempts",
            "Attempts ended, by their outcome (a call's final status or the status that retries it)",
            ["trunk", "node", "outcome"],
            registry=registry,
        )
        self._finished = Counter(
            "sespcl_calls_finished",
            "Calls that reached a final status",
            ["trunk", "status"],
            registry=registry,
        )
        self._digits = Counter("sespcl_digits", "Keys pressed by the far ends", ["digit"], registry=registry)
        self._answered_by = Counter(
            "sespcl_answered_by", "Machine detection's verdicts", ["answered_by"], registry=registry
        )

    def originate_acknowledged(self, node: str, seconds: float) -> None:
        self._originate.labels(node).observe(seconds)

    def answered(self, trunk: str, seconds: float) -> None:
        self._answer.labels(trunk).observe(seconds)

    def attempt_ended(self, trunk: str, node: str, outcome: str, talk_s: float | None) -> None:
        self._attempts.labels(trunk, node, outcome).inc()
        if talk_s is not None:
            self._duration.labels(trunk).observe(talk_s)

    def call_finished(self, trunk: str, status: str) -> None:
        self._finished.labels(trunk, status).inc()

    def digits(self, digits: str) -> None:
        for key in digits:
            if key in _KEYS:
                self._digits.labels(key).inc()

    def answered_by(self, verdict: str) -> None:
        if verdict in _VERDICTS:
            self._answered_by.labels(verdict).inc()


class DispatcherGauges(Collector):
    """Read from the running dispatcher at each scrape."""

    def __init__(self, nodes: Callable[[], list[NodeView]], events_held: Callable[[], int]) -> None:
        self._nodes = nodes
        self._events_held = events_held

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("sespcl_node_up", "1: this dispatcher can dial the node", labels=["node"])
        channels = GaugeMetricFamily(
            "sespcl_node_live_channels", "Live attempts this dispatcher carries on the node", labels=["node"]
        )
        pace = GaugeMetricFamily(
            "sespcl_node_pace_cps", "New calls per second the node may take now (AIMD)", labels=["node"]
        )
        for node in self._nodes():
            up.add_metric([node.name], 1.0 if node.up else 0.0)
            channels.add_metric([node.name], node.live_channels)
            pace.add_metric([node.name], node.pace_cps)
        yield from (up, channels, pace)
        yield GaugeMetricFamily(
            "sespcl_events_outbox_depth",
            "Call events this dispatcher holds that are not yet stored",
            value=self._events_held(),
        )

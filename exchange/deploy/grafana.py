"""The Grafana dashboard, as code: one panel per question an operator asks, on the metrics of
:mod:`exchange.metrics` only (a check compares every series name with that module's registry).

``$__rate_interval`` is Grafana's; a checker substitutes a duration before handing the expressions to promtool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DASHBOARD_UID", "Panel", "dashboard", "panels"]

DASHBOARD_UID = "exchange-overview"
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    """A time-series panel: its title, what it shows, its unit and its queries as ``(legend, PromQL)``."""

    title: str
    description: str
    unit: str
    queries: tuple[tuple[str, str], ...]
    kind: str = "timeseries"


def panels() -> list[Panel]:
    """The dashboard's panels, in reading order."""
    rate = "[$__rate_interval]"
    return [
        Panel("Events by stage and outcome", "Events through each pipeline stage, per second.", "ops",
              (("{{stage}} {{outcome}}", f"sum by (stage, outcome) (rate(exchange_events_total{rate}))"),)),
        Panel("Decisions by reason", "Policy decisions per second, by outcome and reason.", "ops",
              (("{{outcome}} {{reason}}",
                f"sum by (outcome, reason) (rate(exchange_decisions_total{rate}))"),)),
        Panel("Decisions by recipient", "Policy decisions per second, by recipient and outcome.", "ops",
              (("{{recipient}} {{outcome}}",
                f"sum by (recipient, outcome) (rate(exchange_decisions_total{rate}))"),)),
        Panel("Routing latency", "From an event's publication to its delivery.", "s", tuple(
            (f"p{int(q * 100)}",
             f"histogram_quantile({q}, sum by (le) (rate(exchange_routing_latency_seconds_bucket{rate})))")
            for q in (0.5, 0.95, 0.99))),
        Panel("Consumer lag", "Records not yet consumed, by topic.", "short",
              (("{{topic}}", "sum by (topic) (exchange_consumer_lag)"),)),
        Panel("Quarantine rate", "Records sent to exchange.quarantine per second, by reason.", "ops",
              (("{{reason}}", f"sum by (reason) (rate(exchange_quarantined_total{rate}))"),)),
        Panel("Checkpoint age", "Seconds since the access log's last signed checkpoint (alert above 300).", "s",
              (("age", "max(exchange_checkpoint_age_seconds)"),)),
        Panel("Tracker requests", "Data-tracker requests per second, by route and status.", "reqps",
              (("{{route}} {{status}}",
                f"sum by (route, status) (rate(exchange_tracker_requests_total{rate}))"),)),
    ]


def _panel(number: int, panel: Panel) -> dict[str, Any]:
    width, height = 12, 8
    return {
        "id": number,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": _DATASOURCE,
        "gridPos": {"h": height, "w": width, "x": (number - 1) % 2 * width, "y": (number - 1) // 2 * height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (legend, expr) in enumerate(panel.queries)],
    }


def dashboard() -> dict[str, Any]:
    """The dashboard's JSON model."""
    return {
        "uid": DASHBOARD_UID,
        "title": "The exchange",
        "description": "Routing, decisions, quarantine, lag and the access log's checkpoints.",
        "tags": ["exchange"],
        "timezone": "utc",
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []},
        "links": [],
        "panels": [_panel(number, panel) for number, panel in enumerate(panels(), start=1)],
    }

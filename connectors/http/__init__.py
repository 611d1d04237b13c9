"""The HTTP webhook source: an agency's system POSTs records; each is answered once it is durable in Kafka."""

from connectors.http.config import KIND, WebhookSourceConfig, load_webhook_config, token_digest
from connectors.http.durable import DurablePublisher
from connectors.http.idempotency import IdempotencyStore
from connectors.http.sink import EndpointRefusedError, WebhookSink, build_sink
from connectors.http.sink_config import WebhookSinkConfig, load_sink_config
from connectors.http.webhook import WebhookSource, build_app, make_server, serve, webhook_source

__all__ = [
    "KIND",
    "DurablePublisher",
    "EndpointRefusedError",
    "IdempotencyStore",
    "WebhookSink",
    "WebhookSinkConfig",
    "WebhookSource",
    "WebhookSourceConfig",
    "build_app",
    "build_sink",
    "load_sink_config",
    "load_webhook_config",
    "make_server",
    "serve",
    "token_digest",
    "webhook_source",
]

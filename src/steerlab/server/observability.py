"""Prometheus metrics, a request id and one JSON log line per request, and the request-body size limit."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Receive, Scope, Send

from steerlab.server.errors import REQUEST_ID_HEADER, error_response, new_request_id

log = logging.getLogger("steerlab.server.access")


class Metrics:
    """Per-app registry (so several apps in one process, e.g. tests, never collide).

    The engine gauges are read at scrape time from ``engine()`` (the attached lab's engine, or
    ``None`` while there is none: then they read 0), so they are never stale.
    """

    def __init__(self, engine: Callable[[], object | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("steerlab_requests_total", "HTTP requests", ["route", "status"], registry=self.registry)
        self.latency = Histogram("steerlab_request_seconds", "HTTP request latency", ["route"], registry=self.registry)
        self.tokens = Counter("steerlab_generated_tokens_total", "Tokens generated", registry=self.registry)
        self.queue = Gauge("steerlab_engine_queue", "Requests waiting for the engine", registry=self.registry)
        self.queue.set_function(lambda: getattr(engine(), "queue_depth", 0))
        self.active = Gauge("steerlab_engine_active", "Sequences being decoded", registry=self.registry)
        self.active.set_function(lambda: getattr(engine(), "active_count", 0))


class ObservabilityMiddleware:
    """Pure ASGI (so streaming responses pass through untouched): size limit, metrics, access log.

    Every request gets an id (``request.state.request_id``, the ``X-Request-ID`` response header, the
    access log line); a 500's body and its logged traceback carry the same id."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int):
        self.app, self.metrics, self.max_body = app, metrics, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def tagged_send(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        declared = dict(scope.get("headers") or {}).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await error_response(413, f"request body over the limit of {self.max_body} bytes", code="max_body_bytes")(
                scope, receive, tagged_send
            )
            return
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _BodyTooLarge
            return message

        status = {"code": 500}

        async def recording_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await tagged_send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, limited_receive, recording_send)
        except _BodyTooLarge:
            status["code"] = 413
            await error_response(413, f"request body over the limit of {self.max_body} bytes", code="max_body_bytes")(
                scope, receive, tagged_send
            )
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(name, str(status["code"])).inc()
            self.metrics.latency.labels(name).observe(elapsed)
            caller = (
                getattr(scope.get("state", {}).get("caller"), "key_id", None)
                if isinstance(scope.get("state"), dict)
                else None
            )
            log.info(
                json.dumps(
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": name,
                        "status": status["code"],
                        "ms": round(elapsed * 1000, 1),
                        "caller": caller,
                        "request_id": request_id,
                    }
                )
            )


class _BodyTooLarge(Exception):
    pass

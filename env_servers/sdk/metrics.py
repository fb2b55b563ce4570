"""Prometheus metrics of a server: open sessions, steps, step latency, errors by status code."""

from __future__ import annotations

import hmac
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # a scrape every few seconds would flood the server's log


def _bearer_only(app, token: str):
    """The same bearer token as the gRPC calls: metrics name the env and its load, so they are not public."""
    expected = f"Bearer {token}".encode()

    def guarded(environ, start_response):
        if hmac.compare_digest(environ.get("HTTP_AUTHORIZATION", "").encode(), expected):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer"), ("Content-Type", "text/plain")])
        return [b"missing or wrong bearer token\n"]

    return guarded


class Metrics:
    """Thin wrapper so the hot path pays nothing when metrics are off.

    Each instance has its own registry, so several servers can live in one process (tests, notebooks).
    """

    def __init__(self, enabled: bool, env_name: str = ""):
        self.enabled = enabled
        if not enabled:
            return
        self.registry = CollectorRegistry()
        labels = {"env": env_name}
        names = list(labels)
        r = self.registry
        self._sessions = Gauge("gymwire_sessions_open", "Open sessions", names, registry=r).labels(**labels)
        self._resets = Counter("gymwire_resets_total", "Episodes started", names, registry=r).labels(**labels)
        self._steps = Counter("gymwire_steps_total", "Steps applied", names, registry=r).labels(**labels)
        self._latency = Histogram(
            "gymwire_step_seconds",
            "Step latency inside the server",
            names,
            registry=r,
            buckets=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3),
        ).labels(**labels)
        self._errors = Counter("gymwire_errors_total", "Failed calls by status code", ["env", "code"], registry=r)
        self._env = env_name

    def serve(self, port: int, host: str = "127.0.0.1", token: str | None = None) -> WSGIServer:
        """Expose /metrics over HTTP (Prometheus text format); with `token`, only to "Bearer <token>"."""
        app = make_wsgi_app(self.registry)
        if token:
            app = _bearer_only(app, token)
        httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        threading.Thread(target=httpd.serve_forever, name="gymwire-metrics", daemon=True).start()
        return httpd

    def session_opened(self, open_now: int) -> None:
        if self.enabled:
            self._resets.inc()
            self._sessions.set(open_now)

    def session_closed(self, open_now: int) -> None:
        if self.enabled:
            self._sessions.set(open_now)

    def step_done(self, seconds: float) -> None:
        if self.enabled:
            self._steps.inc()
            self._latency.observe(seconds)

    def error(self, code_name: str) -> None:
        if self.enabled:
            self._errors.labels(env=self._env, code=code_name).inc()

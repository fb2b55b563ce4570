"""The gRPC server around an `EnvService`: asyncio on uvloop, health, reflection, auth, TLS, drain.

`run_server` serves one process. `serve` adds worker processes sharing one port (SO_REUSEPORT) so a
CPU-bound environment uses every core: the GIL makes threads useless for that. The kernel spreads
connections over workers; a session lives in the worker that created it, so a client keeps one
channel per session (the provided clients do) or uses the Session stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import multiprocessing
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from gymwire.env_servers.sdk.dispatch import CALLS, UNARY_ONLY, Call, StreamSessions
from gymwire.env_servers.sdk.environment import Environment
from gymwire.env_servers.sdk.errors import ServiceError
from gymwire.env_servers.sdk.metrics import Metrics
from gymwire.env_servers.sdk.multiplex import parse_request, serve_multiplex
from gymwire.env_servers.sdk.service import EnvService, ServiceLimits
from gymwire.v1 import environment_pb2 as pb
from gymwire.v1.wire import OPERATIONS, error

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EnvironmentService"].full_name
log = logging.getLogger("gymwire.server")
REFUSED_STREAM_WAIT_SECONDS = 5.0  # how long a stream beyond --max-streams may take to send its first request


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port (single worker only)
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    workers: int = 1  # processes sharing the port
    # 0: env code runs on the event loop (fastest for quick envs) until a call takes over 50 ms, then in one
    # thread (a slow call on the loop would stall health checks); N: in a pool of N threads from the start.
    threads: int = 0
    max_message_bytes: int = 4 * 1024 * 1024
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auth_token: str | None = None  # clients must send "authorization: Bearer <token>"
    metrics_port: int | None = None  # Prometheus /metrics (worker i serves on metrics_port + i)
    grace_seconds: float = 10.0  # drain time on SIGTERM
    sweep_seconds: float = 5.0  # how often expired sessions are evicted
    max_streams: int = 4096  # open Session/Multiplex streams; beyond it a new stream is RESOURCE_EXHAUSTED
    max_connections: int = 0  # open client connections; 0: no limit


class _Malformed:
    """Stands in for a request whose bytes do not parse (e.g. non-UTF-8 text): answered INVALID_ARGUMENT."""

    def __init__(self, kind: str, error: Exception):
        self.message = f"malformed {kind}: {error}; text fields must be valid UTF-8"


def _deserializer(cls):
    def parse(data: bytes):
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return _Malformed(cls.__name__, exc)

    return parse


class _Handlers:
    """gRPC method handlers; `service` is None until the environment has loaded (answers UNAVAILABLE).

    Every method runs its operations through one table (dispatch.py); the Session and Multiplex
    streams share one limit on open streams and one way of refusing a stream beyond it."""

    def __init__(self, metrics: Metrics, max_streams: int = 4096):
        self.service: EnvService | None = None
        self.metrics = metrics
        self.max_streams = max_streams
        self.open_streams = 0

    def _ready(self) -> EnvService:
        if self.service is None:
            raise ServiceError.unavailable("environment is still loading; wait for the health check to say SERVING")
        return self.service

    def _error(self, code_name: str) -> None:
        self.metrics.error(code_name)

    def _stream_limit(self) -> ServiceError | None:
        # Each open stream holds memory and a task whether or not it plays; a client that opens streams
        # without end meets back-pressure instead of taking the server down.
        if self.open_streams < self.max_streams:
            return None
        self.metrics.error(grpc.StatusCode.RESOURCE_EXHAUSTED.name)
        return ServiceError.resource_exhausted(
            f"server holds its maximum of {self.max_streams} open streams; end finished streams or retry later"
        )

    def unary(self, call: Call, request_cls, response_cls) -> grpc.RpcMethodHandler:
        async def handle(request, context: grpc.aio.ServicerContext):
            try:
                if isinstance(request, _Malformed):
                    raise ServiceError.invalid_argument(request.message)
                return await call(self._ready(), request)
            except ServiceError as exc:
                self.metrics.error(exc.code.name)
                await context.abort(exc.code, exc.message)

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=_deserializer(request_cls), response_serializer=response_cls.SerializeToString
        )

    def stream(
        self,
        serve: Callable[[grpc.aio.ServicerContext], Awaitable[None]],
        refusal_reply: Callable[[Any, pb.Error], Any],
        deserializer: Callable[[bytes], Any],
        response_cls,
    ) -> grpc.RpcMethodHandler:
        """A stream method that counts toward `max_streams`. Beyond it the stream is refused in-band: the
        client's first message is answered with RESOURCE_EXHAUSTED (`refusal_reply`) and the stream ends
        with that status. A status sent before the client's first write races that write, and the client
        would see a broken connection instead of back-pressure. A refused stream that sends nothing is
        not waited for long."""

        async def handle(requests, context: grpc.aio.ServicerContext) -> None:
            refusal = self._stream_limit()
            if refusal is not None:
                try:
                    first = await asyncio.wait_for(context.read(), REFUSED_STREAM_WAIT_SECONDS)
                except TimeoutError:
                    first = grpc.aio.EOF
                if first is not grpc.aio.EOF:
                    await context.write(refusal_reply(first, error(refusal.code, refusal.message)))
                context.set_code(refusal.code)
                context.set_details(refusal.message)
                return
            self.open_streams += 1
            try:
                await serve(context)
            finally:
                self.open_streams -= 1

        return grpc.stream_stream_rpc_method_handler(
            handle, request_deserializer=deserializer, response_serializer=response_cls.SerializeToString
        )

    async def _session(self, context: grpc.aio.ServicerContext) -> None:
        """One Session stream: one reply per request, in order; the stream is slot 0 of its sessions."""
        sessions = StreamSessions(self._ready, by_id=True, what="SessionRequest", no_session=_no_episode_yet)
        try:
            while True:
                request = await context.read()
                if request is grpc.aio.EOF:
                    return
                try:
                    if isinstance(request, _Malformed):
                        raise ServiceError.invalid_argument(request.message)
                    kind = request.WhichOneof("op")
                    response = await sessions.apply(0, kind, getattr(request, kind) if kind is not None else None)
                    reply = pb.SessionResponse(**{kind: response})
                except ServiceError as exc:
                    self.metrics.error(exc.code.name)
                    reply = pb.SessionResponse(error=error(exc.code, exc.message))
                await context.write(reply)
        finally:
            sessions.close_all()

    async def _multiplex(self, context: grpc.aio.ServicerContext) -> None:
        await serve_multiplex(context, self._ready, self._error)

    def generic_handler(self) -> grpc.GenericRpcHandler:
        methods = {
            method: self.unary(call, request_cls, response_cls)
            for method, (request_cls, response_cls, call) in UNARY_ONLY.items()
        }
        for op in OPERATIONS.values():
            methods[op.method] = self.unary(CALLS[op.name], op.request, op.response)
        methods["Session"] = self.stream(
            self._session,
            lambda first, err: pb.SessionResponse(error=err),
            _deserializer(pb.SessionRequest),
            pb.SessionResponse,
        )
        methods["Multiplex"] = self.stream(
            self._multiplex,
            lambda first, err: pb.MultiplexResponse(
                results=[pb.MultiplexResult(slot=op.slot, error=err) for op in getattr(first, "ops", ())]
            ),
            parse_request,
            pb.MultiplexResponse,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)


def _no_episode_yet(slot: int) -> str:
    return "no episode on this stream yet; send a Reset first"


class _BearerAuth(grpc.aio.ServerInterceptor):
    """Checks "authorization: Bearer <token>" on environment calls; health and reflection stay open."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        if not details.method.startswith(f"/{SERVICE_NAME}/"):
            return await continuation(details)
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(str(given).encode(), self._expected):
            return await continuation(details)

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        if details.method.endswith(("/Session", "/Multiplex")):
            return grpc.stream_stream_rpc_method_handler(deny)
        return grpc.unary_unary_rpc_method_handler(deny)


def _server_options(config: ServerConfig) -> list[tuple[str, int]]:
    # gRPC core cancels calls beyond ~1000 waiting for the Python layer; a trainer with a thousand
    # concurrent episodes is normal here, so the queue scales with the session limit.
    pending = max(1000, 4 * config.limits.max_sessions)
    return [
        ("grpc.server.max_pending_requests", pending),
        ("grpc.server.max_pending_requests_hard_limit", 2 * pending),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 1 if config.workers > 1 else 0),
    ] + ([("grpc.max_allowed_incoming_connections", config.max_connections)] if config.max_connections else [])


async def run_server(
    env_factory: Callable[[], Environment],
    config: ServerConfig,
    *,
    stop: asyncio.Event | None = None,
    on_bound: Callable[[int], None] | None = None,
    worker_index: int | None = None,
    service_cls: type[EnvService] = EnvService,
) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT when `stop` is None), then drain and return."""
    metrics_port = config.metrics_port
    metrics_on = metrics_port is not None
    handlers = _Handlers(Metrics(enabled=False), config.max_streams)
    interceptors = [_BearerAuth(config.auth_token)] if config.auth_token else []
    server = grpc.aio.server(options=_server_options(config), interceptors=interceptors)
    server.add_generic_rpc_handlers((handlers.generic_handler(),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    address = f"{config.host}:{config.port}"
    if config.tls_cert and config.tls_key:
        creds = grpc.ssl_server_credentials([(config.tls_key.read_bytes(), config.tls_cert.read_bytes())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()

    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    executor = ThreadPoolExecutor(config.threads, thread_name_prefix="env") if config.threads else None
    env: Environment | None = None
    sweeper: asyncio.Task | None = None
    metrics_http = None
    try:
        env = await asyncio.to_thread(env_factory)  # health stays NOT_SERVING while data loads
        name = env.describe().name
        metrics = Metrics(metrics_on, name)
        if metrics_port is not None:
            metrics_http = metrics.serve(metrics_port + (worker_index or 0), config.host, config.auth_token)
        prefix = f"w{worker_index}-" if worker_index is not None else ""
        # Replies are checked against the send limit before a step counts (a reply over it would be lost).
        limits = replace(config.limits, max_reply_bytes=config.max_message_bytes - 4096)
        handlers.service = service_cls(env, limits, executor=executor, metrics=metrics, session_prefix=prefix)
        handlers.metrics = metrics
        if worker_index is not None:  # GetInfo says which process answered, so clients can reach every one
            handlers.service.get_info().worker.MergeFrom(pb.Worker(index=worker_index, count=config.workers))
        for service_name in ("", SERVICE_NAME):
            await health.set(service_name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving %s on %s:%d", name, config.host, port, extra={"env": name, "port": port})
        if on_bound is not None:
            on_bound(port)
        sweeper = asyncio.create_task(_sweep(handlers.service, config.sweep_seconds))
        await stop.wait()
    finally:
        log.info("draining (grace %.0f s)", config.grace_seconds)
        deadline = asyncio.get_running_loop().time() + config.grace_seconds
        for service_name in ("", SERVICE_NAME):
            await health.set(service_name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if handlers.service is not None:
            await _drain(handlers.service, deadline)
        await health.enter_graceful_shutdown()
        if sweeper is not None:
            sweeper.cancel()
        await server.stop(max(deadline - asyncio.get_running_loop().time(), 0.5))
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if handlers.service is not None:
            handlers.service.shutdown()
        if metrics_http is not None:
            metrics_http.shutdown()
        if env is not None:
            env.close()


async def _drain(service: EnvService, deadline: float) -> None:
    """Refuse new episodes (UNAVAILABLE sends them to other replicas) and let open ones finish, until the
    grace period ends: stopping the server at once would abort every unary episode at its next Step."""
    service.draining = True
    loop = asyncio.get_running_loop()
    while len(service.sessions) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if len(service.sessions):
        log.info("grace period over with %d sessions open", len(service.sessions))


async def _sweep(service: EnvService, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        expired = service.sweep()
        if expired:
            log.info("evicted %d idle sessions", expired)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where available: measurably faster unary and stream throughput than asyncio's loop."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def _run_worker(env_spec: str, options: dict, config: ServerConfig, index: int | None) -> None:
    from gymwire.env_servers.registry import load_environment
    from gymwire.env_servers.sdk.logs import configure_logging

    configure_logging()
    loop = new_event_loop()
    with contextlib.closing(loop):
        loop.run_until_complete(run_server(lambda: load_environment(env_spec, options), config, worker_index=index))


def serve(env_spec: str, options: dict, config: ServerConfig) -> None:
    """Serve an environment (by registry name or module:attr) in the foreground, with N worker processes."""
    if config.workers <= 1:
        _run_worker(env_spec, options, config, None)
        return
    if config.port == 0:
        raise ValueError("--workers > 1 needs an explicit --port (all workers share it)")
    ctx = multiprocessing.get_context("spawn")  # gRPC does not survive fork after initialisation
    procs = [
        ctx.Process(target=_run_worker, args=(env_spec, options, replace(config), i), daemon=False)
        for i in range(config.workers)
    ]
    for p in procs:
        p.start()

    def forward(sig, _frame):
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()

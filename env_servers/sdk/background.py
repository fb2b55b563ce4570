"""Run a server in a background thread of this process: for tests, notebooks and the main job."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace

from gymwire.env_servers.sdk.environment import Environment
from gymwire.env_servers.sdk.server import ServerConfig, new_event_loop, run_server
from gymwire.env_servers.sdk.service import EnvService


class BackgroundServer:
    """`with BackgroundServer(GuessEnvironment) as server: client = EnvClient(server.address)`."""

    def __init__(
        self,
        env_factory: Callable[[], Environment],
        config: ServerConfig | None = None,
        service_cls: type[EnvService] = EnvService,
    ):
        self._factory = env_factory
        self._service_cls = service_cls
        self._config = replace(config or ServerConfig(port=0, grace_seconds=1.0), workers=1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self._config.host}:{self.port}"

    def start(self, timeout: float = 120.0) -> BackgroundServer:
        self._thread = threading.Thread(target=self._main, name="gymwire-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"server not ready within {timeout} s")
        if self._error is not None:
            raise RuntimeError("server failed to start") from self._error
        return self

    def _main(self) -> None:
        self._loop = new_event_loop()
        self._stop = asyncio.Event()

        def bound(port: int) -> None:
            self.port = port
            self._ready.set()

        try:
            self._loop.run_until_complete(
                run_server(self._factory, self._config, stop=self._stop, on_bound=bound, service_cls=self._service_cls)
            )
        except BaseException as exc:  # reported to start()
            self._error = exc
        finally:
            self._ready.set()
            self._loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

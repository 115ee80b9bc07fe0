"""A real inference server for the tests: uvicorn on a free loopback port, in a thread,
serving a :class:`ModelRepository`; stopping it runs the app's drain."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from aios.serving import ModelRepository
from aios.serving.server import DEFAULT_MAX_BODY_BYTES, inference_config

STARTUP = 30.0
"""Seconds the server may take to listen before the test fails."""


@dataclass(frozen=True)
class Served:
    repository: ModelRepository
    address: str  # host:port, as tritonclient takes it

    @property
    def url(self) -> str:
        return f"http://{self.address}"


class _Announcing(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


@contextmanager
def serving(
    repository: ModelRepository,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    secret: str | None = None,
) -> Iterator[Served]:
    """``repository`` served until the block ends; with ``secret``, as a deployment's
    replica serves it (answering only requests that carry it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = inference_config(repository, max_body_bytes=max_body_bytes, secret=secret)
    server = _Announcing(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="aios-serving", daemon=True
    )
    thread.start()
    try:
        if not server.listening.wait(STARTUP):
            raise RuntimeError("the inference server did not start")
        yield Served(repository, f"127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(STARTUP)
        listener.close()

"""The V2 inference server: FastAPI routes over a :class:`ModelRepository`.

Routes (the Open Inference Protocol over REST): ``/v2/health/live``,
``/v2/health/ready``, ``/v2`` (server metadata), ``/v2/models/{m}[/versions/{v}]``
(model metadata), ``…/ready``, ``…/infer`` (POST), and ``/metrics`` (Prometheus). A
request without a version goes to the model's default version. A server given a
secret (a deployment's replica) answers nothing but the health endpoints to a request
without it (:mod:`~aios.serving.secret`): 401 when it is missing, 403 when it is wrong.

Every error is ``{"error": "<message>"}``: 400 for a request that is malformed or does
not fit the model, 404 for an unknown model, version or route, 413 for a body over
``max_body_bytes``, 503 (with ``Retry-After``) when the queue is full, the request
timed out, or the server is draining, 500 when the model itself failed. A request that
finds its model's queue full is refused on its head, before its body is read. A bad
request never stops the server.
``…/infer`` is answered by :class:`~aios.serving.infer.InferEndpoint` in front of the
FastAPI routes; :func:`serve_models` runs it all under uvicorn for a serving replica,
whose HTTP protocol (:mod:`~aios.serving.protocol`) hands inference requests to the
endpoint without ASGI.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from aios.errors import AiosError
from aios.serving.infer import RETRY_AFTER, BodyTooLarge, InferEndpoint, status_of
from aios.serving.repository import ModelRepository, ServedModel
from aios.serving.secret import OPEN_PATHS, Refusal, refusal_of
from aios.version import __version__

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "EXTENSIONS",
    "BodyTooLarge",
    "InferenceApp",
    "create_inference_app",
    "inference_config",
    "serve_models",
]

log = logging.getLogger("aios.serving")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
EXTENSIONS = ("binary_tensor_data",)
_NOT_POST = ["GET", "HEAD", "PUT", "PATCH", "DELETE"]


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with ``status``; a 503 says when to retry."""
    headers = {"retry-after": str(RETRY_AFTER)} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_inference_app(
    repository: ModelRepository,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    secret: str | None = None,
) -> InferenceApp:
    """The ASGI app serving ``repository``; its shutdown drains every model version.
    With a ``secret``, it answers only the requests that carry it (and health checks)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await repository.drain()

    app = InferenceApp(
        title="AIOS inference server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(AiosError)
    async def aios_error(_request: Request, exc: AiosError) -> JSONResponse:
        return error_response(status_of(exc), str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if not repository.ready:
            return error_response(503, "not ready: the server is shutting down")
        return JSONResponse({"ready": True})

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "aios", "version": __version__, "extensions": list(EXTENSIONS)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(repository.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        loaded = repository.get(name, version)
        return {
            "name": loaded.name,
            "versions": repository.versions(name),
            "platform": loaded.platform,
            **loaded.signature.to_json(),
        }

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        loaded = repository.get(name, version)
        if not loaded.ready:
            return error_response(503, f"model {loaded.served.ref} is shutting down")
        return JSONResponse({"name": loaded.name, "version": loaded.version, "ready": True})

    @app.api_route("/v2/models/{name}/infer", methods=_NOT_POST)
    @app.api_route("/v2/models/{name}/versions/{version}/infer", methods=_NOT_POST)
    async def infer_needs_post(request: Request) -> Response:
        response = error_response(405, f"inference takes POST, not {request.method}")
        response.headers["allow"] = "POST"
        return response

    app.endpoint = InferEndpoint(app.framework, repository, max_body_bytes)
    app.secret = None if secret is None else secret.encode()
    return app


class InferenceApp(FastAPI):
    """FastAPI whose ``…/infer`` requests go straight to :class:`InferEndpoint`: never
    through FastAPI's per-request telemetry checks, middleware stack or routing, which
    cost more than a batched small model does."""

    endpoint: InferEndpoint
    secret: bytes | None = None
    """What a request must carry in ``X-AIOS-Replica-Secret``; None asks nothing."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Every request but inference on InferProtocol's fast path comes here (that
        # path checks the secret itself): refused before its body is read.
        if self.secret is not None and scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            refusal = refusal_of(self.secret, scope["headers"])
            if refusal is not None:
                await _refuse(send, refusal)
                return
        await self.endpoint(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Everything but inference: FastAPI as usual."""
        await super().__call__(scope, receive, send)


def serve_models(
    models: Sequence[ServedModel],
    host: str = "127.0.0.1",
    port: int = 8000,
    ready_file: Path | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    graceful_seconds: float = 30.0,
    on_ready: Callable[[str, int], None] | None = None,
    secret: str | None = None,
) -> None:
    """Loads ``models`` and serves them on ``host:port`` until SIGTERM or Ctrl-C.

    ``port`` 0 picks a free port. Once listening, ``{"host": …, "port": …}`` is written
    atomically to ``ready_file`` (a replica's launcher waits for it) and ``on_ready`` is
    called with the address. SIGTERM drains: readiness turns false, new connections are
    refused, requests already taken are answered (up to ``graceful_seconds``), the file
    is removed, and the call returns. With a ``secret``, only requests that carry it
    are answered (see :mod:`~aios.serving.secret`). Raises InvalidInput when a model
    does not load and OSError when the address cannot be listened on, both before
    anything is served.
    """
    repository = ModelRepository()
    for model in models:
        repository.add(model)
    listener = _listen(host, port)
    config = inference_config(
        repository,
        max_body_bytes=max_body_bytes,
        graceful_seconds=graceful_seconds,
        secret=secret,
    )
    server = _ReplicaServer(config, repository, ready_file, on_ready)
    # The model runs in a worker thread that needs the GIL back after each batch; with
    # the default 5 ms switch interval a busy event loop keeps it waiting that long.
    sys.setswitchinterval(0.0005)
    # uvicorn re-raises the signal it handled once it has shut down: SIGTERM then ends
    # here quietly, and Ctrl-C's KeyboardInterrupt is caught below.
    previous = signal.signal(signal.SIGTERM, _ignore)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)


def inference_config(
    repository: ModelRepository,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    graceful_seconds: float = 30.0,
    secret: str | None = None,
) -> uvicorn.Config:
    """uvicorn's configuration for serving ``repository``: the app of
    :func:`create_inference_app`, with ``…/infer`` parsed and answered by
    :class:`~aios.serving.protocol.InferProtocol` instead of going through ASGI."""
    app = create_inference_app(repository, max_body_bytes=max_body_bytes, secret=secret)
    return uvicorn.Config(
        app,
        http=http_protocol(app),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(graceful_seconds),
        # A replica listens on loopback behind the gateway or is called directly: no
        # proxy to trust, and no per-request work for headers nobody reads.
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )


def http_protocol(app: InferenceApp) -> type[asyncio.Protocol] | str:
    """:class:`~aios.serving.protocol.InferProtocol` for ``app`` where the installed
    uvicorn has what it extends; otherwise uvicorn's own httptools protocol, with every
    request (inference too) through ASGI: slower, the same answers."""
    try:
        from aios.serving.protocol import fits_uvicorn, infer_protocol
    except ImportError as exc:
        reason = str(exc)
    else:
        if fits_uvicorn():
            return infer_protocol(app.endpoint, app.secret)
        reason = "a method it overrides is missing"
    log.warning(
        "uvicorn %s: inference goes through ASGI (aios.serving.protocol does not fit: %s)",
        uvicorn.__version__,
        reason,
    )
    return "httptools"


async def _refuse(send: Send, refusal: Refusal) -> None:
    status, body = refusal
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _ignore(_signal: int, _frame: FrameType | None) -> None:
    pass


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.setblocking(False)
    return listener


class _ReplicaServer(uvicorn.Server):
    """uvicorn that announces itself once listening and drains on the way out."""

    def __init__(
        self,
        config: uvicorn.Config,
        repository: ModelRepository,
        ready_file: Path | None,
        on_ready: Callable[[str, int], None] | None,
    ) -> None:
        super().__init__(config)
        self.repository = repository
        self.ready_file = ready_file
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not sockets:
            return
        # What exists now (the app, the models, every module: ~200,000 objects) lives as
        # long as the server: out of the collector's sight, a full collection walks only
        # what requests leave behind, instead of stalling the loop on all of it.
        gc.collect()
        gc.freeze()
        host, port = sockets[0].getsockname()[:2]
        if self.ready_file is not None:
            _write_atomically(self.ready_file, json.dumps({"host": host, "port": port}))
        if self.on_ready is not None:
            self.on_ready(host, port)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.repository.begin_drain()
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        super().handle_exit(sig, frame)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)

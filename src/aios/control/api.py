"""The REST API under ``/api/v1`` (FastAPI), plus ``/metrics`` (an admin's, unless
public) and ``/healthz``.

Handlers are thin: they check the bearer token, call :class:`ControlOps` and map the
AIOS error hierarchy to HTTP (InvalidInput 400, Forbidden 403, NotFound 404, Conflict
409; a malformed body is FastAPI's 422 naming the field).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, BinaryIO, Literal

from fastapi import APIRouter, Body, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.background import BackgroundTask

from aios.control.auth import Principal, TokenBook
from aios.control.deps import Unauthorized, User, caller
from aios.control.idempotency import HEADER, Idempotency
from aios.control.metrics import ControlMetrics
from aios.control.ops import ControlOps, JobFilter
from aios.control.specs import (
    MAX_ID,
    NAME,
    EventView,
    JobSpec,
    JobStateName,
    JobView,
    NodeView,
    PipelineSpec,
    PipelineView,
    QueueSpec,
    QueueUpdate,
    QueueView,
    TokenListing,
    TokenSpec,
    TokenView,
    WhoAmI,
)
from aios.errors import AiosError, Busy, Conflict, Forbidden, InvalidInput, NotFound
from aios.files import NotARegularFile, open_in
from aios.registry.api import model_router
from aios.registry.service import RegistryOps
from aios.version import __version__

__all__ = ["create_app"]


STATUS = {InvalidInput: 400, Forbidden: 403, NotFound: 404, Conflict: 409, Busy: 503}
FOLLOW_POLL = 0.1
LOG_CHUNK = 1 << 16
MAX_OFFSET = 2**62
"""Byte offsets into a log and row offsets into a listing: not ids, so only 64-bit
integers (SQLite's, PostgreSQL's BIGINT, a file's size) bound them."""
Id = Annotated[int, PathParam(ge=1, le=MAX_ID)]
EventCursor = Annotated[int, Query(ge=0, le=MAX_ID, description="the last event id seen")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
IdempotencyKey = Annotated[str | None, Header(alias=HEADER)]
QueueName = Annotated[str, PathParam(pattern=NAME)]


def _not_a_job(user: Principal) -> None:
    """A job's own token manages no tokens (its submitter's included)."""
    if user.job is not None:
        raise Forbidden(f"job {user.job}'s own token cannot list or revoke tokens")


def _status_of(exc: AiosError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def create_app(
    ops: ControlOps,
    tokens: TokenBook,
    metrics: ControlMetrics,
    auth: bool = True,
    public_metrics: bool = False,
    registry: RegistryOps | None = None,
    routers: Sequence[APIRouter] = (),
    root_routers: Sequence[APIRouter] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
) -> FastAPI:
    """The app: the jobs API, the registry's routes when given, further ``routers``
    under ``/api/v1`` and ``root_routers`` at the root (the inference gateway), and
    ``on_shutdown`` awaited when the server stops (in its event loop: the gateway's
    connections to replicas are closed there). ``/metrics`` answers an admin only
    (its series name every tenant's queues and deployments) unless ``public_metrics``."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        for close in on_shutdown:
            await close()

    app = FastAPI(
        lifespan=lifespan,
        title="AIOS control plane",
        version=__version__,
        description="Jobs, queues, nodes and pipelines of an AIOS cluster.",
    )
    app.state.tokens = tokens
    app.state.auth = auth

    @app.exception_handler(AiosError)
    async def aios_error(_request: Request, exc: AiosError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status_of(exc))

    @app.exception_handler(Unauthorized)
    async def unauthorized(_request: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    api = APIRouter(prefix="/api/v1")

    @api.post("/jobs", status_code=201, response_model=JobView)
    def submit_job(spec: JobSpec, user: User, key: IdempotencyKey = None) -> JobView:
        """Submits a job; sent again with the same ``Idempotency-Key``, answers the
        first submission's job instead of making another."""
        body = spec.model_dump(mode="json")
        return ops.submit(user, spec, idempotency=Idempotency.of(key, "/jobs", body))

    @api.post("/jobs/batch", status_code=201, response_model=list[JobView])
    def submit_jobs(
        specs: Annotated[list[JobSpec], Body(min_length=1, max_length=10_000)],
        user: User,
        key: IdempotencyKey = None,
    ) -> list[JobView]:
        """Submits many jobs at once, all or none (like a Slurm job array)."""
        body = [spec.model_dump(mode="json") for spec in specs]
        idempotency = Idempotency.of(key, "/jobs/batch", body)
        return ops.submit_many(user, specs, idempotency=idempotency)

    @api.get("/jobs", response_model=list[JobView])
    def list_jobs(
        user: User,
        state: JobStateName | None = None,
        queue: Annotated[str | None, Query(pattern=NAME)] = None,
        owner: Annotated[str | None, Query(pattern=NAME)] = None,
        pipeline: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        offset: Offset = 0,
    ) -> list[JobView]:
        return ops.jobs(user, JobFilter(state, queue, owner, pipeline, limit, offset))

    @api.get("/jobs/{job_id}", response_model=JobView)
    def get_job(job_id: Id, user: User) -> JobView:
        return ops.get(user, job_id)

    @api.post("/jobs/{job_id}/cancel", response_model=JobView)
    def cancel_job(job_id: Id, user: User) -> JobView:
        return ops.cancel(user, job_id)

    @api.post("/jobs/{job_id}/resubmit", status_code=201, response_model=JobView)
    def resubmit_job(job_id: Id, user: User) -> JobView:
        """Submits the job again as a new one (its spec, environment included)."""
        return ops.resubmit(user, job_id)

    @api.get("/jobs/{job_id}/events", response_model=list[EventView])
    def job_events(job_id: Id, user: User, since: EventCursor = 0) -> list[EventView]:
        return ops.events(user, job_id, since)

    @api.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
    def job_logs(
        job_id: Id,
        user: User,
        stream: Literal["stdout", "stderr"] = "stdout",
        replica: Annotated[int, Query(ge=0, le=1024)] = 0,
        offset: Offset = 0,
        follow: bool = False,
    ) -> Response:
        path = ops.log_file(user, job_id, stream, replica)

        def open_log() -> BinaryIO | None:
            """The log, from the job's own directory: a symlink or a FIFO the job left
            under its name is refused (409), never followed."""
            try:
                return open_in(path.parent, path.name)
            except FileNotFoundError:
                return None
            except NotARegularFile as exc:
                raise Conflict(f"job {job_id}'s {stream} log: {exc.strerror}") from None

        if not follow:
            log = open_log()  # here: a refusal is the answer, before the stream starts

            # In chunks: a log may be far larger than the server's memory.
            def read() -> Iterator[bytes]:
                if log is None:
                    return
                with log:
                    log.seek(offset)
                    while chunk := log.read(LOG_CHUNK):
                        yield chunk

            # Closed by read(), or after the response when it was never read.
            closing = BackgroundTask(log.close) if log is not None else None
            return StreamingResponse(
                read(), media_type="text/plain; charset=utf-8", background=closing
            )

        first = open_log()  # a planted log is refused before the stream starts
        if first is not None:
            first.close()

        async def tail() -> AsyncIterator[bytes]:
            position = offset
            while True:
                finished = await asyncio.to_thread(ops.is_finished, job_id)
                try:
                    log = open_log()
                except Conflict:
                    return  # the job swapped its log for something else: the stream ends
                if log is not None:
                    with log:
                        log.seek(position)
                        while chunk := log.read(LOG_CHUNK):
                            position += len(chunk)
                            yield chunk
                if finished:
                    return
                await asyncio.sleep(FOLLOW_POLL)

        return StreamingResponse(tail(), media_type="text/plain; charset=utf-8")

    @api.get("/jobs/{job_id}/result")
    def job_result(job_id: Id, user: User) -> Response:
        """The pickled return value of a function job (cloudpickle), once it succeeded."""
        return Response(ops.result(user, job_id), media_type="application/octet-stream")

    @api.get("/events", response_model=list[EventView])
    def events(user: User, since: EventCursor = 0) -> list[EventView]:
        return ops.events(user, None, since)

    @api.get("/queues", response_model=list[QueueView])
    def list_queues(user: User) -> list[QueueView]:
        return ops.queues(user)

    @api.post("/queues", status_code=201, response_model=QueueView)
    def create_queue(spec: QueueSpec, user: User) -> QueueView:
        return ops.create_queue(user, spec)

    @api.patch("/queues/{name}", response_model=QueueView)
    def update_queue(name: QueueName, update: QueueUpdate, user: User) -> QueueView:
        return ops.update_queue(user, name, update)

    @api.get("/nodes", response_model=list[NodeView])
    def list_nodes(user: User) -> list[NodeView]:
        return ops.nodes()

    @api.post("/pipelines", status_code=201, response_model=PipelineView)
    def submit_pipeline(spec: PipelineSpec, user: User, key: IdempotencyKey = None) -> PipelineView:
        body = spec.model_dump(mode="json")
        return ops.submit_pipeline(user, spec, Idempotency.of(key, "/pipelines", body))

    @api.get("/pipelines", response_model=list[PipelineView])
    def list_pipelines(
        user: User, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[PipelineView]:
        return ops.pipelines(user, limit)

    @api.get("/pipelines/{pipeline_id}", response_model=PipelineView)
    def get_pipeline(pipeline_id: Id, user: User) -> PipelineView:
        return ops.pipeline(user, pipeline_id)

    @api.post("/pipelines/{pipeline_id}/cancel", response_model=PipelineView)
    def cancel_pipeline(pipeline_id: Id, user: User) -> PipelineView:
        return ops.cancel_pipeline(user, pipeline_id)

    @api.post("/tokens", status_code=201, response_model=TokenView)
    def create_token(spec: TokenSpec, user: User) -> TokenView:
        user.require_admin("create tokens")
        if spec.tenant is not None and spec.tenant not in {q.name for q in ops.queues(user)}:
            raise InvalidInput(f"tenant: no queue named {spec.tenant!r}")
        seconds = spec.expires_seconds
        expires_at = None if seconds is None else time.time() + seconds
        token = tokens.create(spec.name, spec.tenant, spec.admin, expires_at=expires_at)
        return TokenView(
            name=spec.name, tenant=spec.tenant, admin=spec.admin, token=token, expires_at=expires_at
        )

    @api.get("/tokens", response_model=list[TokenListing])
    def list_tokens(user: User) -> list[TokenListing]:
        """The caller's tokens and its queue's running jobs' (an admin: all)."""
        _not_a_job(user)
        return [TokenListing(**asdict(info)) for info in tokens.tokens(user)]

    @api.delete("/tokens/{token_id}", response_model=TokenListing)
    def revoke_token(token_id: Id, user: User) -> TokenListing:
        _not_a_job(user)
        return TokenListing(**asdict(tokens.revoke(user, token_id)))

    @api.post("/jobs/{job_id}/token/revoke", response_model=TokenListing)
    def revoke_job_token(job_id: Id, user: User) -> TokenListing:
        """Revokes the running job's own token before the job ends."""
        _not_a_job(user)
        return TokenListing(**asdict(tokens.revoke_job(user, job_id)))

    @api.get("/whoami", response_model=WhoAmI)
    def whoami(user: User) -> WhoAmI:
        return WhoAmI(name=user.name, tenant=user.tenant, admin=user.admin, job=user.job)

    if registry is not None:
        api.include_router(model_router(registry, caller))
    for router in routers:
        api.include_router(router)
    app.include_router(api)
    for router in root_routers:
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def exposition() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if public_metrics:
        app.get("/metrics", include_in_schema=False)(exposition)
    else:

        @app.get("/metrics", include_in_schema=False)
        def prometheus(user: User) -> Response:
            user.require_admin(
                "read the metrics (or start the control plane with --public-metrics)"
            )
            return exposition()

    return app

"""The dashboard's JSON routes under ``/api/v1``: the numbers its pages need that the
rest of the API does not already answer in one call, the live event stream, and the
read-only dataset and simulator routes.

Every route takes the caller's bearer token and applies the API's tenant rules.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import AfterValidator

from aios.control.deps import User
from aios.control.history_api import gather_history
from aios.control.specs import NAME, JobStateName
from aios.dashboard.datasets import dataset_router
from aios.dashboard.jobtable import JobPage, JobQuery, SortKey, job_page
from aios.dashboard.overview import Overview, overview
from aios.dashboard.serving import DeploymentTraffic, RateMeter, deployment_traffic
from aios.dashboard.simulation import simulator_router
from aios.dashboard.stream import stream_router
from aios.dashboard.tickets import StreamTickets
from aios.dashboard.timeline import Timeline, timeline
from aios.registry.specs import check_text
from aios.simulator.history import History

if TYPE_CHECKING:
    from aios.control.server import ControlPlane

__all__ = ["dashboard_router"]

DeploymentName = Annotated[str, PathParam(pattern=NAME)]
Seconds = Annotated[float | None, Query(ge=0, le=1e11)]
NamePart = Annotated[str, AfterValidator(check_text)]
"""Part of a job's name to filter by: any text a name can hold, so no NUL (a text column
of PostgreSQL cannot hold it, and comparing with one is an error there)."""


def dashboard_router(plane: ControlPlane) -> APIRouter:
    """All of the dashboard's API routes, for ``create_app(routers=[...])``."""
    router = APIRouter()
    meter = RateMeter()
    tickets = StreamTickets()

    def cluster_shape() -> tuple[int, int]:
        nodes = plane.ops.nodes()
        return len(nodes), max((len(n.gpus) for n in nodes), default=0)

    @router.get("/dashboard/overview", response_model=Overview, tags=["dashboard"])
    def get_overview(
        user: User, window: Annotated[float, Query(gt=0, le=30 * 86400)] = 3600.0
    ) -> Overview:
        """Capacity, allocation (now and over ``window`` seconds), queues, jobs by state
        and the scheduler's cycle time."""
        return overview(plane.ops, plane.db, plane.metrics, user, window)

    @router.get("/dashboard/jobs", response_model=JobPage, tags=["dashboard"])
    def get_jobs(
        user: User,
        state: JobStateName | None = None,
        queue: Annotated[str | None, Query(pattern=NAME)] = None,
        owner: Annotated[str | None, Query(pattern=NAME)] = None,
        name: Annotated[NamePart | None, Query(max_length=128)] = None,
        sort: SortKey = "id",
        order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> JobPage:
        """One page of the jobs table, filtered and sorted by the server."""
        want = JobQuery(state, queue, owner, name, sort, order == "desc", limit, offset)
        return job_page(plane.db, user, want)

    @router.get("/dashboard/timeline", response_model=Timeline, tags=["dashboard"])
    def get_timeline(user: User, start: Seconds = None, end: Seconds = None) -> Timeline:
        """GPU bars of the jobs' attempts between ``start`` and ``end`` (epoch seconds;
        default: the last hour)."""
        return timeline(plane.db, plane.ops.nodes(), user, start, end)

    @router.get(
        "/dashboard/deployments/{name}/traffic",
        response_model=DeploymentTraffic,
        tags=["dashboard"],
    )
    async def get_traffic(name: DeploymentName, user: User) -> DeploymentTraffic:
        """Request rate, latency percentiles and batch sizes of deployment ``name``."""
        await asyncio.to_thread(plane.deployments.row, user, name)  # NotFound if unseen
        replicas = await asyncio.to_thread(plane.controller.replicas, name)
        urls = [r.url for r in replicas if r.url and r.ready]
        return await deployment_traffic(name, plane.metrics.registry, urls, meter)

    router.include_router(stream_router(plane.ops, plane.db, tickets))
    router.include_router(dataset_router(plane.data, plane.ops.datasets))

    def history(since: float, limit: int) -> History:
        return gather_history(plane.ops, since, limit)

    router.include_router(simulator_router(cluster_shape, history))
    return router

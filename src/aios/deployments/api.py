"""REST routes for deployments under ``/api/v1/deployments``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from aios.control.auth import Principal
from aios.control.deps import User
from aios.deployments.controller import DeploymentController
from aios.deployments.ops import DeploymentOps, deployment_view
from aios.deployments.specs import DeploymentSpec, DeploymentView, TrafficUpdate
from aios.names import NAME

__all__ = ["deployment_router"]

DeploymentName = Annotated[str, PathParam(pattern=NAME)]


def deployment_router(ops: DeploymentOps, controller: DeploymentController) -> APIRouter:
    router = APIRouter(prefix="/deployments", tags=["deployments"])

    def view(name: str, user: Principal) -> DeploymentView:
        return deployment_view(ops.row(user, name), controller.replicas(name))

    @router.post("", status_code=201, response_model=DeploymentView)
    def deploy(spec: DeploymentSpec, user: User) -> DeploymentView:
        """Deploys a model version (and a canary); replicas start as service jobs."""
        return ops.create(user, spec)

    @router.get("", response_model=list[DeploymentView])
    def list_deployments(user: User) -> list[DeploymentView]:
        return [deployment_view(row, controller.replicas(row.name)) for row in ops.rows(user)]

    @router.get("/{name}", response_model=DeploymentView)
    def get_deployment(name: DeploymentName, user: User) -> DeploymentView:
        return view(name, user)

    @router.put("/{name}", response_model=DeploymentView)
    def update_deployment(name: DeploymentName, spec: DeploymentSpec, user: User) -> DeploymentView:
        """Replaces the deployment's spec; new versions or resources roll out replica by
        replica (the old ones stop once the new ones are ready)."""
        row = ops.update(user, name, spec)
        return deployment_view(row, controller.replicas(name))

    @router.patch("/{name}/traffic", response_model=DeploymentView)
    def set_traffic(name: DeploymentName, update: TrafficUpdate, user: User) -> DeploymentView:
        """Shifts traffic between the served versions (a canary, or a rollback)."""
        row = ops.set_traffic(user, name, update)
        return deployment_view(row, controller.replicas(name))

    @router.delete("/{name}", status_code=204)
    def undeploy(name: DeploymentName, user: User) -> None:
        ops.delete(user, name)

    return router

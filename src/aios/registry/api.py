"""The registry's REST API under ``/api/v1/models`` (a FastAPI router).

A version is registered with a ``multipart/form-data`` POST: a field ``spec`` holding
a :class:`~aios.registry.specs.RegisterSpec` as JSON, and a file part ``artifact``
holding the model file, or a tar archive of a directory (``"artifact": "directory"``)::

    curl -F spec='{"format": "onnx"}' -F artifact=@model.onnx $AIOS_URL/api/v1/models/m/versions

A body without a Content-Length is refused (411), one over the registry's limit too
(413), before any of it is read. Errors are the control plane's: InvalidInput 400,
Forbidden 403, NotFound 404, Conflict 409, a malformed JSON body 422.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations at
# run time, and ``User`` below exists only inside model_router, where a string
# annotation could not be resolved.
import asyncio
import os
import tempfile
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import AfterValidator, ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from aios.errors import InvalidInput
from aios.registry.catalog import Caller
from aios.registry.manifest import parse_manifest, write_tar
from aios.registry.probing import POLL
from aios.registry.refs import NAME, REFERENCE
from aios.registry.service import RegistryOps
from aios.registry.specs import (
    MAX_VERSION,
    AliasSpec,
    ModelVersionView,
    ModelView,
    RegisterSpec,
    VersionUpdate,
    check_reference,
)

__all__ = ["FORM_OVERHEAD", "model_router"]

FORM_OVERHEAD = 1 << 20
"""Bytes a registration's body may have beyond the artifact: the spec and the form's
boundaries."""
ModelName = Annotated[str, PathParam(pattern=NAME)]
Reference = Annotated[str, PathParam(pattern=REFERENCE), AfterValidator(check_reference)]
AliasName = Annotated[str, PathParam(pattern=NAME)]  # latest and numbers: refused by ops
Number = Annotated[int, PathParam(ge=1, le=MAX_VERSION)]
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["spec", "artifact"],
                "properties": {
                    "spec": {"type": "string", "description": "RegisterSpec as JSON"},
                    "artifact": {"type": "string", "format": "binary"},
                },
            }
        }
    },
}
"""The registration's body as OpenAPI describes it (the route reads the form itself,
to check the Content-Length before any of the body is read)."""


def parse_spec(text: str) -> RegisterSpec:
    """The registration spec in ``text``; InvalidInput naming the first field at fault."""
    try:
        return RegisterSpec.model_validate_json(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"spec.{where}: {message}" if where else f"spec: {message}") from None


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is None:
        raise HTTPException(411, "artifact: send the upload with a Content-Length")
    if not length.isdigit() or int(length) > limit + FORM_OVERHEAD:
        raise HTTPException(
            413, f"artifact: a body of {length} bytes is over the limit of {limit} bytes"
        )


def model_router(ops: RegistryOps, caller: Callable[..., Caller]) -> APIRouter:
    """The routes of the registry; ``caller`` is the dependency that names the user."""
    User = Annotated[Caller, Depends(caller)]
    router = APIRouter(prefix="/models", tags=["models"])

    @router.get("", response_model=list[ModelView])
    def list_models(user: User) -> list[ModelView]:
        return ops.models(user)

    @router.get("/{name}", response_model=ModelView)
    def get_model(name: ModelName, user: User) -> ModelView:
        return ops.model(user, name)

    @router.post(
        "/{name}/versions",
        status_code=201,
        response_model=ModelVersionView,
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
    async def register(name: ModelName, request: Request, user: User) -> ModelVersionView:
        """Registers the next version of ``name`` from a multipart upload."""
        _check_length(request, ops.max_upload)
        form = await request.form(max_files=1, max_fields=1)
        try:
            spec_text, artifact = form.get("spec"), form.get("artifact")
            if not isinstance(spec_text, str):
                raise InvalidInput("spec: missing (a form field with the registration as JSON)")
            if not isinstance(artifact, UploadFile):
                raise InvalidInput("artifact: missing (a file part with the model)")
            spec = parse_spec(spec_text)
            registration = await run_in_threadpool(
                ops.begin, user, name, spec, artifact.file, artifact.filename
            )
            try:
                # Awaited here, asked now and then: the model's own code runs elsewhere
                # (a sandboxed job), and a load that hangs or forks holds no thread.
                while (probed := await run_in_threadpool(registration.poll)) is None:
                    await asyncio.sleep(POLL)
                return await run_in_threadpool(ops.finish, registration, probed)
            finally:
                await run_in_threadpool(registration.close)
        finally:
            await form.close()

    @router.get("/{name}/versions", response_model=list[ModelVersionView])
    def list_versions(name: ModelName, user: User) -> list[ModelVersionView]:
        return ops.versions(user, name)

    @router.get("/{name}/versions/{ref}", response_model=ModelVersionView)
    def get_version(name: ModelName, ref: Reference, user: User) -> ModelVersionView:
        return ops.version(user, name, ref)

    @router.patch("/{name}/versions/{ref}", response_model=ModelVersionView)
    def update_version(
        name: ModelName, ref: Reference, update: VersionUpdate, user: User
    ) -> ModelVersionView:
        return ops.update_version(user, name, ref, update)

    @router.delete("/{name}/versions/{version}", status_code=204)
    def delete_version(name: ModelName, version: Number, user: User) -> Response:
        ops.delete_version(user, name, version)
        return Response(status_code=204)

    @router.get("/{name}/versions/{ref}/artifact")
    def download(name: ModelName, ref: Reference, user: User) -> Response:
        """The artifact: the file as registered, or a directory as a tar archive. The
        ``Aios-Artifact`` header says which, ``Aios-Sha256`` its digest."""
        view, path = ops.artifact_path(user, name, ref)
        headers = {"Aios-Artifact": view.artifact, "Aios-Sha256": view.sha256}
        if view.artifact == "file":
            return FileResponse(
                path, filename=view.filename, media_type="application/octet-stream", headers=headers
            )
        entries = parse_manifest(ops.blobs.read(view.sha256))
        fd, archive = tempfile.mkstemp(dir=ops.blobs.tmp, prefix="download-", suffix=".tar")
        try:
            with os.fdopen(fd, "wb") as out:
                write_tar(path, entries, out)
        except BaseException:
            os.unlink(archive)
            raise
        return FileResponse(
            archive,
            filename=f"{view.filename}.tar",
            media_type="application/x-tar",
            headers=headers,
            background=BackgroundTask(os.unlink, archive),
        )

    @router.put("/{name}/aliases/{alias}", response_model=ModelView)
    def set_alias(name: ModelName, alias: AliasName, spec: AliasSpec, user: User) -> ModelView:
        return ops.set_alias(user, name, alias, spec.version)

    @router.delete("/{name}/aliases/{alias}", response_model=ModelView)
    def remove_alias(name: ModelName, alias: AliasName, user: User) -> ModelView:
        return ops.remove_alias(user, name, alias)

    return router

"""The REST administration endpoints: they need the `admin` scope when authentication is
on (the door's Guard refuses other callers first; the dependency checks it again here)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import HTTPConnection

from server.core import schemas
from server.core.auth import ADMIN, require_scope
from server.errors import NotReady
from server.rest.converters import json_response

router = APIRouter()


@router.post(
    "/v1/admin/reload", response_model=schemas.ReloadResponse, summary="Reload or roll back the model",
    responses={
        404: {"model": schemas.ErrorBody, "description": "The model store has no such version."},
        409: {"model": schemas.ErrorBody,
              "description": "The version cannot be loaded (missing or corrupt file, digest "
                             "mismatch, incompatible config); the old version keeps serving."},
        422: {"model": schemas.ErrorBody, "description": "Invalid body."},
    },
    dependencies=[Depends(require_scope(ADMIN))],
)
async def reload(conn: HTTPConnection, body: schemas.ReloadRequest | None = None) -> Any:
    """Loads `version` (absent: the pinned version, else the newest in the store) beside the
    serving one, warms it, then switches to it. Requests in flight finish on the version
    they started on. Rollback is a reload of an older version."""
    reloader = conn.app.state.reloader
    if reloader is None:
        raise NotReady("this server cannot reload its model")
    return json_response(await reloader.reload(body.version if body is not None else None))

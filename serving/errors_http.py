"""One JSON error shape for the Bunko model routes: ``{"error": {"code", "message", "detail"}}``.

The core's ``BunkoError`` keeps its ``http_status``; a request body that does not validate is a
422 with the fields that were wrong; anything else is a 500 whose message names the failure.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bunko.errors import BunkoError

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BunkoError)
    async def _bunko(_: Request, exc: BunkoError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return JSONResponse(
            {"error": {"code": "invalid_input", "message": f"invalid request: {problems}", "detail": None}},
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("model route failed")
        return JSONResponse(
            {"error": {"code": "model_error", "message": f"{type(exc).__name__}: {exc}", "detail": None}},
            status_code=500,
        )

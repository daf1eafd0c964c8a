"""The FastAPI app of `edgefmp serve`, built by `create_app(catalog, settings)`.

No module state: the app holds its model table, settings and metrics, so several apps (tests,
one per catalog) live side by side. Every error a client can cause is a 4xx in the style of
the protocol it spoke (KServe `{"error": "..."}`, OpenAI `{"error": {"message", "type", ...}}`);
only a bug in this server answers 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware import Middleware
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgefmp import __version__
from edgefmp.backends.catalog import Catalog
from edgefmp.serve.errors import RequestRejected
from edgefmp.serve.kserve import kserve_router
from edgefmp.serve.metrics import Metrics
from edgefmp.serve.middleware import AuthMiddleware, BodyLimitMiddleware, MetricsMiddleware, error_payload
from edgefmp.serve.models import ModelTable
from edgefmp.serve.openai_api import openai_router
from edgefmp.serve.settings import ServeSettings

log = logging.getLogger(__name__)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _error(request: Request, status: int, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_payload(request.url.path, status, message, param), status_code=status)


def create_app(catalog: Catalog, settings: ServeSettings | None = None) -> FastAPI:
    """An app serving every backend of `catalog` by name (see edgefmp.serve.models).

    The catalog stays owned by the caller (close it after the server stops).
    """
    settings = settings or ServeSettings()
    table = ModelTable(catalog, settings.default_model)
    metrics = Metrics()
    app = FastAPI(
        title="edgefmp serve",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics, known_models=table.__contains__),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes),
            Middleware(AuthMiddleware, token=settings.token),
        ],
    )
    app.state.models = table
    app.state.metrics = metrics
    app.state.settings = settings

    @app.exception_handler(RequestRejected)
    async def rejected(request: Request, exc: RequestRejected) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return _error(request, exc.status, exc.message, exc.param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            message = (
                f"no route {request.method} {request.url.path[:200]}; "
                "see docs/DEPLOY.md (section `edgefmp serve`) for the endpoints"
            )
        return _error(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return _error(request, 400, f"{where}: {first['msg']}", where)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(request, 500, f"internal error in edgefmp serve ({type(exc).__name__}); see the server log")

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=PROMETHEUS_TEXT)

    app.include_router(kserve_router(table, settings))
    app.include_router(openai_router(table, settings))
    return app

"""The edge's API documentation: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) that work offline, and an
OpenAPI document that says what the edge really does.

Decisions:

- The Swagger UI and ReDoc assets come from the pinned ``fastapi-offline`` package and are served by the
  edge under ``/_assets/docs/``: no CDN, so the docs render on an air-gapped machine or behind a VPN.
  ReDoc is told not to load Google Fonts, and its script is served with its one remote image (the Redocly
  logo) removed; Swagger UI's validator badge (which sends the document to validator.swagger.io) is off.
- The document declares the bearer scheme (``Authorization: Bearer <JWT or session client secret>``) on every
  operation that needs it, the ChatKit request union as the body of ``POST /chatkit``, and the error
  responses of the edge's one error shape (``{"error": {"code", "message"}}``): 400 for any malformed input
  (the edge never answers 422, so FastAPI's 422 entries are replaced), 401, 403 where a path names a user,
  404, 413 where there is a body, 429 and 503.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import PydanticJsonSchemaWarning

from services.edge.chatkit_server import CHATKIT_REQUEST

ASSETS_PATH = "/_assets/docs"
REDOC_REMOTE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
BEARER = "bearerAuth"
# Paths anyone may read: health, metrics, the docs and the playground's pages.
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics")


class ErrorBody(BaseModel):
    """What went wrong."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """The edge's one error shape."""

    error: ErrorBody


ERRORS = {
    "400": "Malformed input: bad JSON, an unknown ChatKit request type, a bad parameter",
    "401": "Missing, expired or forged token: sign in again",
    "403": "The path names another user",
    "404": "Not found (also anything of another user, so ids leak nothing)",
    "413": "The body is larger than the limit",
    "429": "Past the rate limit or the failed sign-in budget; see Retry-After",
    "503": "A service behind the edge is down; retry later (Retry-After)",
}


def assets_directory() -> Path:
    """Where the pinned Swagger UI and ReDoc assets are installed."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _redoc_without_remote_logo() -> bytes:
    """ReDoc's script, its one remote asset (the Redocly logo in the sidebar) replaced by nothing.

    ReDoc hides the logo when its image fails to load, which an empty ``data:`` URL does at once.
    """
    script = (assets_directory() / "redoc.standalone.js").read_bytes()
    return script.replace(REDOC_REMOTE_LOGO, b"data:,")


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets from this process, and the corrected OpenAPI document.

    The app must be created with ``docs_url=None, redoc_url=None``.
    """
    title = app.title
    redoc_js = _redoc_without_remote_logo()

    @app.get(f"{ASSETS_PATH}/redoc.standalone.js", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(redoc_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})

    app.mount(ASSETS_PATH, StaticFiles(directory=assets_directory()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            # No validator badge: it would send the document to validator.swagger.io.
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - API reference",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = correct_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _chatkit_body(components: dict[str, Any]) -> dict[str, Any]:
    """The ChatKit request union as a request body, its definitions moved into the components."""
    with warnings.catch_warnings():
        # A generic default of the SDK (~TType) has no JSON form; pydantic leaves it out, which is right.
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        schema = CHATKIT_REQUEST.json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    return {
        "required": True,
        "content": {"application/json": {"schema": schema}},
        "description": "A ChatKit request: its `type` picks the shape (threads.create, threads.add_user_message, ...)",
    }


def correct_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the bearer scheme, the ChatKit body and the real error responses; drop FastAPI's 422s."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Your identity provider's JWT, or the client_secret of POST /chatkit/sessions "
            "('switchboard token --user NAME' mints a development token).",
        }
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            codes: list[str] = []
            if path not in PUBLIC_PATHS:
                operation["security"] = [{BEARER: []}]
                codes += ["400", "401", "404", "429", "503"]
                if method in ("post", "put", "patch"):
                    codes.append("413")
                if "{user_id}" in path:
                    codes.append("403")
            elif path == "/readyz":
                codes.append("503")
            for code in sorted(codes):
                responses.setdefault(
                    code,
                    {
                        "description": ERRORS[code],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
                    },
                )
            if path == "/chatkit" and method == "post":
                operation["requestBody"] = _chatkit_body(schemas)
                responses["200"] = {
                    "description": "JSON for reads and edits; Server-Sent Events (`id: <run>:<seq>`) for requests"
                    " that stream (a new message, a retry, an action)",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                }
    return schema

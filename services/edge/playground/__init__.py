"""The playground: a chat page at ``/`` that talks to this edge, and a page on mounting OpenAI's web component.

Every asset is a file of this package served by the edge (``/playground/static/``): no CDN, no build step,
so it works offline. The pages carry a Content-Security-Policy that lets the playground load and call only
this origin.

Decisions:

- On under ``switchboard up`` (a development stack), otherwise off unless ``SWITCHBOARD_PLAYGROUND=on``:
  a production edge serves no page nobody asked for. When off, ``/`` is a 404 that says how to turn it on.
- Under ``up`` with its development secret the page is signed in as the development user: ``up`` passes the
  token it minted in ``SWITCHBOARD_PLAYGROUND_TOKEN`` and ``/playground/config.json`` hands it out, to
  clients on this host (loopback) only, so ``up --host 0.0.0.0`` does not give it to the network.
  Elsewhere the page asks for a token.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from switchboard.config import env_bool, env_str

STATIC = Path(__file__).parent / "static"
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# The component page may load OpenAI's script, and the component its frames, only when asked to.
CHATKIT_PAGE_POLICY = (
    "default-src 'self'; script-src 'self' https://cdn.platform.openai.com; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self' https://*.openai.com; frame-src https://cdn.platform.openai.com; img-src 'self' data: https:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
OFF_MESSAGE = (
    "the playground is off on this edge: set SWITCHBOARD_PLAYGROUND=on to serve it (it is on under "
    "'switchboard up'); the ChatKit endpoint is POST /chatkit and the API docs are at /docs"
)


def playground_enabled() -> bool:
    """``SWITCHBOARD_PLAYGROUND`` (default off; ``switchboard up`` sets it on unless told otherwise)."""
    return env_bool("SWITCHBOARD_PLAYGROUND", False)


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install_playground(app: FastAPI) -> None:
    """Serve the playground at ``/`` (or, when it is off, a 404 at ``/`` saying how to turn it on)."""
    if not playground_enabled():

        @app.get("/", include_in_schema=False)
        async def playground_off() -> JSONResponse:
            return JSONResponse({"error": {"code": "not_found", "message": OFF_MESSAGE}}, status_code=404)

        return

    token = env_str("SWITCHBOARD_PLAYGROUND_TOKEN")
    app.mount("/playground/static", StaticFiles(directory=STATIC), name="playground-static")

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/playground/chatkit", include_in_schema=False)
    async def chatkit_component() -> FileResponse:
        return FileResponse(STATIC / "chatkit.html", headers={"Content-Security-Policy": CHATKIT_PAGE_POLICY})

    @app.get("/playground/config.json", include_in_schema=False)
    async def playground_config(request: Request) -> JSONResponse:
        shared = token if token and _is_loopback(request) else None
        return JSONResponse({"token": shared}, headers={"Cache-Control": "no-store"})

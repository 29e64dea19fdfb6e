"""The edge process: the FastAPI app on uvicorn, stopped gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import uvicorn

from services.edge.app import create_app
from services.edge.config import EdgeConfig


def serve(config: EdgeConfig, *, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn finishes open requests first, up to 10 s)."""
    app = create_app(config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        # Streams are long-lived: keep idle keep-alive connections for a while.
        timeout_keep_alive=30,
        # The client address is the peer's unless SWITCHBOARD_EDGE_TRUSTED_PROXIES says
        # otherwise (services.edge.auth.ClientAddresses); uvicorn would otherwise believe
        # any X-Forwarded-For sent from this host.
        proxy_headers=False,
    )

"""A webhook receiver the tests run (real HTTP on 127.0.0.1), and databases of one test.

Webhook tests get a database of their own: the deployment's endpoint receives
every org's events, and a deliverer delivers every endpoint's, so a shared
database would mix tests.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and how it answered."""

    headers: dict[str, str]
    body: bytes
    answer: str


class WebhookReceiver:
    """Answers POSTs as ``script`` says, one entry per request (then 200):
    an int is a status, a float is seconds to hang before answering 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[int | float] = []
        self._lock = threading.Lock()
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer._lock:
                    action: int | float = outer.script.pop(0) if outer.script else 200
                    outer.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, str(action)))
                outer.arrived.set()
                status = 200
                if isinstance(action, float):
                    time.sleep(action)
                else:
                    status = action
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up (time-out) or died

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answered_ok(self) -> list[Received]:
        """The requests answered 200 at once."""
        with self._lock:
            return [r for r in self.received if r.answer == "200"]

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

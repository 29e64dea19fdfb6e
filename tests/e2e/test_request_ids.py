"""The edge names every request: the client's X-Request-ID (when sane) or a new one, sent back."""

from __future__ import annotations

import re

import httpx

from tests.e2e.conftest import Stack, bearer, new_user


async def test_the_edge_answers_with_the_request_id(stack: Stack, http: httpx.AsyncClient) -> None:
    headers = bearer(stack.token(new_user()))
    body = {"type": "threads.list", "params": {"limit": 5}}
    kept = await http.post("/chatkit", json=body, headers={**headers, "X-Request-ID": "trace-abc-123"})
    assert kept.status_code == 200 and kept.headers["x-request-id"] == "trace-abc-123"
    made = await http.post("/chatkit", json=body, headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    replaced = await http.get("/healthz", headers={"X-Request-ID": "two words"})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    refused = await http.post("/chatkit", json=body)  # errors carry it too
    assert refused.status_code == 401 and refused.headers["x-request-id"]

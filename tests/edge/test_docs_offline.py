"""``/docs`` and ``/redoc`` load nothing from another origin, and the OpenAPI document says what the edge does:
the bearer scheme, the ChatKit request union as the body of ``POST /chatkit``, the real error responses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.edge.app import create_app
from services.edge.config import EdgeConfig


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(EdgeConfig.from_env())) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    reply = client.get("/openapi.json")
    assert reply.status_code == 200
    document: dict[str, Any] = reply.json()
    return document


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_the_edge_itself(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert assets, html.text
    for asset in assets:
        assert asset.startswith("/_assets/docs/"), f"{page} loads {asset} from elsewhere"
        reply = client.get(asset)
        assert reply.status_code == 200, asset
        assert len(reply.content) > 1000
    assert "googleapis" not in html.text
    assert "cdn." not in html.text


def test_the_document_declares_the_bearer_scheme_on_every_authenticated_operation(openapi: dict[str, Any]) -> None:
    scheme = openapi["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if path in ("/healthz", "/readyz", "/metrics"):
                assert "security" not in operation
            else:
                assert operation["security"] == [{"bearerAuth": []}], f"{method} {path}"


def test_post_chatkit_takes_the_chatkit_request_union(openapi: dict[str, Any]) -> None:
    body = openapi["paths"]["/chatkit"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "type"
    types = set(body["discriminator"]["mapping"])
    assert {"threads.create", "threads.add_user_message", "threads.list", "items.list"} <= types
    for ref in body["discriminator"]["mapping"].values():
        name = ref.rsplit("/", 1)[-1]
        assert name in openapi["components"]["schemas"], ref
    streams = openapi["paths"]["/chatkit"]["post"]["responses"]["200"]["content"]
    assert set(streams) == {"application/json", "text/event-stream"}


def test_errors_are_the_edges_own_and_never_422(openapi: dict[str, Any]) -> None:
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path}"
            if path in ("/healthz", "/metrics"):
                continue
            expected = {"503"} if path == "/readyz" else {"400", "401", "404", "429", "503"}
            if method == "post":
                expected.add("413")
            if "{user_id}" in path:
                expected.add("403")
            assert expected <= set(responses), f"{method} {path}: {sorted(responses)}"
            for code in expected:
                assert responses[code]["content"]["application/json"]["schema"] == error_ref
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


def test_a_request_without_a_token_is_a_401_in_the_documented_shape(client: TestClient) -> None:
    reply = client.get("/api/conversations", params={"limit": "many"})
    assert reply.status_code == 401
    assert set(reply.json()["error"]) == {"code", "message"}


def test_the_served_redoc_script_names_no_remote_asset(client: TestClient) -> None:
    script = client.get("/_assets/docs/redoc.standalone.js")
    assert script.status_code == 200
    assert "cdn.redoc.ly" not in script.text
    assert "redocly logo" in script.text  # the same script, only the image's address replaced

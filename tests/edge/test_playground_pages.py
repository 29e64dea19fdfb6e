"""The playground's pages: off unless asked for (a 404 saying how), every asset from the edge itself under a
policy that allows only this origin, and the development token handed only to this host."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.edge.app import create_app
from services.edge.config import EdgeConfig


def make_app(monkeypatch: pytest.MonkeyPatch, **env: str) -> FastAPI:
    monkeypatch.delenv("SWITCHBOARD_PLAYGROUND", raising=False)
    monkeypatch.delenv("SWITCHBOARD_PLAYGROUND_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return create_app(EdgeConfig.from_env())


@pytest.fixture
def playground(monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    yield make_app(monkeypatch, SWITCHBOARD_PLAYGROUND="on", SWITCHBOARD_PLAYGROUND_TOKEN="dev-token")


def test_the_playground_is_off_by_default_and_the_404_says_how_to_turn_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(make_app(monkeypatch)) as client:
        reply = client.get("/")
        assert reply.status_code == 404
        assert "SWITCHBOARD_PLAYGROUND=on" in reply.json()["error"]["message"]
        assert client.get("/playground/static/app.js").status_code == 404


@pytest.mark.parametrize("page", ["/", "/playground/chatkit"])
def test_every_asset_of_a_page_is_served_by_the_edge(playground: FastAPI, page: str) -> None:
    with TestClient(playground) as client:
        html = client.get(page)
        assert html.status_code == 200
        assert "default-src 'self'" in html.headers["content-security-policy"]
        markup = re.sub(r"<pre.*?</pre>", "", html.text, flags=re.S)  # the component page's code sample
        assets = re.findall(r'(?:src|href)="([^"]+)"', markup)
        local = [a for a in assets if a.startswith("/playground/static/")]
        assert local, html.text
        for asset in local:
            assert client.get(asset).status_code == 200, asset
        assert not [a for a in assets if a.startswith(("http:", "https:", "//"))]


def test_the_playground_page_may_reach_only_its_own_origin(playground: FastAPI) -> None:
    with TestClient(playground) as client:
        policy = client.get("/").headers["content-security-policy"]
    for directive in ("script-src 'self';", "connect-src 'self';", "style-src 'self';"):
        assert directive in policy


def test_the_development_token_is_handed_only_to_this_host(playground: FastAPI) -> None:
    with TestClient(playground, client=("127.0.0.1", 40000)) as local:
        assert local.get("/playground/config.json").json() == {"token": "dev-token"}
    with TestClient(playground, client=("192.0.2.7", 40000)) as remote:
        assert remote.get("/playground/config.json").json() == {"token": None}

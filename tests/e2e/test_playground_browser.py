"""The playground and the docs in a real browser: Playwright driving Debian's ``chromium`` (headless, no
sandbox) against the suite's ``switchboard up`` stack. Every request the pages make to another origin is
blocked and recorded, so each test also proves the page needs nothing from a CDN.

The set-up installs ``chromium`` with apt-get when it is missing and this runs as root; the tests are
skipped, saying why, only when that is impossible.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import Stack, new_user

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

TIMEOUT_MS = 20_000
# The first test's set-up may install chromium (apt-get) on a fresh machine: minutes, past the suite's 120 s.
pytestmark = pytest.mark.timeout(900)
expect.set_options(timeout=TIMEOUT_MS)


def _chromium() -> str:
    """The path of Debian's chromium, installed now if missing; skips the module when that cannot be done."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and cannot be (needs root and apt-get): apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            pytest.skip(f"could not install chromium ({' '.join(command)}): {done.stderr.strip()[-300:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but there is no chromium on PATH")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--headless", "--no-sandbox"]
        )
        yield launched
        launched.close()


@dataclass
class Offline:
    """Requests a page tried to make to any origin but the edge's (all blocked)."""

    origin: str
    blocked: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin or parts.scheme in ("data", "blob"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[tuple[Page, Offline]]:
    context = browser.new_context(base_url=stack.edge)
    offline = Offline(stack.edge)
    context.route("**/*", offline.route)
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened, offline
    context.close()
    assert offline.blocked == [], f"the page reached for another origin: {offline.blocked}"


def sign_in(page: Page, token: str) -> None:
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("sign-in-button").click()
    expect(page.get_by_test_id("who")).to_contain_text("signed in as")


def say(page: Page, text: str) -> None:
    page.get_by_test_id("message-input").fill(text)
    page.get_by_test_id("send").click()


def test_a_message_streams_its_answer_a_reload_restores_the_thread_and_another_user_starts_clean(
    page: tuple[Page, Offline], stack: Stack
) -> None:
    browser_page, _ = page
    alice = new_user()
    browser_page.goto("/")
    sign_in(browser_page, stack.token(alice))
    say(browser_page, "add task buy oat milk")
    answer = browser_page.get_by_test_id("assistant-message").last
    expect(answer).to_contain_text("buy oat milk")
    expect(browser_page.get_by_test_id("thread-list").locator("li")).to_have_count(1)
    stored = browser_page.evaluate(f"localStorage.getItem('chatkit:thread:user:{alice}')")
    assert stored and stored.startswith("thr")

    browser_page.reload()
    expect(browser_page.get_by_test_id("user-message").first).to_contain_text("add task buy oat milk")
    expect(browser_page.get_by_test_id("assistant-message").last).to_contain_text("buy oat milk")

    browser_page.get_by_role("button", name="Sign out").click()
    sign_in(browser_page, stack.token(new_user()))
    expect(browser_page.get_by_test_id("thread-list").locator("li")).to_have_count(0)
    expect(browser_page.get_by_test_id("transcript").locator(":scope > *")).to_have_count(0)


def test_an_expired_token_shows_the_sign_in_again_banner(page: tuple[Page, Offline], stack: Stack) -> None:
    browser_page, _ = page
    browser_page.goto("/")
    expired = stack.token(new_user(), ttl=-3600)  # past any clock leeway
    sign_in(browser_page, expired)
    banner = browser_page.get_by_test_id("reauth-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Paste a new one")
    expect(browser_page.get_by_test_id("token-input")).to_be_visible()


def test_an_approval_card_is_decided_by_its_button(page: tuple[Page, Offline], stack: Stack) -> None:
    browser_page, _ = page
    browser_page.goto("/")
    sign_in(browser_page, stack.token(new_user()))
    say(browser_page, "add task water the plants")
    answer = browser_page.get_by_test_id("assistant-message").last
    expect(answer).to_contain_text("water the plants")
    match = re.search(r"task_[0-9a-f]+", answer.inner_text())
    assert match, answer.inner_text()
    say(browser_page, f"delete task {match.group(0)}")
    approve = browser_page.get_by_test_id("card-confirm")
    expect(approve).to_have_text("Approve")
    approve.click()
    expect(browser_page.get_by_test_id("assistant-message").last).to_contain_text(f"Deleted task {match.group(0)}")
    expect(browser_page.get_by_test_id("card-confirm")).to_have_count(0)  # the decided card has no buttons


def test_the_api_docs_render_their_operations_offline(page: tuple[Page, Offline]) -> None:
    browser_page, _ = page
    browser_page.goto("/docs")
    operations = browser_page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    paths = operations.all_inner_texts()
    assert any(p.strip() == "/chatkit" for p in paths), paths
    assert len(paths) > 10
    browser_page.goto("/redoc")
    expect(browser_page.get_by_role("heading", name="The ChatKit protocol").first).to_be_visible()


def test_a_reload_mid_answer_joins_the_running_answer_and_stop_ends_one(
    page: tuple[Page, Offline], stack: Stack
) -> None:
    browser_page, _ = page
    browser_page.goto("/")
    sign_in(browser_page, stack.token(new_user()))
    say(browser_page, "count to 2000")  # hundreds of deltas at 5 ms: seconds of answer
    answer = browser_page.get_by_test_id("assistant-message").last
    expect(answer).to_contain_text("Counting to 2000: 1 2 3")
    assert "1999 2000." not in answer.inner_text()
    browser_page.reload()  # mid-answer
    expect(browser_page.get_by_test_id("assistant-message").last).to_contain_text("1999 2000.")

    say(browser_page, "count to 10000")  # the longest answer there is: stop lands well before its end
    second = browser_page.get_by_test_id("assistant-message").last
    expect(second).to_contain_text("Counting to 10000: 1 2 3")
    browser_page.get_by_test_id("stop").click()
    expect(browser_page.get_by_test_id("stop")).to_be_disabled(timeout=30_000)  # the stream ended
    expect(browser_page.get_by_test_id("send")).to_be_enabled()
    assert "9999 10000." not in browser_page.get_by_test_id("assistant-message").last.inner_text()


def test_an_operators_reply_appears_while_the_page_is_idle(page: tuple[Page, Offline], stack: Stack) -> None:
    browser_page, _ = page
    browser_page.goto("/")
    sign_in(browser_page, stack.token(new_user()))
    say(browser_page, "add task call the bank")
    expect(browser_page.get_by_test_id("assistant-message").last).to_contain_text("call the bank")
    thread_id = browser_page.evaluate("state.threadId")
    operator = {"Authorization": f"Bearer {stack.token(f'op-{new_user()}', operator=True)}"}
    with httpx.Client(base_url=stack.edge, headers=operator, timeout=10) as http:
        assert http.post(f"/api/operator/threads/{thread_id}/takeover").status_code == 200
        sent = http.post(f"/api/operator/threads/{thread_id}/messages", json={"text": "Hi, Sam from support here."})
        assert sent.status_code == 201, sent.text
    expect(browser_page.get_by_text("Hi, Sam from support here.")).to_be_visible()  # no reload, no message sent

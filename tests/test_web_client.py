"""The web client served at ``/``, end to end in a real headless Chromium.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or
``TIDINGS_CHROMIUM``) driven by Playwright for Python; no browser is ever
downloaded. Without the browser or Playwright the browser tests skip, saying
why, except under TIDINGS_TEST_SERVICES=required (CI), where they fail.

Each test runs the whole server in-process on a fixed loopback port, so a
"network drop" is a real server restart on the same port and database. Every
page's console is watched: an error there, or an uncaught exception, fails
the test. Screenshots go to TIDINGS_SCREENSHOT_DIR (default: a
``tidings-screenshots`` folder in the system's temp dir).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest
from aiohttp import web

from tests import conftest
from tests.backends import services_required
from tests.conftest import FAST_HASHER, PASSWORD
from tidings.app import build_app
from tidings.client import ApiError, Client
from tidings.config import Settings
from tidings.harness.spawn import free_port
from tidings.models import User

CHROMIUM = Path(os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium"))
WEB = Path(__file__).resolve().parent.parent / "tidings" / "web"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(
    os.environ.get("TIDINGS_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "tidings-screenshots")
)
DESKTOP = {"width": 1180, "height": 760}
PHONE = {"width": 390, "height": 760}
# What Chromium itself logs while the server is down on purpose.
NETWORK_NOISE = re.compile(
    r"ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|"
    r"WebSocket connection to .* failed|Failed to load resource"
)


# -- the server ------------------------------------------------------------------


@dataclass
class WebServer:
    """The app on a fixed loopback port, so it can stop and start again there."""

    settings: Settings
    port: int = field(default_factory=free_port)
    runner: web.AppRunner | None = None
    clients: list[Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = build_app(self.settings, hasher=FAST_HASHER)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.runner = runner

    async def stop(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()

    async def account(self, username: str, display_name: str) -> tuple[User, Client]:
        """A user made over the API, with a logged-in client (closed after the test)."""
        client = Client(self.url)
        self.clients.append(client)
        user = await client.signup(username, PASSWORD, display_name)
        await client.login(username, PASSWORD)
        return user, client

    async def client_for(self, username: str) -> Client:
        return await self.client_for_password(username, PASSWORD)

    async def client_for_password(self, username: str, password: str) -> Client:
        client = Client(self.url)
        self.clients.append(client)
        await client.login(username, password)
        return client


@pytest.fixture
async def web_server(tmp_path: Path) -> AsyncIterator[WebServer]:
    running = WebServer(conftest.settings_for(tmp_path, time_separator_seconds=1.0))
    await running.start()
    try:
        yield running
    finally:
        for client in running.clients:
            await client.close()
        await running.stop()


# -- the browser -----------------------------------------------------------------


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; no browser download needed)"
    return None


class Console:
    """Collects console errors and uncaught exceptions of every watched page."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.server_down = False

    def watch(self, page: Any, name: str) -> None:
        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            if self.server_down and NETWORK_NOISE.search(message.text):
                return
            self.errors.append(f"{name}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"{name}: uncaught {error}"))


@dataclass
class Browser:
    browser: Any
    console: Console
    url: str

    async def page(self, name: str, *, context: Any = None, viewport: Any = None) -> Any:
        """A new tab; a new browser context (another user's browser) unless one is given."""
        if context is None:
            context = await self.browser.new_context(viewport=viewport or DESKTOP)
        page = await context.new_page()
        self.console.watch(page, name)
        return page


@pytest.fixture
async def browser(web_server: WebServer) -> AsyncIterator[Browser]:
    missing = _browser_missing()
    if missing:
        if services_required():
            pytest.fail(f"{missing}; TIDINGS_TEST_SERVICES=required", pytrace=False)
        pytest.skip(missing)
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=8000)
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        console = Console()
        try:
            yield Browser(chromium, console, web_server.url)
        finally:
            await chromium.close()
        assert console.errors == [], "errors in the browser console"


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


async def screenshot(page: Any, name: str) -> None:
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


# -- page helpers ------------------------------------------------------------------


async def sign_up(page: Any, url: str, username: str, display_name: str) -> None:
    await page.goto(url)
    await page.click("#auth-switch")
    await page.fill("#auth-username", username)
    await page.fill("#auth-display", display_name)
    await page.fill("#auth-password", PASSWORD)
    await page.press("#auth-password", "Enter")
    await expect(page.locator("#me-name")).to_have_text(display_name)
    await expect(page.locator("#conn-text")).to_have_text("Online")


async def sign_in(page: Any, url: str, username: str) -> None:
    await page.goto(url)
    await page.fill("#auth-username", username)
    await page.fill("#auth-password", PASSWORD)
    await page.click("#auth-submit")
    await expect(page.locator("#conn-text")).to_have_text("Online")


def chat(page: Any, title: str) -> Any:
    return page.locator(f'#chat-list .chat:has(.chat-title:text-is("{title}"))')


def bubbles(page: Any) -> Any:
    return page.locator("#messages .msg:not(.pending) .bubble")


async def scroll_to_first(page: Any, count: int) -> None:
    """Scroll the open chat to its top until ``count`` messages are loaded, as a
    person does (each scroll to the top loads an older page), and check the first."""
    for _ in range(10):
        if await bubbles(page).count() == count:
            break
        await page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
        await asyncio.sleep(0.25)
    await expect(bubbles(page)).to_have_count(count)
    await expect(bubbles(page).first).to_have_text("message 1")
    await expect(page.locator(".history-start")).to_be_visible()


async def send(page: Any, text: str) -> None:
    await page.fill("#compose", text)
    await page.press("#compose", "Enter")


async def user_id(page: Any) -> int:
    return int(await page.evaluate("JSON.parse(localStorage['tidings.session']).user.id"))


async def titles(page: Any) -> list[str]:
    found: list[str] = await page.locator("#chat-list .chat-title").all_inner_texts()
    return found


async def start_chat(page: Any, who: str) -> None:
    await page.click("#btn-new-chat")
    await page.fill("#chat-user", who)
    await page.press("#chat-user", "Enter")
    await expect(page.locator("#dlg-chat")).not_to_be_visible()


# -- tests ---------------------------------------------------------------------------


async def test_the_page_and_its_files_are_served_with_secure_headers(
    web_server: WebServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(web_server.url + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
            headers = response.headers
            etag = headers["ETag"]
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "style-src 'self'" in csp
        assert "media-src 'self'" in csp  # voice notes
        host = f"127.0.0.1:{web_server.port}"
        assert f"connect-src 'self' ws://{host} wss://{host}" in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        # Everything the page loads is ours: no CDN, no inline script or style.
        assert re.findall(r'(?:src|href)="([^"]+)"', page) == [
            "/static/favicon.svg",
            "/static/style.css",
            "/static/main.js",
        ]
        assert "<script>" not in page and "<style" not in page and "style=" not in page

        async with http.get(web_server.url + "/", headers={"If-None-Match": etag}) as response:
            assert response.status == 304
            assert response.headers["X-Frame-Options"] == "DENY"
        modules = sorted(p.name for p in WEB.glob("*.js"))
        assert "main.js" in modules and "app.js" not in modules
        for name, kind in [
            *((module, "text/javascript") for module in modules),
            ("style.css", "text/css"),
            ("favicon.svg", "image/svg+xml"),
        ]:
            async with http.get(f"{web_server.url}/static/{name}") as response:
                assert response.status == 200
                assert response.content_type == kind
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert "Content-Security-Policy" in response.headers
                body = await response.text()
                assert "https://" not in body
        for path in ["/static/nope.js", "/static/..%2fapp.py", "/static/../app.py", "/web/app.js"]:
            async with http.get(web_server.url + path) as response:
                assert response.status == 404, path
                assert (await response.json())["error"]["code"] == "not_found"


async def test_two_users_chat_privately(web_server: WebServer, browser: Browser) -> None:
    carol, carol_api = await web_server.account("carol", "Carol")
    alice = await browser.page("alice")
    bob = await browser.page("bob")
    await sign_up(alice, browser.url, "alice", "Alice")
    await sign_up(bob, browser.url, "bob", "Bob")
    bob_id = await user_id(bob)
    alice_id = await user_id(alice)

    # Carol writes first, then Alice: Bob's list is newest first.
    await carol_api.send(f"p:{min(carol.id, bob_id)}-{max(carol.id, bob_id)}", "hey Bob")
    await expect(chat(bob, "Carol").locator(".badge")).to_have_text("1")
    await start_chat(alice, "bob")
    await expect(alice.locator("#pane-title")).to_have_text("Bob")
    await send(alice, "hi Bob")
    await expect(bubbles(alice)).to_have_text(["hi Bob"])
    await expect(alice.locator(".msg.own .status")).to_have_text("Sent")
    await expect(chat(bob, "Alice").locator(".badge")).to_have_text("1")
    assert await titles(bob) == ["Alice", "Carol"]
    await expect(bob).to_have_title("(2) tidings")
    await expect(chat(bob, "Alice").locator(".chat-preview")).to_have_text("hi Bob")
    await expect(chat(bob, "Alice").locator(".chat-time")).to_have_text(re.compile(r"^\d\d:\d\d$"))

    # A second tab of Bob's, in the same browser: the same badges, live.
    bob2 = await browser.page("bob-tab2", context=bob.context)
    await bob2.goto(browser.url)
    await expect(chat(bob2, "Alice").locator(".badge")).to_have_text("1")
    await send(alice, "are you there?")
    await expect(chat(bob, "Alice").locator(".badge")).to_have_text("2")
    await expect(chat(bob2, "Alice").locator(".badge")).to_have_text("2")
    await carol_api.send(f"p:{min(carol.id, bob_id)}-{max(carol.id, bob_id)}", "ping")
    await expect(chat(bob, "Carol").locator(".badge")).to_have_text("2")
    assert await titles(bob) == ["Carol", "Alice"]
    assert await titles(bob2) == ["Carol", "Alice"]
    await expect(bob2).to_have_title("(4) tidings")

    # Opening it reads it: the badge clears here, in the other tab, and Alice sees "Read".
    await chat(bob, "Alice").click()
    await expect(bubbles(bob)).to_have_text(["hi Bob", "are you there?"])
    await expect(bob.locator(".msg.other")).to_have_count(2)
    await expect(chat(bob, "Alice").locator(".badge")).to_have_count(0)
    await expect(chat(bob2, "Alice").locator(".badge")).to_have_count(0)
    await expect(bob2).to_have_title("(2) tidings")
    await expect(alice.locator(".msg.own .status")).to_have_text("Read")

    # Enter sends, Shift+Enter breaks the line; after a pause a time line appears.
    await asyncio.sleep(1.2)
    await bob.fill("#compose", "line one")
    await bob.press("#compose", "Shift+Enter")
    await bob.type("#compose", "line two")
    await bob.press("#compose", "Enter")
    await expect(bubbles(alice).last).to_have_text("line one\nline two")
    await expect(bob.locator("#compose")).to_have_value("")
    await expect(bob.locator(".msg.own .bubble")).to_have_text(["line one\nline two"])
    await expect(alice.locator(".msg.other .bubble")).to_have_text(["line one\nline two"])
    alice_api = await web_server.client_for("alice")
    conversation = f"p:{alice_id}-{bob_id}"
    stored = await alice_api.messages(conversation)
    assert [m.body for m in stored] == ["hi Bob", "are you there?", "line one\nline two"]
    separators = sum(m.time_separator for m in stored)
    assert separators == 2
    await expect(alice.locator("#messages .time-line")).to_have_count(separators)
    await expect(bob.locator("#messages .time-line")).to_have_count(separators)
    await screenshot(bob, "private-chat-desktop")

    # A reload keeps everything: the open chat, its history, the list, no badges.
    await bob.reload()
    await expect(bob.locator("#conn-text")).to_have_text("Online")
    await expect(bob.locator("#pane-title")).to_have_text("Alice")
    await expect(bubbles(bob)).to_have_text(["hi Bob", "are you there?", "line one\nline two"])
    await expect(bob.locator("#messages .time-line")).to_have_count(separators)
    assert await titles(bob) == ["Alice", "Carol"]
    await expect(chat(bob, "Alice").locator(".badge")).to_have_count(0)
    await expect(chat(bob, "Carol").locator(".badge")).to_have_text("2")

    # Sign out, and in again.
    await alice.click("#btn-signout")
    await expect(alice.locator("#auth")).to_be_visible()
    assert await alice.evaluate("localStorage.getItem('tidings.session')") is None
    await sign_in(alice, browser.url, "alice")
    await expect(chat(alice, "Bob").locator(".chat-preview")).to_have_text("line one line two")
    await screenshot(alice, "after-sign-in")


async def test_group_chat_with_members(web_server: WebServer, browser: Browser) -> None:
    await web_server.account("alice", "Alice")
    await web_server.account("bob", "Bob")
    await web_server.account("carol", "Carol Jones")
    alice = await browser.page("alice")
    bob = await browser.page("bob")
    carol = await browser.page("carol")
    for page, name in [(alice, "alice"), (bob, "bob"), (carol, "carol")]:
        await sign_in(page, browser.url, name)

    await alice.click("#btn-new-group")
    await alice.fill("#group-name", "Weekend hike")
    await alice.fill("#group-members", "bob")
    await alice.click("#form-group button[type=submit]")
    await expect(alice.locator("#pane-title")).to_have_text("Weekend hike")
    await expect(alice.locator("#pane-sub")).to_have_text("2 members")
    await expect(chat(bob, "Weekend hike")).to_be_visible()  # the `conversation` event
    await send(alice, "Who's in for Saturday?")
    await expect(chat(bob, "Weekend hike").locator(".chat-preview")).to_have_text(
        "Alice: Who's in for Saturday?"
    )
    await expect(chat(bob, "Weekend hike").locator(".badge")).to_have_text("1")
    await chat(bob, "Weekend hike").click()
    await expect(bob.locator(".msg.other .sender")).to_have_text(["Alice"])
    await expect(chat(bob, "Weekend hike").locator(".badge")).to_have_count(0)
    await send(bob, "Me!")
    await expect(alice.locator(".msg.other .sender")).to_have_text(["Bob"])
    await expect(alice.locator(".msg.other .bubble")).to_have_text(["Me!"])

    # The owner adds Carol by username; she gets the group live and writes.
    await alice.click("#btn-members")
    await expect(alice.locator("#members .member-name")).to_have_text(["Alice", "Bob"])
    await alice.fill("#members-add-input", "carol")
    await alice.press("#members-add-input", "Enter")
    await expect(alice.locator("#members .member-name")).to_have_text(
        ["Alice", "Bob", "Carol Jones"]
    )
    await expect(alice.locator("#pane-sub")).to_have_text("3 members")
    await expect(chat(carol, "Weekend hike")).to_be_visible()
    # Added after two messages: the notice that added her, and nothing before it.
    await expect(chat(carol, "Weekend hike").locator(".chat-preview")).to_have_text(
        "Alice added Carol Jones"
    )
    await chat(carol, "Weekend hike").click()
    await expect(carol.locator("#messages .history-start")).to_have_text(
        "You joined this group. Messages sent before you joined are not shown to you."
    )
    await expect(carol.locator("#messages .notice-line")).to_have_text(["Alice added Carol Jones"])
    await send(carol, "Count me in")
    await expect(alice.locator(".msg.other .sender")).to_have_text(["Bob", "Carol Jones"])
    await expect(bob.locator(".msg.other .sender")).to_have_text(["Alice", "Carol Jones"])
    await expect(carol.locator(".msg.own .bubble")).to_have_text(["Count me in"])
    await expect(carol.locator(".msg .bubble")).to_have_count(1)  # nothing from before she joined
    await screenshot(alice, "group-chat-members")

    # Only the owner sees the remove buttons; the owner removes Bob, live.
    await bob.click("#btn-members")
    await expect(bob.locator("#members .member-name")).to_have_count(3)
    await expect(bob.locator("#members .remove")).to_have_count(0)
    await expect(bob.locator("#members-add")).to_be_hidden()
    await alice.click('#members .remove[aria-label="Remove Bob"]')
    await alice.click("#dlg-confirm-ok")
    await expect(alice.locator("#members .member-name")).to_have_text(["Alice", "Carol Jones"])
    # Bob's open chat says so, and keeps saying so (not a toast that goes away).
    await expect(bob.locator("#removed-note")).to_contain_text(
        "You were removed from “Weekend hike”"
    )
    await expect(bob.locator("#composer")).to_be_hidden()
    await expect(bob.locator("#pane-sub")).to_have_text("You are no longer a member")
    await expect(chat(bob, "Weekend hike").locator(".chat-preview")).to_have_text(
        "You are no longer a member"
    )
    await asyncio.sleep(4.5)
    await expect(bob.locator("#removed-note")).to_be_visible()
    await screenshot(bob, "removed-from-group")
    await expect(bob.locator(".msg .bubble")).to_have_text(
        ["Who's in for Saturday?", "Me!", "Count me in"]
    )
    await bob.click("#btn-forget")
    await expect(chat(bob, "Weekend hike")).to_have_count(0)
    await expect(bob.locator("#pane-empty")).to_be_visible()

    # Anyone leaves.
    await carol.click("#btn-members")
    await carol.click("#btn-leave")
    await carol.click("#btn-leave")
    await expect(chat(carol, "Weekend hike")).to_have_count(0)
    await alice.click("#btn-members-close")
    await alice.click("#btn-members")
    await expect(alice.locator("#members .member-name")).to_have_text(["Alice"])


async def test_history_scrolls_up_and_the_phone_layout(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = f"p:{alice.id}-{bob.id}"
    for n in range(1, 121):
        await alice_api.send(conversation, f"message {n}")

    page = await browser.page("bob-phone", viewport=PHONE)
    await sign_in(page, browser.url, "bob")
    await expect(chat(page, "Alice").locator(".badge")).to_have_text("99+")
    await expect(page).to_have_title("(120) tidings")
    await expect(page.locator("#pane")).to_be_hidden()
    await screenshot(page, "phone-list")

    await chat(page, "Alice").click()
    await expect(page.locator(".sidebar")).to_be_hidden()
    await expect(bubbles(page).last).to_have_text("message 120")
    # It opens at the first unread message, with older pages loading above it;
    # what was not on screen stays unread.
    await expect(page.locator("#new-line")).to_be_in_viewport()
    await expect(page.locator("#new-line ~ .msg .bubble").first).to_have_text("message 1")
    await expect(page).not_to_have_title("tidings")
    # Scrolling up loads older pages until the first message.
    await scroll_to_first(page, 120)
    await page.locator("#messages").evaluate("box => { box.scrollTop = box.scrollHeight; }")
    await expect(page).to_have_title("tidings")
    await send(page, "caught up")
    await expect(bubbles(page).last).to_have_text("caught up")
    await screenshot(page, "phone-chat")
    await page.click("#btn-back")
    await expect(page.locator(".sidebar")).to_be_visible()
    await expect(chat(page, "Alice").locator(".chat-preview")).to_have_text("caught up")
    # The keyboard: the row has the focus back; Enter opens it, typing goes to the box.
    await expect(chat(page, "Alice")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#pane-title")).to_have_text("Alice")
    await expect(page.locator("#messages")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.locator("#compose")).to_be_focused()


@pytest.mark.slow
async def test_a_server_restart_loses_nothing(web_server: WebServer, browser: Browser) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = f"p:{alice.id}-{bob.id}"
    await alice_api.send(conversation, "before the drop")

    page = await browser.page("bob")
    await sign_in(page, browser.url, "bob")
    await chat(page, "Alice").click()
    await expect(bubbles(page)).to_have_text(["before the drop"])

    # The network drops: the page says so; what Bob writes waits.
    # The page's read is stored before the drop (a stop during that write
    # leaves an aiosqlite connection unclosed: a server matter, not this test's).
    bob_api = await web_server.client_for("bob")
    for _ in range(50):
        if (await bob_api.conversations())[0].read_seq == 1:
            break
        await asyncio.sleep(0.1)
    browser.console.server_down = True
    await web_server.stop()
    await expect(page.locator("#conn-banner")).to_contain_text(re.compile("Offline|Reconnecting"))
    await expect(page.locator("#conn-text")).not_to_have_text("Online")
    await send(page, "written offline")
    await expect(page.locator(".msg.pending .status")).to_have_text("Waiting for network…")
    await screenshot(page, "offline")
    await asyncio.sleep(1.5)  # the page is well into its backoff now

    # Back on the same port and database; Alice writes while Bob reconnects.
    await web_server.start()
    alice_again = await web_server.client_for("alice")
    await alice_again.send(conversation, "while you were away 1")
    await alice_again.send(conversation, "while you were away 2")
    await expect(page.locator("#conn-text")).to_have_text("Online", timeout=20000)
    await expect(page.locator("#conn-banner")).to_be_hidden()
    browser.console.server_down = False
    await expect(page.locator(".msg.pending")).to_have_count(0)
    stored = [m.body for m in await alice_again.messages(conversation)]
    # Each stored once. Where Bob's pending message lands among Alice's two
    # depends on when the page's backoff ends, which a loaded machine moves.
    assert sorted(stored) == sorted(
        ["before the drop", "while you were away 1", "while you were away 2", "written offline"]
    )
    assert [b for b in stored if b != "written offline"] == [
        "before the drop",
        "while you were away 1",
        "while you were away 2",
    ]
    await expect(bubbles(page)).to_have_text(stored)
    await expect(chat(page, "Alice").locator(".badge")).to_have_count(0)

    # A reload after all that shows the same.
    await page.reload()
    await expect(bubbles(page)).to_have_text(stored)


async def test_a_lost_ack_is_resent_and_stored_once(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = f"p:{alice.id}-{bob.id}"
    await alice_api.send(conversation, "hello")

    dropped: list[str] = []

    def route(ws: Any) -> None:
        # Between page and server: swallow the first ack of a message and cut the line.
        server = ws.connect_to_server()

        def from_server(frame: str | bytes) -> None:
            if not dropped and isinstance(frame, str) and '"ack"' in frame and '"message"' in frame:
                dropped.append(frame)
                asyncio.get_running_loop().create_task(server.close(code=4000))
                return
            ws.send(frame)

        server.on_message(from_server)
        ws.on_message(lambda frame: server.send(frame))

    page = await browser.page("bob")
    await page.route_web_socket(re.compile(r"/ws$"), route)
    await sign_in(page, browser.url, "bob")
    await chat(page, "Alice").click()
    await send(page, "only once")
    await expect(page.locator(".msg.pending")).to_have_count(0, timeout=15000)
    assert len(dropped) == 1
    stored = [m.body for m in await alice_api.messages(conversation)]
    assert stored == ["hello", "only once"]
    await expect(bubbles(page)).to_have_text(stored)


async def test_a_long_paste_is_never_cut(web_server: WebServer, browser: Browser) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = f"p:{alice.id}-{bob.id}"
    await alice_api.send(conversation, "hello")
    page = await browser.page("bob")
    await sign_in(page, browser.url, "bob")
    await chat(page, "Alice").click()
    await expect(bubbles(page)).to_have_text(["hello"])

    # Near the limit the count shows; over it, nothing is sent and nothing is cut.
    await page.fill("#compose", "x" * 3700)
    await expect(page.locator("#compose-count")).to_have_text("3700 / 4000")
    text = "y" * 5000
    await page.fill("#compose", text)
    await page.press("#compose", "Enter")
    await expect(page.locator("#compose-count")).to_contain_text("5000 / 4000")
    await expect(page.locator("#btn-send")).to_be_disabled()
    assert await page.input_value("#compose") == text
    await expect(page.locator(".msg.pending")).to_have_count(0)
    await asyncio.sleep(0.5)
    assert [m.body for m in await alice_api.messages(conversation)] == ["hello"]

    # Shortened to the limit, it goes whole.
    await page.fill("#compose", "z" * 4000)
    await expect(page.locator("#btn-send")).to_be_enabled()
    await page.press("#compose", "Enter")
    await expect(bubbles(page)).to_have_count(2)
    assert [m.body for m in await alice_api.messages(conversation)] == ["hello", "z" * 4000]


async def test_only_what_was_on_screen_is_marked_read(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    conversation = f"p:{alice.id}-{bob.id}"
    for n in range(1, 41):
        await alice_api.send(conversation, f"old {n}")
    await bob_api.mark_read(conversation, 37)  # three left unread

    async def read_seq() -> int:
        entries = await bob_api.conversations()
        return next(e.read_seq for e in entries if e.id == conversation)

    page = await browser.page("bob")
    await sign_in(page, browser.url, "bob")
    await chat(page, "Alice").click()
    # A "new messages" line above the first unread message, and they are read once seen.
    line = page.locator("#new-line")
    await expect(line).to_have_text("New messages")
    following = line.locator("xpath=following-sibling::div[contains(@class,'msg')][1]")
    await expect(following.locator(".bubble")).to_have_text("old 38")
    await expect(chat(page, "Alice").locator(".badge")).to_have_count(0)
    for _ in range(50):
        if await read_seq() == 40:
            break
        await asyncio.sleep(0.1)
    assert await read_seq() == 40

    # Scrolled up, a new message is not read: it was never on screen.
    await page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
    await expect(page.locator("#btn-latest")).to_be_visible()
    await alice_api.send(conversation, "while you read old ones")
    await expect(page.locator("#btn-latest")).to_have_text("1 new message ↓")
    await screenshot(page, "scrolled-up-new-message")
    await expect(chat(page, "Alice").locator(".badge")).to_have_text("1")
    await asyncio.sleep(0.5)
    assert await read_seq() == 40

    # The button jumps to it, and then it is read.
    await page.click("#btn-latest")
    await expect(page.locator("#btn-latest")).to_be_hidden()
    await expect(chat(page, "Alice").locator(".badge")).to_have_count(0)
    for _ in range(50):
        if await read_seq() == 41:
            break
        await asyncio.sleep(0.1)
    assert await read_seq() == 41


async def test_a_silent_drop_shows_offline_within_seconds(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = f"p:{alice.id}-{bob.id}"
    await alice_api.send(conversation, "hello")

    line = {"down": False}
    silenced: list[dict[str, bool]] = []

    def route(ws: Any) -> None:
        # A line that goes quiet without a close: nothing passes either way,
        # and while it is down a new connection is cut at once.
        if line["down"]:
            asyncio.get_running_loop().create_task(ws.close(code=1011))
            return
        server = ws.connect_to_server()
        state = {"silent": False}
        silenced.append(state)
        server.on_message(lambda frame: None if state["silent"] else ws.send(frame))
        ws.on_message(lambda frame: None if state["silent"] else server.send(frame))

    page = await browser.page("bob")
    await page.route_web_socket(re.compile(r"/ws$"), route)
    await sign_in(page, browser.url, "bob")
    await chat(page, "Alice").click()
    await expect(bubbles(page)).to_have_text(["hello"])

    browser.console.server_down = True
    line["down"] = True
    for state in silenced:
        state["silent"] = True
    await send(page, "into the quiet")
    # Not 60 s of a green "Online": a few seconds, and the message says it waits.
    await expect(page.locator("#conn-text")).not_to_have_text("Online", timeout=7000)
    await expect(page.locator("#conn-dot")).not_to_have_class(re.compile("online"))
    await expect(page.locator(".msg.pending .status")).to_have_text("Waiting for network…")

    line["down"] = False
    await expect(page.locator("#conn-text")).to_have_text("Online", timeout=20000)
    await expect(page.locator(".msg.pending")).to_have_count(0)
    browser.console.server_down = False
    stored = [m.body for m in await alice_api.messages(conversation)]
    assert stored == ["hello", "into the quiet"]
    await expect(bubbles(page)).to_have_text(stored)


async def test_drafts_stay_with_their_chat_across_switches_and_reloads(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    carol, _ = await web_server.account("carol", "Carol")
    await alice_api.send(f"p:{alice.id}-{bob.id}", "hi Bob")
    await alice_api.send(f"p:{alice.id}-{carol.id}", "hi Carol")
    page = await browser.page("alice")
    await sign_in(page, browser.url, "alice")

    await chat(page, "Bob").click()
    await page.fill("#compose", "half a thought for Bob")
    await chat(page, "Carol").click()
    await expect(page.locator("#compose")).to_have_value("")
    await expect(chat(page, "Bob").locator(".chat-preview")).to_have_text(
        "[Draft] half a thought for Bob"
    )
    await page.fill("#compose", "and one for Carol")
    await chat(page, "Bob").click()
    await expect(page.locator("#compose")).to_have_value("half a thought for Bob")

    await page.reload()
    await expect(page.locator("#conn-text")).to_have_text("Online")
    await expect(page.locator("#pane-title")).to_have_text("Bob")
    await expect(page.locator("#compose")).to_have_value("half a thought for Bob")
    await chat(page, "Carol").click()
    await expect(page.locator("#compose")).to_have_value("and one for Carol")

    # Sent, it is no longer a draft.
    await page.press("#compose", "Enter")
    await expect(bubbles(page).last).to_have_text("and one for Carol")
    await page.reload()
    await expect(page.locator("#pane-title")).to_have_text("Carol")
    await expect(bubbles(page).last).to_have_text("and one for Carol")
    await expect(page.locator("#compose")).to_have_value("")


async def test_the_chat_list_filters_and_is_one_tab_stop(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    for name, display in [("bob", "Bob"), ("carol", "Carol Jones"), ("dave", "Dave")]:
        other, _ = await web_server.account(name, display)
        await alice_api.send(f"p:{alice.id}-{other.id}", f"hi {display}")
    page = await browser.page("alice")
    await sign_in(page, browser.url, "alice")
    await expect(page.locator("#chat-list .chat")).to_have_count(3)

    await page.fill("#chat-filter", "jones")
    assert await titles(page) == ["Carol Jones"]
    await page.fill("#chat-filter", "nobody")
    await expect(page.locator("#chat-list .chat")).to_have_count(0)
    await expect(page.locator("#chat-nomatch")).to_be_visible()
    await page.fill("#chat-filter", "")
    await expect(page.locator("#chat-list .chat")).to_have_count(3)

    # One Tab stop for the list; the arrow keys move inside it.
    await page.focus("#chat-filter")
    await page.keyboard.press("Tab")
    await expect(page.locator("#chat-list .chat").first).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("#chat-list .chat").nth(1)).to_be_focused()
    await expect(page.locator('#chat-list .chat[tabindex="0"]')).to_have_count(1)
    await page.keyboard.press("Tab")
    in_list = "document.activeElement.closest('#chat-list') !== null"
    assert not await page.evaluate(in_list)
    await page.keyboard.press("Shift+Tab")
    await expect(page.locator("#chat-list .chat").nth(1)).to_be_focused()
    await page.keyboard.press("End")
    await expect(page.locator("#chat-list .chat").nth(2)).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#pane-title")).to_have_text((await titles(page))[2])


# The contrast of an element's text on the first opaque background behind it.
CONTRAST = """
element => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  let node = element;
  let background = [255, 255, 255];
  while (node && node.nodeType === 1) {
    const colour = rgb(getComputedStyle(node).backgroundColor);
    if (colour.length === 3 || (colour.length === 4 && colour[3] === 1)) {
      background = colour.slice(0, 3);
      break;
    }
    node = node.parentElement;
  }
  const [a, b] = [lum(rgb(getComputedStyle(element).color)), lum(background)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""


async def test_text_contrast_is_aa_and_the_message_list_shows_focus(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    carol, _ = await web_server.account("carol", "Carol")
    await bob_api.send(f"p:{alice.id}-{bob.id}", "hi Alice")
    await alice_api.send(f"p:{alice.id}-{carol.id}", "hi Carol")
    page = await browser.page("alice")
    await sign_in(page, browser.url, "alice")
    await chat(page, "Bob").click()
    await send(page, "hello Bob")
    await expect(page.locator(".msg.own .status")).to_have_text("Sent")
    await bob_api.mark_read(f"p:{alice.id}-{bob.id}", 2)
    await expect(page.locator(".msg.own .status")).to_have_text("Read")

    checks = {
        "Send button": "#btn-send",
        "Read": ".msg.own .status.read",
        "selected row's time": "#chat-list .chat.active .chat-time",
        "selected row's preview": "#chat-list .chat.active .chat-preview",
        "other row's time": "#chat-list .chat:not(.active) .chat-time",
        "other row's preview": "#chat-list .chat:not(.active) .chat-preview",
        "status line": "#conn-text",
        "chat subtitle": "#pane-sub",
        "history start": "#messages .history-start",
        "composer hint": ".composer .hint",
    }
    low = {}
    for name, selector in checks.items():
        ratio = await page.locator(selector).first.evaluate(CONTRAST)
        if ratio < 4.5:
            low[name] = round(ratio, 2)
    assert low == {}, f"below 4.5:1: {low}"

    # The message list, reached by keyboard, shows that it has the focus.
    await page.focus("#compose")
    await page.keyboard.press("Shift+Tab")
    await expect(page.locator("#messages")).to_be_focused()
    outline = await page.locator("#messages").evaluate(
        "box => getComputedStyle(box).outlineStyle + ' ' + getComputedStyle(box).outlineWidth"
    )
    assert outline.split()[0] != "none" and outline.split()[1] != "0px", outline


async def test_links_confirmations_counts_and_sign_up_sentences(
    web_server: WebServer, browser: Browser
) -> None:
    # Sign-up errors read as sentences.
    page = await browser.page("newcomer")
    await page.goto(browser.url)
    await page.click("#auth-switch")
    await page.fill("#auth-username", "a b")
    await page.fill("#auth-password", PASSWORD)
    await page.press("#auth-password", "Enter")
    await expect(page.locator("#auth-error")).to_have_text(
        "Choose a username of 3 to 32 characters, using only letters, digits, dots, dashes "
        "and underscores."
    )

    alice, alice_api = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    group = await alice_api.create_group("Tea", [bob.id])
    text = "see https://example.com/a?b=1. not javascript:alert(1) <b>bold</b> <img src=x>"
    await bob_api.send(f"g:{group.id}", text)
    await sign_in(page, browser.url, "alice")
    await chat(page, "Tea").click()
    bubble = page.locator(".msg.other .bubble")
    await expect(bubble).to_have_text(text)
    links = bubble.locator("a")
    await expect(links).to_have_count(1)
    await expect(links).to_have_attribute("href", "https://example.com/a?b=1")
    await expect(links).to_have_attribute("target", "_blank")
    await expect(links).to_have_attribute("rel", "noopener noreferrer")
    await expect(bubble.locator("b, img")).to_have_count(0)

    # Removing a member asks first; cancelled, nothing happens.
    await expect(page.locator("#pane-sub")).to_have_text("2 members")
    await page.click("#btn-members")
    await page.click('#members .remove[aria-label="Remove Bob"]')
    await expect(page.locator("#dlg-confirm")).to_be_visible()
    await expect(page.locator("#dlg-confirm-text")).to_contain_text("Remove Bob from “Tea”?")
    await page.click("#dlg-confirm-cancel")
    await expect(page.locator("#dlg-confirm")).to_be_hidden()
    await asyncio.sleep(0.3)
    assert (await alice_api.group(group.id)).member_ids == [alice.id, bob.id]
    await page.click('#members .remove[aria-label="Remove Bob"]')
    await page.click("#dlg-confirm-ok")
    await expect(page.locator("#members .member-name")).to_have_text(["Alice"])
    await expect(page.locator("#pane-sub")).to_have_text("1 member")


async def test_the_profile_changes_the_name_and_the_password(
    web_server: WebServer, browser: Browser
) -> None:
    """Against the real server: the name is stored, the password changed, other sessions end."""
    _, other_device = await web_server.account("alice", "Alice")
    page = await browser.page("alice")
    await sign_in(page, browser.url, "alice")

    await page.click("#btn-profile")
    await expect(page.locator("#profile-name")).to_have_value("Alice")
    await page.fill("#profile-name", "   ")
    await page.click("#form-name button[type=submit]")
    await expect(page.locator("#profile-name-msg")).to_have_text(
        "A display name is 1 to 64 characters."
    )
    await page.fill("#profile-name", "  Alice B. ")
    await page.click("#form-name button[type=submit]")
    await expect(page.locator("#profile-name-msg")).to_have_text("Display name saved.")
    await expect(page.locator("#me-name")).to_have_text("Alice B.")
    assert (await other_device.me()).display_name == "Alice B."

    # The 403 is logged by Chromium as a failed resource: expected here.
    browser.console.server_down = True
    await page.fill("#profile-current", "not it at all")
    await page.fill("#profile-new", "a new password")
    await page.fill("#profile-again", "a new password")
    await page.click("#form-password button[type=submit]")
    await expect(page.locator("#profile-password-msg")).to_have_text(
        "The current password is wrong."
    )
    browser.console.server_down = False
    assert (await other_device.me()).username == "alice"  # nothing changed
    await page.fill("#profile-current", PASSWORD)
    await page.fill("#profile-new", "short")
    await page.fill("#profile-again", "short")
    await page.click("#form-password button[type=submit]")
    await expect(page.locator("#profile-password-msg")).to_have_text(
        "Choose a password of 8 to 256 characters."
    )
    await page.fill("#profile-new", "a new password")
    await page.fill("#profile-again", "a new password")
    await page.click("#form-password button[type=submit]")
    await expect(page.locator("#profile-password-msg")).to_contain_text("Password changed.")

    # The other device is signed out; the page that asked stays signed in.
    with pytest.raises(ApiError) as refused:
        await other_device.me()
    assert refused.value.status == 401
    fresh = await web_server.client_for_password("alice", "a new password")
    assert (await fresh.me()).display_name == "Alice B."
    with pytest.raises(ApiError):
        await web_server.client_for_password("alice", PASSWORD)
    await page.reload()
    await expect(page.locator("#me-name")).to_have_text("Alice B.")


async def test_a_hidden_tab_notifies_once_turned_on(
    web_server: WebServer, browser: Browser
) -> None:
    alice, _ = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    conversation = f"p:{alice.id}-{bob.id}"
    page = await browser.page("alice")
    # A granted Notification and a tab that can be told it is hidden.
    await page.add_init_script("""
      window.__notes = [];
      window.__hidden = false;
      window.Notification = class {
        static permission = "granted";
        static requestPermission() { return Promise.resolve("granted"); }
        constructor(title, options) { window.__notes.push([title, options.body, options.tag]); }
        close() {}
      };
      Object.defineProperty(document, "visibilityState",
        { get: () => (window.__hidden ? "hidden" : "visible"), configurable: true });
    """)
    await sign_in(page, browser.url, "alice")
    await bob_api.send(conversation, "first")
    await expect(chat(page, "Bob")).to_be_visible()
    await page.evaluate("window.__hidden = true")
    await bob_api.send(conversation, "while hidden, off")
    await expect(chat(page, "Bob").locator(".badge")).to_have_text("2")
    assert await page.evaluate("window.__notes") == []  # off by default

    await page.evaluate("window.__hidden = false")
    await page.click("#btn-profile")
    await expect(page.locator("#notice-sound")).not_to_be_checked()
    await page.check("#notice-notify")
    await page.check("#notice-sound")
    await page.click("#dlg-profile [data-close]")
    await page.evaluate("window.__hidden = true")
    await bob_api.send(conversation, "while hidden, on")
    await expect(chat(page, "Bob").locator(".badge")).to_have_text("3")
    assert await page.evaluate("window.__notes") == [["Bob", "while hidden, on", conversation]]
    await page.evaluate("window.__hidden = false")
    await bob_api.send(conversation, "while visible")
    await expect(chat(page, "Bob").locator(".badge")).to_have_text("4")
    assert len(await page.evaluate("window.__notes")) == 1
    await page.reload()
    await page.click("#btn-profile")
    await expect(page.locator("#notice-notify")).to_be_checked()


AXE_VERSION = "4.14.1"


def _no_axe(reason: str) -> NoReturn:
    """Skip on a user's machine; in CI (TIDINGS_TEST_SERVICES=required) the check must run."""
    if services_required():
        pytest.fail(reason + "; TIDINGS_TEST_SERVICES=required", pytrace=False)
    pytest.skip(reason)


async def _axe_source(tmp_path: Path) -> str:
    """axe-core's script, for the test only (never served): TIDINGS_AXE_JS, or npm pack."""
    given = os.environ.get("TIDINGS_AXE_JS")
    if given:
        return await asyncio.to_thread(Path(given).read_text)
    npm = shutil.which("npm")
    if npm is None:
        _no_axe("npm is missing: no axe-core (or set TIDINGS_AXE_JS)")
    process = await asyncio.create_subprocess_exec(
        npm,
        "pack",
        f"axe-core@{AXE_VERSION}",
        "--pack-destination",
        str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    if await process.wait() != 0:
        _no_axe("npm pack axe-core failed (offline?); set TIDINGS_AXE_JS")

    def extract() -> str:
        with tarfile.open(tmp_path / f"axe-core-{AXE_VERSION}.tgz") as archive:
            member = archive.extractfile("package/axe.min.js")
            assert member is not None
            return member.read().decode()

    return await asyncio.to_thread(extract)


async def _axe_serious(page: Any, axe: str, screen: str) -> list[str]:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=axe)
    found = await page.evaluate(
        """async () => {
          const result = await axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
          });
          return result.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
        }"""
    )
    return [f"{screen}: {line}" for line in found]


async def test_the_main_screens_have_no_serious_axe_violations(
    web_server: WebServer, browser: Browser, tmp_path: Path
) -> None:
    axe = await _axe_source(tmp_path)
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    group = await alice_api.create_group("Tea", [bob.id])
    await bob_api.send(f"p:{alice.id}-{bob.id}", "hi Alice, see https://example.com")
    await bob_api.send(f"g:{group.id}", "tea at four?")
    problems: list[str] = []
    for width, viewport in [("desktop", DESKTOP), ("phone", PHONE)]:
        # The page's CSP rightly refuses an injected script: bypassed for this check only.
        context = await browser.browser.new_context(viewport=viewport, bypass_csp=True)
        page = await browser.page(f"alice-{width}", context=context)
        await page.goto(browser.url)
        await expect(page.locator("#auth-form")).to_be_visible()
        problems += await _axe_serious(page, axe, f"{width} sign-in")
        await page.click("#auth-switch")
        problems += await _axe_serious(page, axe, f"{width} sign-up")
        await page.click("#auth-switch")
        await page.fill("#auth-username", "alice")
        await page.fill("#auth-password", PASSWORD)
        await page.click("#auth-submit")
        await expect(page.locator("#conn-text")).to_have_text("Online")
        await expect(page.locator("#chat-list .chat")).to_have_count(2)
        problems += await _axe_serious(page, axe, f"{width} chat list")
        await chat(page, "Bob").click()
        await expect(bubbles(page)).to_have_count(1)
        problems += await _axe_serious(page, axe, f"{width} private chat")
        if width == "phone":
            await page.click("#btn-back")
        await chat(page, "Tea").click()
        await page.click("#btn-members")
        await expect(page.locator("#members .member-name")).to_have_count(2)
        problems += await _axe_serious(page, axe, f"{width} group and members")
        await page.click("#btn-members-close")
        if width == "phone":
            await page.click("#btn-back")
        await page.click("#btn-profile")
        problems += await _axe_serious(page, axe, f"{width} profile")
        await page.keyboard.press("Escape")
        await page.click("#btn-new-chat")
        problems += await _axe_serious(page, axe, f"{width} new chat")
        await page.keyboard.press("Escape")
        await context.close()
    assert problems == []


async def test_a_peer_who_renames_shows_the_new_name_at_once(
    web_server: WebServer, browser: Browser
) -> None:
    """PROTOCOL-v2 §9: an online peer's list row and open chat take the new name live."""
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    await bob_api.send(f"p:{alice.id}-{bob.id}", "hi Alice")
    page = await browser.page("alice")
    await sign_in(page, browser.url, "alice")
    await chat(page, "Bob").click()
    await expect(page.locator("#pane-title")).to_have_text("Bob")

    await bob_api.set_display_name("Robert")
    await expect(chat(page, "Robert")).to_be_visible()
    await expect(page.locator("#pane-title")).to_have_text("Robert")


# -- messages that do more (PROTOCOL-v2 sections 1, 2, 4) ---------------------------


def row(page: Any, seq: int) -> Any:
    return page.locator(f'#messages [data-seq="{seq}"]')


async def act_on(page: Any, seq: int, action: str) -> None:
    """Open a message's menu (hover) and take one of its actions."""
    await row(page, seq).hover()
    await row(page, seq).locator(f'.msg-action:text-is("{action}")').click()


async def test_reply_mention_edit_recall_and_forward_in_the_browser(
    web_server: WebServer, browser: Browser
) -> None:
    alice_user, alice_api = await web_server.account("alice", "Alice")
    bob_user, bob_api = await web_server.account("bob", "Bob")
    carol_user, carol_api = await web_server.account("carol", "Carol")
    group = await alice_api.create_group("Trip", [bob_user.id, carol_user.id])
    trip = f"g:{group.id}"
    await alice_api.send(f"p:{alice_user.id}-{bob_user.id}", "hi Bob")
    first = await carol_api.send(trip, "first plan: the lake")
    alice = await browser.page("alice")
    bob = await browser.page("bob")
    await sign_in(alice, browser.url, "alice")
    await sign_in(bob, browser.url, "bob")
    await chat(alice, "Trip").click()
    await expect(row(alice, first.seq)).to_be_visible()

    # Reply: the quote bar, then the quote in the bubble on both sides.
    await act_on(alice, first.seq, "Reply")
    await expect(alice.locator("#compose-target-text")).to_have_text(
        "Replying to Carol: first plan: the lake"
    )
    await send(alice, "sounds good")
    reply = row(alice, first.seq + 1)
    await expect(reply.locator(".quote")).to_have_text("Carol: first plan: the lake")
    await expect(alice.locator("#compose-target")).to_be_hidden()

    # @ picker: "@Bo" offers Bob, Enter picks him; Bob's list says [@me] until he reads.
    await alice.fill("#compose", "@Bo")
    await expect(alice.locator("#mention-picker .mention-choice")).to_have_text(["Bob"])
    await alice.press("#compose", "Enter")
    await expect(alice.locator("#compose")).to_have_value("@Bob ")
    await alice.type("#compose", "bring the map")
    await alice.press("#compose", "Enter")
    await expect(row(alice, first.seq + 2).locator(".bubble")).to_have_text("@Bob bring the map")
    await expect(chat(bob, "Trip").locator(".mention-mark")).to_have_text("[@me]")
    await expect(chat(bob, "Trip").locator(".badge")).to_have_text("3")
    stored = (await bob_api.messages(trip, after=first.seq + 1))[0]
    assert stored.mentions == [bob_user.id]
    await screenshot(bob, "v2-mentioned-list")
    await chat(bob, "Trip").click()
    await expect(row(bob, first.seq + 2)).to_have_class(re.compile(r"\bmentions-me\b"))
    await expect(chat(bob, "Trip").locator(".mention-mark")).to_have_count(0)
    await expect(row(bob, first.seq + 1).locator(".quote")).to_have_text(
        "Carol: first plan: the lake"
    )
    # Bob jumps to the quoted message.
    await row(bob, first.seq + 1).locator(".quote").click()
    await expect(row(bob, first.seq)).to_have_class(re.compile(r"\bflash\b"))

    # Edit: Alice's own reply, "(edited)" on both sides, in place.
    await act_on(alice, first.seq + 1, "Edit")
    await expect(alice.locator("#compose")).to_have_value("sounds good")
    await alice.fill("#compose", "sounds great")
    await alice.press("#compose", "Enter")
    for page in (alice, bob):
        await expect(row(page, first.seq + 1).locator(".bubble")).to_have_text(
            "Carol: first plan: the lake" + "sounds great (edited)"
        )

    # Recall: a grey line on both sides, "Re-edit" for the sender only.
    await act_on(alice, first.seq + 2, "Recall")
    await expect(row(alice, first.seq + 2)).to_have_text("You recalled a message · Re-edit")
    await expect(row(bob, first.seq + 2)).to_have_text("Alice recalled a message")
    await expect(row(bob, first.seq + 2).locator(".re-edit")).to_have_count(0)
    await screenshot(alice, "v2-chat")
    await row(alice, first.seq + 2).locator(".re-edit").click()
    await expect(alice.locator("#compose")).to_have_value("@Bob bring the map")
    await alice.fill("#compose", "")
    # Bob cannot recall or edit Alice's messages: no such actions in his menu.
    await row(bob, first.seq + 1).hover()
    await expect(row(bob, first.seq + 1).locator(".msg-action")).to_have_text(["Reply", "Forward"])

    # Forward Carol's message to the private chat with Bob.
    await act_on(alice, first.seq, "Forward")
    await alice.locator('#forward-list .forward-to:text-is("Bob")').click()
    await expect(alice.locator("#toast")).to_have_text("Forwarded")
    await chat(bob, "Alice").click()
    forwarded = bob.locator("#messages .msg", has_text="first plan: the lake")
    await expect(forwarded.locator(".forwarded")).to_have_text("Forwarded")
    await screenshot(bob, "v2-forwarded")
    latest = (await bob_api.messages(f"p:{alice_user.id}-{bob_user.id}"))[-1]
    assert latest.forwarded_from is not None and latest.forwarded_from.seq == first.seq

    # By keyboard: Up selects the last message, Right opens its menu, Enter acts.
    await bob.focus("#messages")
    await bob.keyboard.press("ArrowUp")
    await expect(row(bob, latest.seq)).to_be_focused()
    await bob.keyboard.press("ArrowRight")
    await expect(row(bob, latest.seq).locator(".msg-action").first).to_be_focused()
    await expect(row(bob, latest.seq).locator(".msg-action").first).to_have_text("Reply")
    await bob.keyboard.press("Enter")
    await expect(bob.locator("#compose-target-text")).to_have_text(
        "Replying to Alice: first plan: the lake"
    )
    await expect(bob.locator("#compose")).to_be_focused()
    await bob.keyboard.press("Escape")
    await expect(bob.locator("#compose-target")).to_be_hidden()


async def test_pin_mute_mark_hide_drafts_and_typing_follow_the_person_across_devices(
    web_server: WebServer, browser: Browser
) -> None:
    """PROTOCOL-v2 §5 in the web client: two browser contexts are two devices of alice."""
    alice, _ = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    carol, carol_api = await web_server.account("carol", "Carol")
    private_chat = f"p:{alice.id}-{bob.id}"
    tea = f"g:{(await carol_api.create_group('Tea', [alice.id])).id}"
    await carol_api.send(tea, "tea at four?")
    await carol_api.send(tea, "or five")
    await bob_api.send(private_chat, "hi Alice")
    laptop = await browser.page("alice-laptop")
    phone = await browser.page("alice-phone")
    for page in (laptop, phone):
        await sign_in(page, browser.url, "alice")
        await expect(page.locator("#chat-list .chat")).to_have_count(2)
        assert sorted(await titles(page)) == ["Bob", "Tea"]  # one millisecond may hold both
        await expect(page).to_have_title("(3) tidings")

    # Pin from the row's menu (right-click): pinned first, on both devices.
    await chat(laptop, "Tea").click(button="right")
    await expect(laptop.locator("#entry-menu")).to_be_visible()
    await laptop.get_by_role("menuitem", name="Pin to top").click()
    for page in (laptop, phone):
        await expect(page.locator("#chat-list .chat").first).to_have_class(re.compile("pinned"))
        await expect(page.locator("#chat-list .chat-title").first).to_have_text("Tea")
    await screenshot(phone, "v2-pinned-on-the-other-device")

    # Mute by keyboard (Shift+F10 on the row): the badge greys, the total leaves it out.
    await chat(laptop, "Bob").focus()
    await laptop.keyboard.press("Shift+F10")
    await expect(laptop.get_by_role("menuitem", name="Pin to top")).to_be_focused()
    await laptop.keyboard.press("ArrowDown")
    await expect(laptop.get_by_role("menuitem", name="Mute notifications")).to_be_focused()
    await laptop.keyboard.press("Enter")
    await expect(laptop.locator("#entry-menu")).to_be_hidden()
    await expect(chat(laptop, "Bob")).to_be_focused()
    for page in (laptop, phone):
        await expect(chat(page, "Bob").locator(".badge")).to_have_class(re.compile("muted"))
        await expect(chat(page, "Bob").locator(".chat-mark.muted")).to_be_visible()
        await expect(page).to_have_title("(2) tidings")
    await chat(laptop, "Bob").hover()
    await screenshot(laptop, "v2-muted-and-the-menu-button")

    # A draft typed on the laptop shows in the phone's list; the send clears it.
    await chat(laptop, "Bob").click()
    await laptop.fill("#compose", "see you at eight")
    await expect(chat(phone, "Bob").locator(".chat-preview")).to_have_text(
        "[Draft] see you at eight"
    )
    # The phone opens the chat and finds the text in its composer.
    await chat(phone, "Bob").click()
    await expect(phone.locator("#compose")).to_have_value("see you at eight")
    await chat(phone, "Tea").click()
    await laptop.press("#compose", "Enter")
    await expect(bubbles(laptop).last).to_have_text("see you at eight")
    await expect(chat(phone, "Bob").locator(".chat-preview")).to_have_text("see you at eight")

    # Typing: bob types, alice's open chat says so.
    async with await bob_api.connect() as bob_socket:
        await bob_socket.typing(private_chat)
        await expect(laptop.locator("#pane-sub")).to_have_text("typing…")
        await screenshot(laptop, "v2-typing")
        await bob_socket.send(private_chat, "great")
        await expect(laptop.locator("#pane-sub")).to_have_text("@bob")

    # Mark unread on the phone: a dot on both; opening it on the laptop clears both.
    await chat(laptop, "Tea").click()
    await chat(phone, "Bob").hover()
    await chat(phone, "Bob").locator(".chat-more").click()  # the mouse's way in
    await phone.get_by_role("menuitem", name="Mark as unread").click()
    for page in (laptop, phone):
        await expect(chat(page, "Bob").locator(".badge.dot")).to_be_visible()
    await chat(laptop, "Bob").click()
    for page in (laptop, phone):
        await expect(chat(page, "Bob").locator(".badge")).to_have_count(0)

    # Hide the group on the phone: gone on both, back on both with carol's next message.
    await chat(phone, "Tea").click(button="right")
    await phone.get_by_role("menuitem", name="Hide chat").click()
    for page in (laptop, phone):
        await expect(chat(page, "Tea")).to_have_count(0)
    await carol_api.send(tea, "five it is")
    for page in (laptop, phone):
        await expect(chat(page, "Tea")).to_have_count(1)
        await expect(page.locator("#chat-list .chat-title").first).to_have_text("Tea")
    await screenshot(laptop, "v2-chat-list-controls")


async def test_the_sender_sees_who_read_a_group_message(
    web_server: WebServer, browser: Browser
) -> None:
    """PROTOCOL-v2 §6's read-by: "1 read · 1 unread" under one's own message, the names
    behind it on a click."""
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    carol, _ = await web_server.account("carol", "Carol")
    team = f"g:{(await alice_api.create_group('Tea', [bob.id, carol.id])).id}"
    await bob_api.send(team, "tea at four?")
    page = await browser.page("alice")
    await sign_in(page, browser.url, "alice")
    await chat(page, "Tea").click()
    await send(page, "yes, at four")
    own = page.locator("#messages .msg.own .read-by")
    await expect(own).to_have_text("Unread")
    sent = (await alice_api.messages(team))[-1]
    await bob_api.mark_read(team, sent.seq)
    await own.click()
    await expect(page.locator("#dlg-readby")).to_be_visible()
    await expect(page.locator("#readby-read-title")).to_have_text("Read (1)")
    await expect(page.locator("#readby-read li")).to_have_text(["Bob"])
    await expect(page.locator("#readby-unread li")).to_have_text(["Carol"])
    await screenshot(page, "v2-read-by")
    await page.keyboard.press("Escape")
    await expect(own).to_have_text("1 read · 1 unread")
    # Others' messages show no such line.
    await expect(page.locator("#messages .msg.other .read-by")).to_have_count(0)


async def test_a_group_is_run_from_its_panel_and_every_member_sees_it_live(
    web_server: WebServer, browser: Browser
) -> None:
    """PROTOCOL-v2 §6 in the browser: roles, rename, announcement, mutes, mute-all,
    hand-over and dissolution from the group panel, each a line in the timeline."""
    await web_server.account("alice", "Alice")
    _, bob_api = await web_server.account("bob", "Bob")
    await web_server.account("carol", "Carol")
    alice = await browser.page("alice")
    bob = await browser.page("bob")
    carol = await browser.page("carol")
    for page, name in [(alice, "alice"), (bob, "bob"), (carol, "carol")]:
        await sign_in(page, browser.url, name)
    await alice.click("#btn-new-group")
    await alice.fill("#group-name", "Book club")
    await alice.fill("#group-members", "bob, carol")
    await alice.click("#form-group button[type=submit]")
    await expect(alice.locator("#pane-title")).to_have_text("Book club")
    await expect(alice.locator("#messages .notice-line")).to_have_text(
        ['Alice created the group "Book club"']
    )
    for page in (bob, carol):
        await chat(page, "Book club").click()
        await expect(page.locator("#messages .notice-line")).to_have_count(1)

    # The owner makes Bob an admin: everyone sees the line, Bob's panel the tag.
    await alice.click("#btn-members")
    await alice.select_option('#members select[aria-label="Actions for Bob"]', "make-admin")
    await expect(alice.locator("#members .member:has-text('Bob') .tag.admin")).to_have_text("Admin")
    for page in (alice, bob, carol):
        await expect(page.locator("#messages .notice-line").last).to_have_text(
            "Alice made Bob an admin"
        )
    await bob.click("#btn-members")
    await expect(bob.locator("#members .member:has-text('Bob') .tag.admin")).to_have_text("Admin")
    # A plain member sees no settings and no actions.
    await carol.click("#btn-members")
    await expect(carol.locator("#group-settings")).to_be_hidden()
    await expect(carol.locator("#members select")).to_have_count(0)
    await expect(carol.locator("#members-add")).to_be_hidden()

    # The admin renames it and sets an announcement: the list, the header, the panel.
    await expect(bob.locator("#group-settings")).to_be_visible()
    await bob.fill("#group-rename", "Book club 2026")
    await bob.fill("#group-announce", "We read Dune in December")
    await bob.click("#group-settings button[type=submit]")
    for page in (alice, carol):
        await expect(page.locator("#pane-title")).to_have_text("Book club 2026")
        await expect(chat(page, "Book club 2026")).to_be_visible()
        await expect(page.locator("#messages .notice-line").last).to_have_text(
            "Bob updated the announcement: We read Dune in December"
        )
    await expect(carol.locator("#group-announcement-text")).to_have_text("We read Dune in December")

    # The admin mutes Carol for 10 minutes: her composer says so, and a send is refused.
    await bob.select_option('#members select[aria-label="Actions for Carol"]', "mute:600")
    await expect(carol.locator("#compose-blocked")).to_contain_text("You are muted in this group")
    await expect(carol.locator("#composer")).to_be_hidden()
    await expect(carol.locator("#members .member:has-text('Carol') .tag.muted")).to_be_visible()
    await expect(bob.locator("#members .member:has-text('Carol') .tag.muted")).to_be_visible()
    await screenshot(bob, "group-member-muted")
    with pytest.raises(ApiError) as refused:
        await (await web_server.client_for("carol")).send(
            f"g:{(await bob_api.conversations())[0].group_id}", "let me in"
        )
    assert refused.value.code == "muted"
    await bob.select_option('#members select[aria-label="Actions for Carol"]', "unmute")
    await expect(carol.locator("#composer")).to_be_visible()
    await send(carol, "thanks")
    await expect(alice.locator(".msg.other .bubble")).to_have_text(["thanks"])

    # Mute all: only the owner and admins write.
    await alice.check("#group-mute-all")
    await alice.click("#group-settings button[type=submit]")
    await expect(carol.locator("#compose-blocked")).to_contain_text("Only the owner and admins")
    await expect(bob.locator("#composer")).to_be_visible()
    await alice.uncheck("#group-mute-all")
    await alice.click("#group-settings button[type=submit]")
    await expect(carol.locator("#composer")).to_be_visible()
    await screenshot(alice, "group-run-from-panel")

    # The owner hands the group to Bob, who dissolves it: nobody can write, all can read.
    await alice.select_option('#members select[aria-label="Actions for Bob"]', "make-owner")
    await alice.click("#dlg-confirm-ok")
    await expect(bob.locator("#btn-dissolve")).to_be_visible()
    await expect(alice.locator("#btn-dissolve")).to_be_hidden()
    await bob.click("#btn-dissolve")
    await bob.click("#dlg-confirm-ok")
    for page in (alice, bob, carol):
        await expect(page.locator("#compose-blocked")).to_contain_text("dissolved")
        await expect(page.locator("#messages .notice-line").last).to_have_text(
            "Bob dissolved the group"
        )
    await expect(carol.locator(".msg .bubble")).to_have_text(["thanks"])
    await expect(carol.locator("#pane-sub")).to_have_text("Dissolved · 3 members")
    await screenshot(carol, "group-dissolved")


async def test_a_mute_closes_the_composer_until_it_runs_out_and_a_refused_send_is_no_bubble(
    web_server: WebServer, browser: Browser
) -> None:
    """PROTOCOL-v2 §6: a mute's end needs no notice (the composer opens by itself);
    a send the server refuses as muted leaves no failed bubble: the composer's line
    says why and the text waits in the composer."""
    _, alice_api = await web_server.account("alice", "Alice")
    carol_user, _ = await web_server.account("carol", "Carol")
    group = await alice_api.create_group("Choir", [carol_user.id])
    carol = await browser.page("carol")
    await sign_in(carol, browser.url, "carol")
    await chat(carol, "Choir").click()
    await expect(carol.locator("#messages .notice-line")).to_have_count(1)
    await carol.click("#btn-members")

    # A short mute: the line and the tag with its end, then both gone at that time.
    await alice_api.mute_member(group.id, carol_user.id, 2)
    await expect(carol.locator("#compose-blocked")).to_have_text(
        re.compile(r"^You are muted in this group until \d\d:\d\d\.$")
    )
    await expect(carol.locator("#composer")).to_be_hidden()
    await expect(carol.locator("#members .member:has-text('Carol') .tag.muted")).to_have_text(
        re.compile(r"^Muted until \d\d:\d\d$")
    )
    await expect(carol.locator("#composer")).to_be_visible()
    await expect(carol.locator("#compose-blocked")).to_be_hidden()
    await expect(carol.locator("#members .tag.muted")).to_have_count(0)

    # Carol's client does not know yet (its read of the group is held back): the
    # server refuses her send, and the composer says so instead of a broken bubble.
    release = asyncio.Event()

    async def held(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await carol.route(f"**/api/v1/groups/{group.id}", held)
    try:
        await alice_api.mute_member(group.id, carol_user.id, 600)
        await expect(carol.locator("#messages .notice-line").last).to_have_text(
            "Alice muted Carol for 10 minutes"
        )
        await expect(carol.locator("#composer")).to_be_visible()
        await send(carol, "let me in")
        await expect(carol.locator("#compose-blocked")).to_have_text(
            "You cannot send in this group now: you are muted."
        )
        await expect(carol.locator("#composer")).to_be_hidden()
        await expect(carol.locator("#messages .msg")).to_have_count(0)
        # The group read again: the line says until when.
        release.set()
        await expect(carol.locator("#compose-blocked")).to_have_text(
            re.compile(r"^You are muted in this group until \d\d:\d\d\.$")
        )
    finally:
        release.set()
        await carol.unroute(f"**/api/v1/groups/{group.id}")

    # Unmuted: the composer is back with the refused text in it, and it sends.
    await alice_api.unmute_member(group.id, carol_user.id)
    await expect(carol.locator("#composer")).to_be_visible()
    await expect(carol.locator("#compose")).to_have_value("let me in")
    await carol.press("#compose", "Enter")
    await expect(bubbles(carol)).to_have_text(["let me in"])
    stored = await alice_api.messages(f"g:{group.id}")
    assert [m.body for m in stored if m.kind != "system"] == ["let me in"]


async def test_an_admin_recalls_and_mentions_all_and_a_dissolved_group_offers_only_forward(
    web_server: WebServer, browser: Browser
) -> None:
    """Admins share the owner's rights over messages (recall anyone's, @all); a
    closed composer offers no Reply or Edit, and a dissolved group no Recall."""
    alice_user, alice_api = await web_server.account("alice", "Alice")
    bob_user, _ = await web_server.account("bob", "Bob")
    carol_user, carol_api = await web_server.account("carol", "Carol")
    pair = sorted([alice_user.id, bob_user.id])
    await alice_api.send(f"p:{pair[0]}-{pair[1]}", "hi Bob")
    group = await alice_api.create_group("Band", [bob_user.id, carol_user.id])
    await alice_api.set_admins(group.id, [bob_user.id])
    conversation = f"g:{group.id}"
    oops = await carol_api.send(conversation, "oops, wrong chat")
    bob = await browser.page("bob")
    await sign_in(bob, browser.url, "bob")
    await chat(bob, "Band").click()
    await expect(bubbles(bob)).to_have_text(["oops, wrong chat"])

    await row(bob, oops.seq).hover()
    await expect(row(bob, oops.seq).locator(".msg-action")).to_have_text(
        ["Reply", "Forward", "Recall"]
    )
    await act_on(bob, oops.seq, "Recall")
    await expect(row(bob, oops.seq)).to_have_text("You recalled a message")
    await bob.fill("#compose", "@")
    await expect(bob.locator("#mention-picker .mention-choice")).to_have_text(
        ["All (everyone)", "Alice", "Carol"]
    )
    await bob.fill("#compose", "")

    # Mute-all does not close an admin's composer; Carol's menu loses Reply and Edit.
    carol = await browser.page("carol")
    await sign_in(carol, browser.url, "carol")
    await chat(carol, "Band").click()
    await expect(row(carol, oops.seq)).to_have_text("Bob recalled a message")
    mine = await carol_api.send(conversation, "still here")
    await expect(bubbles(carol)).to_have_text(["still here"])
    await row(carol, mine.seq).hover()
    await expect(row(carol, mine.seq).locator(".msg-action")).to_have_text(
        ["Reply", "Forward", "Recall", "Edit"]
    )
    await alice_api.update_group(group.id, muted_all=True)
    await expect(carol.locator("#compose-blocked")).to_contain_text("Only the owner and admins")
    await row(carol, mine.seq).hover()
    await expect(row(carol, mine.seq).locator(".msg-action")).to_have_text(["Forward", "Recall"])
    await expect(bob.locator("#composer")).to_be_visible()

    # Dissolved: nobody writes or recalls; forwarding out still works.
    await alice_api.dissolve_group(group.id)
    await expect(bob.locator("#compose-blocked")).to_contain_text("dissolved")
    await row(bob, mine.seq).hover()
    await expect(row(bob, mine.seq).locator(".msg-action")).to_have_text(["Forward"])
    # Forwarding offers the chats one can still write in, not this one.
    await act_on(bob, mine.seq, "Forward")
    await expect(bob.locator("#forward-list .forward-to")).to_have_text(["Alice"])

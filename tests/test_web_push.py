"""Web Push in the web client, end to end in headless Chromium (PROTOCOL-v2 §8).

Headless Chromium has no push service: in Playwright's (incognito) contexts
``pushManager.subscribe`` fails at once, and a real profile waits for Google's
servers. So the tests use the most real path there is around that one gap:

- the failure of the real ``subscribe`` is shown quietly in the profile;
- otherwise the page's ``PushManager`` is given a subscription whose endpoint
  and keys are those of ``tests/test_push.py``'s push service, which checks
  the server's VAPID signature and decrypts what the server sends;
- that decrypted body is delivered to the registered service worker over the
  DevTools protocol (``ServiceWorker.deliverPushMessage``, what DevTools'
  "Push" button does), and the notification it shows is read back with
  ``registration.getNotifications()``.

The browser fixture and page helpers are ``tests/test_web_client.py``'s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import conftest
from tests.test_push import PushService, b64url, private, push_service, unb64url
from tests.test_web_client import (
    Browser,
    WebServer,
    bubbles,
    chat,
    expect,
    screenshot,
    sign_in,
    user_id,
)
from tests.test_web_client import browser as browser  # the fixture, over this module's server
from tidings.gateway.context import Edge
from tidings.ids import UserId

__all__ = ["push_service"]  # a fixture these tests use

# Chromium says this on the console when a page subscribes in an incognito context.
NO_PUSH_IN_INCOGNITO = "does not support the Push API in incognito mode"

# A PushManager with the subscription the test gives it (kept in localStorage,
# as a browser keeps one across reloads), and a count of permission prompts.
FAKE_PUSH = """
(json) => {
  window.__asked = 0;
  const ask = Notification.requestPermission.bind(Notification);
  Notification.requestPermission = (...args) => { window.__asked += 1; return ask(...args); };
  const KEY = "test.push";
  const made = (options) => ({
    endpoint: json.endpoint,
    options: { userVisibleOnly: true,
      applicationServerKey: new Uint8Array(options.applicationServerKey).buffer },
    toJSON: () => json,
    unsubscribe: async () => { localStorage.removeItem(KEY); return true; },
  });
  PushManager.prototype.subscribe = async function (options) {
    const saved = { userVisibleOnly: options.userVisibleOnly,
      applicationServerKey: [...new Uint8Array(options.applicationServerKey)] };
    localStorage.setItem(KEY, JSON.stringify(saved));
    return made(saved);
  };
  PushManager.prototype.getSubscription = async function () {
    const saved = localStorage.getItem(KEY);
    return saved ? made(JSON.parse(saved)) : null;
  };
}
"""

COUNT_PROMPTS = """
window.__asked = 0;
const ask = Notification.requestPermission.bind(Notification);
Notification.requestPermission = (...args) => { window.__asked += 1; return ask(...args); };
"""

NOTIFICATIONS = """
async () => (await (await navigator.serviceWorker.getRegistration("/")).getNotifications())
  .map((note) => ({ title: note.title, body: note.body, tag: note.tag, data: note.data }))
"""


@pytest.fixture
async def web_server(tmp_path: Path) -> AsyncIterator[WebServer]:
    """test_web_client's server, pushing to loopback (the test's push service)."""
    settings = conftest.settings_for(
        tmp_path, time_separator_seconds=1.0, push_allow_private=True, push_collapse_seconds=0.3
    )
    running = WebServer(settings)
    await running.start()
    try:
        yield running
    finally:
        for client in running.clients:
            await client.close()
        await running.stop()


async def endpoints(server: WebServer, user: int) -> list[str]:
    """The push endpoints the server holds for a user."""
    assert server.runner is not None
    push = server.runner.app[Edge.KEY].push
    held = await push._records.subscriptions([UserId(user)])
    return [subscription.endpoint for subscription in held.get(UserId(user), [])]


async def offline(server: WebServer, user: int) -> None:
    """Until the server has seen the user's last socket close (pushes go only then)."""
    assert server.runner is not None
    presence = server.runner.app[Edge.KEY].presence
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await presence.connections([UserId(user)])).get(UserId(user)):
        if loop.time() > deadline:
            raise AssertionError(f"user {user} is still online")
        await asyncio.sleep(0.02)


async def granted_context(browser: Browser) -> Any:
    context = await browser.browser.new_context()
    await context.grant_permissions(["notifications"], origin=browser.url)
    return context


async def deliver(context: Any, page: Any, origin: str, payload: dict[str, Any]) -> None:
    """A push to the app's service worker, as the browser's push service hands one over."""
    cdp = await context.new_cdp_session(page)
    seen: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: seen.extend(event["registrations"]),
    )
    await cdp.send("ServiceWorker.enable")
    scope = page.url.split("#")[0]
    ours: list[str] = []
    while not ours:  # the registrations are told soon after enable
        await page.wait_for_timeout(50)
        ours = [r["registrationId"] for r in seen if r["scopeURL"] == scope and not r["isDeleted"]]
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": ours[-1], "data": json.dumps(payload)},
    )
    await cdp.detach()


async def notifications(page: Any, count: int) -> list[dict[str, Any]]:
    await page.wait_for_function(f"({NOTIFICATIONS})().then((shown) => shown.length >= {count})")
    shown: list[dict[str, Any]] = await page.evaluate(NOTIFICATIONS)
    return shown


# -- tests ---------------------------------------------------------------------------


async def test_the_service_worker_is_served_at_the_root_and_the_csp_holds(
    web_server: WebServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(web_server.url + "/") as response:
            page_csp = response.headers["Content-Security-Policy"]
        async with http.get(web_server.url + "/sw.js") as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
            assert response.headers["Cache-Control"] == "no-cache"  # a new version is seen at once
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            worker_csp = response.headers["Content-Security-Policy"]
            body = await response.text()
        assert 'from "/static/push-rules.js"' in body
        async with http.get(web_server.url + "/static/push-rules.js") as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
    for csp in (page_csp, worker_csp):
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "worker-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp


async def test_the_title_and_app_badge_follow_the_unread_and_clear_on_reading(
    web_server: WebServer, browser: Browser
) -> None:
    alice, _ = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    page = await browser.page("alice")
    await page.add_init_script("""
      window.__badges = [];
      navigator.setAppBadge = async (count) => { window.__badges.push(count); };
      navigator.clearAppBadge = async () => { window.__badges.push(0); };
    """)
    await sign_in(page, browser.url, "alice")
    await expect(page).to_have_title("tidings")
    await bob_api.send(private(alice.id, bob.id), "one")
    await bob_api.send(private(alice.id, bob.id), "two")
    await expect(chat(page, "Bob").locator(".badge")).to_have_text("2")
    await expect(page).to_have_title("(2) tidings")
    assert (await page.evaluate("window.__badges"))[-1] == 2

    await chat(page, "Bob").click()
    await expect(bubbles(page)).to_have_count(2)
    await expect(page).to_have_title("tidings")
    assert (await page.evaluate("window.__badges"))[-1] == 0


async def test_push_is_turned_on_only_by_its_button_and_a_push_shows_and_opens_the_chat(
    web_server: WebServer, browser: Browser, push_service: PushService
) -> None:
    alice, _ = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    conversation = private(alice.id, bob.id)
    push_service.vapid_key = await bob_api.vapid_key()
    held = push_service.browser("alice")
    context = await granted_context(browser)
    await context.add_init_script(f"({FAKE_PUSH})({json.dumps(held.subscription())})")
    page = await browser.page("alice", context=context)
    await sign_in(page, browser.url, "alice")
    assert await page.evaluate("window.__asked") == 0  # no prompt on load
    assert await page.evaluate("navigator.serviceWorker.getRegistration('/')") is None

    await page.click("#btn-profile")
    await expect(page.locator("#push-state")).to_have_text("Off.")
    await page.click("#btn-push")
    await expect(page.locator("#push-state")).to_contain_text("On.")
    await expect(page.locator("#btn-push")).to_have_text("Turn off")
    await expect(page.locator("#push-msg")).to_have_text("")
    await screenshot(page, "push-on")
    assert await page.evaluate("window.__asked") == 1
    assert await endpoints(web_server, alice.id) == [held.endpoint]
    asked = json.loads(await page.evaluate("localStorage['test.push']"))
    assert asked["userVisibleOnly"] is True
    assert b64url(bytes(asked["applicationServerKey"])) == push_service.vapid_key
    assert unb64url(push_service.vapid_key)[0] == 4

    # Alice closes the tab; Bob writes: the server's push, decrypted, reaches her worker.
    await page.close()
    await offline(web_server, alice.id)
    sent = await bob_api.send(conversation, "are you there?")
    await push_service.wait(held, 1)
    assert held.pushes[0]["seq"] == sent.seq
    page = await browser.page("alice", context=context)
    await page.goto(browser.url)
    await expect(chat(page, "Bob")).to_be_visible()
    await deliver(context, page, browser.url, held.pushes[0])
    [shown] = await notifications(page, 1)
    assert shown == {
        "title": "Bob",
        "body": "are you there?",
        "tag": conversation,
        "data": {"conversation": conversation, "seq": sent.seq},
    }

    # A click on it: the worker's own handler, given the real notification
    # (dispatched by hand, so its waitUntil throws, as for any untrusted
    # event, after the handler has started its work): this window opens the
    # chat at that message, and the notification goes.
    [worker] = context.service_workers
    await worker.evaluate("""async () => {
      const [note] = await registration.getNotifications();
      try {
        self.dispatchEvent(new NotificationEvent("notificationclick", { notification: note }));
      } catch {}
    }""")
    await expect(page.locator("#pane-title")).to_have_text("Bob")
    await expect(page.locator(f'#messages .msg[data-seq="{sent.seq}"]')).to_be_visible()
    assert await page.evaluate(NOTIFICATIONS) == []

    # Turned off: the browser and the server both forget it.
    await page.click("#btn-profile")
    await expect(page.locator("#btn-push")).to_have_text("Turn off")
    await page.click("#btn-push")
    await expect(page.locator("#push-state")).to_have_text("Off.")
    assert await endpoints(web_server, alice.id) == []
    assert await page.evaluate("localStorage['test.push']") is None

    # On again, then signing out drops it: the next account here gets none of hers.
    await page.click("#btn-push")
    await expect(page.locator("#push-state")).to_contain_text("On.")
    assert await endpoints(web_server, alice.id) == [held.endpoint]
    await page.click("#dlg-profile [data-close]")
    await page.click("#btn-signout")
    await expect(page.locator("#auth")).to_be_visible()
    await page.wait_for_function("localStorage['test.push'] === undefined")
    assert await endpoints(web_server, alice.id) == []


async def test_no_notification_for_the_chat_on_screen(
    web_server: WebServer, browser: Browser, push_service: PushService
) -> None:
    alice, _ = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    carol, carol_api = await web_server.account("carol", "Carol")
    held = push_service.browser("alice")
    context = await granted_context(browser)
    await context.add_init_script(f"({FAKE_PUSH})({json.dumps(held.subscription())})")
    page = await browser.page("alice", context=context)
    await bob_api.send(private(alice.id, bob.id), "hi")
    await carol_api.send(private(alice.id, carol.id), "hello")
    await sign_in(page, browser.url, "alice")
    await page.click("#btn-profile")
    await page.click("#btn-push")
    await expect(page.locator("#push-state")).to_contain_text("On.")
    await page.click("#dlg-profile [data-close]")
    await chat(page, "Bob").click()
    await expect(page.locator("#pane-title")).to_have_text("Bob")

    base = {"body": "x", "total_unread": 1}
    on_screen = {"conversation": private(alice.id, bob.id), "seq": 2, "title": "Bob"}
    elsewhere = {"conversation": private(alice.id, carol.id), "seq": 2, "title": "Carol"}
    await deliver(context, page, browser.url, base | on_screen)
    await deliver(context, page, browser.url, base | elsewhere)
    shown = await notifications(page, 1)
    assert [note["title"] for note in shown] == ["Carol"]


async def test_a_link_to_a_message_opens_the_chat_there(
    web_server: WebServer, browser: Browser
) -> None:
    alice, _ = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    conversation = private(alice.id, bob.id)
    for n in range(3):
        await bob_api.send(conversation, f"message {n + 1}")
    page = await browser.page("alice")
    await sign_in(page, browser.url, "alice")
    # What a click on a notification opens when no window of the app is open.
    await page.goto(f"{browser.url}/#/{conversation}/2")
    await expect(page.locator("#pane-title")).to_have_text("Bob")
    await expect(page.locator('#messages .msg[data-seq="2"]')).to_be_visible()
    assert await page.evaluate("location.hash") == f"#/{conversation}"
    assert await user_id(page) == alice.id


async def test_a_browser_without_a_push_service_says_so_quietly(
    web_server: WebServer, browser: Browser
) -> None:
    await web_server.account("alice", "Alice")
    context = await granted_context(browser)
    await context.add_init_script(COUNT_PROMPTS)
    page = await browser.page("alice", context=context)
    await sign_in(page, browser.url, "alice")
    await page.click("#btn-profile")
    await expect(page.locator("#push-state")).to_have_text("Off.")
    await page.click("#btn-push")  # the real PushManager: incognito has no push service
    await expect(page.locator("#push-msg")).to_have_text(
        "This browser's push service is not available now. Try again later."
    )
    await expect(page.locator("#push-state")).to_have_text("Off.")
    await expect(page.locator("#btn-push")).to_be_enabled()
    # Chromium's own console line about it is no error of the app.
    browser.console.errors = [e for e in browser.console.errors if NO_PUSH_IN_INCOGNITO not in e]


async def test_a_subscription_the_server_refuses_is_dropped_and_said_quietly(
    web_server: WebServer, browser: Browser, push_service: PushService
) -> None:
    alice, _ = await web_server.account("alice", "Alice")
    bad_keys = {"keys": {"p256dh": "AAAA", "auth": "AAAA"}}
    bad = push_service.browser("alice").subscription() | bad_keys
    context = await granted_context(browser)
    await context.add_init_script(f"({FAKE_PUSH})({json.dumps(bad)})")
    page = await browser.page("alice", context=context)
    await sign_in(page, browser.url, "alice")
    await page.click("#btn-profile")
    await page.click("#btn-push")
    await expect(page.locator("#push-msg")).to_have_text(
        "The server does not accept this browser's push service."
    )
    await expect(page.locator("#push-state")).to_have_text("Off.")
    assert await page.evaluate("localStorage['test.push']") is None
    assert await endpoints(web_server, alice.id) == []
    # The 422 Chromium logs for the refused POST.
    browser.console.errors = [e for e in browser.console.errors if "422" not in e]


@pytest.mark.parametrize(
    ("browser_state", "said"),
    [
        (
            'Object.defineProperty(Notification, "permission", { get: () => "denied" });',
            "Blocked for this site. To allow them, open the site's settings",
        ),
        ("delete window.PushManager;", "This browser cannot show notifications"),
    ],
    ids=["blocked", "no-push-api"],
)
async def test_a_blocked_site_or_a_browser_without_push_is_told_with_no_button(
    web_server: WebServer, browser: Browser, browser_state: str, said: str
) -> None:
    await web_server.account("alice", "Alice")
    context = await browser.browser.new_context()
    await context.add_init_script(browser_state)
    page = await browser.page("alice", context=context)
    await sign_in(page, browser.url, "alice")
    await page.click("#btn-profile")
    await expect(page.locator("#push-state")).to_contain_text(said)
    await expect(page.locator("#btn-push")).to_be_hidden()

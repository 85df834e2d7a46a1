"""Searching messages in the web client (PROTOCOL-v2 §7), end to end in Chromium.

The server, the browser and the page helpers are those of test_web_client.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests import test_web_client
from tests.test_web_client import (
    DESKTOP,
    PHONE,
    Browser,
    WebServer,
    _axe_serious,
    _axe_source,
    bubbles,
    expect,
    screenshot,
    sign_in,
)

# The fixtures of test_web_client.py, by name, for the tests here.
web_server = test_web_client.web_server
browser = test_web_client.browser


def private_id(a: int, b: int) -> str:
    return f"p:{min(a, b)}-{max(a, b)}"


def results(page: Any) -> Any:
    return page.locator("#search-list .result")


def group_of(page: Any, title: str) -> Any:
    return page.locator(f'#search-list [role="group"][aria-label="{title}"]')


async def search(page: Any, text: str) -> None:
    await page.fill("#chat-filter", text)
    await expect(page.locator("#search-note")).not_to_have_text("Searching…")


async def test_typing_finds_messages_in_any_script_grouped_by_their_chat(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    private = private_id(alice.id, bob.id)
    travel = await alice_api.create_group("Travel 旅行", [bob.id])
    books = await alice_api.create_group("Books", [bob.id])
    await alice_api.send(private, "你好世界")
    await bob_api.send(private, "Hello World from Bob")
    secret = await alice_api.send(private, "世界的秘密 a WORLD secret")
    await alice_api.recall(private, secret.seq)
    await bob_api.send(f"g:{books.id}", "a book about the WORLD")
    await alice_api.send(f"g:{travel.id}", "世界很大，我想去看看")

    page = await browser.page("bob")
    await sign_in(page, browser.url, "bob")
    await search(page, "世界")
    # Grouped by conversation, the one with the newest match first; the recalled
    # message is not found.
    await expect(page.locator("#search-list .result-title")).to_have_text(["Travel 旅行", "Alice"])
    await expect(group_of(page, "Alice").locator(".result-text")).to_have_text(["你好世界"])
    await expect(group_of(page, "Alice").locator("mark")).to_have_text(["世界"])
    await expect(group_of(page, "Alice").locator(".result-sender")).to_have_text(["Alice"])
    await expect(group_of(page, "Travel 旅行").locator("mark")).to_have_text(["世界"])
    await expect(page.locator("#search-list")).not_to_contain_text("秘密")
    # The chats' own filter still works beside it: "旅行" keeps the group.
    await search(page, "旅行")
    await expect(page.locator("#chat-list .chat-title")).to_have_text(["Travel 旅行"])
    await expect(page.locator("#search-note")).to_have_text("No messages found.")

    await search(page, "world")
    await expect(page.locator("#search-list .result-title")).to_have_text(["Books", "Alice"])
    await expect(page.locator("#search-list mark")).to_have_text(["WORLD", "World"])
    await expect(group_of(page, "Alice").locator(".result-sender")).to_have_text(["You"])
    await screenshot(page, "search-results")

    # By keyboard: no chat matches, so Down goes to the first result, Down again
    # to the next, and Enter opens that chat at it.
    await page.focus("#chat-filter")
    await page.keyboard.press("ArrowDown")
    await expect(results(page).first).to_be_focused()
    await expect(results(page).first).to_have_attribute("role", "option")
    await page.keyboard.press("ArrowDown")
    await expect(results(page).nth(1)).to_be_focused()
    await expect(results(page).nth(0)).to_have_attribute("tabindex", "-1")
    await page.keyboard.press("Enter")
    await expect(page.locator("#pane-title")).to_have_text("Alice")
    found = page.locator("#messages .msg.found .bubble")
    await expect(found).to_have_text("Hello World from Bob")
    await expect(found).to_be_in_viewport()

    # A failed search says why in a quiet line. (The console's "Failed to load
    # resource" for the 429 is expected here.)
    browser.console.server_down = True
    await page.route(
        "**/api/v1/search/messages?*",
        lambda route: route.fulfill(
            status=429, json={"error": {"code": "rate_limited", "message": "slow down"}}
        ),
    )
    await search(page, "hello")
    await expect(page.locator("#search-note")).to_have_text(
        "Searching too often. Wait a moment and type again."
    )
    await page.unroute("**/api/v1/search/messages?*")
    browser.console.server_down = False
    await search(page, "a" * 101)
    await expect(page.locator("#search-note")).to_contain_text("at most 100 characters")

    # Escape in the box clears the chats' filter and the messages found.
    await page.focus("#chat-filter")
    await page.keyboard.press("Escape")
    await expect(page.locator("#search")).to_be_hidden()
    await expect(page.locator("#chat-list .chat")).to_have_count(3)


async def test_a_result_far_back_opens_its_chat_there_and_more_results_page(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    private = private_id(alice.id, bob.id)
    group = await alice_api.create_group("Long group", [bob.id])
    for n in range(1, 121):
        body = f"message {n}" + (" 海洋 ocean" if n == 5 else "")
        await alice_api.send(private, body)
    for n in range(1, 121):
        body = f"group line {n}" + (" 山 mountain" if n == 70 else "")
        await alice_api.send(f"g:{group.id}", body)

    page = await browser.page("bob")
    await sign_in(page, browser.url, "bob")
    await search(page, "MESSAGE")
    await expect(results(page)).to_have_count(20)
    await page.click("#search-more")
    await expect(results(page)).to_have_count(40)
    texts = await page.locator("#search-list .result-text").all_inner_texts()
    assert texts == [f"message {n}" for n in range(120, 80, -1)]

    # Message 5 of 120, 115 unread: the chat opens at it, not at the "new messages" line.
    await search(page, "海洋")
    await results(page).first.click()
    await expect(page.locator("#pane-title")).to_have_text("Alice")
    found = page.locator("#messages .msg.found .bubble")
    await expect(found).to_have_text("message 5 海洋 ocean")
    await expect(found).to_be_in_viewport()
    await expect(bubbles(page)).to_have_count(120)  # caught up to the newest below it
    await asyncio.sleep(0.5)  # what came in after the jump did not move it
    await expect(found).to_be_in_viewport()
    await expect(page.locator("#messages .msg.found")).to_have_count(0, timeout=4000)
    await expect(page.locator('#messages .msg[data-seq="5"]')).to_be_in_viewport()

    # Message 70 of 120 in the group: older pages load by scrolling up from it.
    await search(page, "mountain")
    await results(page).first.click()
    await expect(page.locator("#pane-title")).to_have_text("Long group")
    target = page.locator("#messages .msg .bubble", has_text="mountain")
    await expect(target).to_have_text("group line 70 山 mountain")
    await expect(target).to_be_in_viewport()
    await expect(bubbles(page).first).not_to_have_text("group line 1")
    await page.locator("#messages").hover()
    for _ in range(40):
        if await page.locator(".history-start").count():
            break
        await page.mouse.wheel(0, -3000)
        await asyncio.sleep(0.1)
    await expect(bubbles(page).first).to_have_text("group line 1")
    await expect(bubbles(page).last).to_have_text("group line 120")


async def test_a_result_opens_its_chat_on_a_phone_and_back_keeps_the_results(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    private = private_id(alice.id, bob.id)
    for n in range(1, 61):
        await alice_api.send(private, "早上好 good morning" if n == 3 else f"line {n}")

    page = await browser.page("bob-phone", viewport=PHONE)
    await sign_in(page, browser.url, "bob")
    await search(page, "早上")
    await expect(page.locator("#search-list mark")).to_have_text(["早上"])
    await screenshot(page, "search-phone")
    await results(page).first.click()
    await expect(page.locator(".sidebar")).to_be_hidden()
    found = page.locator("#messages .msg.found .bubble")
    await expect(found).to_have_text("早上好 good morning")
    await expect(found).to_be_in_viewport()
    await page.click("#btn-back")
    await expect(page.locator(".sidebar")).to_be_visible()
    await expect(page.locator("#chat-filter")).to_have_value("早上")
    await expect(results(page)).to_have_count(1)


async def test_the_results_have_no_serious_axe_violations(
    web_server: WebServer, browser: Browser, tmp_path: Path
) -> None:
    axe = await _axe_source(tmp_path)
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    group = await alice_api.create_group("Tea", [bob.id])
    await alice_api.send(private_id(alice.id, bob.id), "tea or coffee?")
    await alice_api.send(f"g:{group.id}", "TEA at four")
    problems: list[str] = []
    for width, viewport in [("desktop", DESKTOP), ("phone", PHONE)]:
        # The page's CSP rightly refuses an injected script: bypassed for this check only.
        context = await browser.browser.new_context(viewport=viewport, bypass_csp=True)
        page = await browser.page(f"bob-{width}", context=context)
        await sign_in(page, browser.url, "bob")
        await search(page, "tea")
        await expect(results(page)).to_have_count(2)
        problems += await _axe_serious(page, axe, f"{width} results")
        await search(page, "nothing like it")
        await expect(page.locator("#search-note")).to_have_text("No messages found.")
        problems += await _axe_serious(page, axe, f"{width} no results")
        await context.close()
    assert problems == []

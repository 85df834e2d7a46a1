"""Archived history in the web client (issue 23 §3): a person scrolls back
through messages `tidings archive` moved to Parquet files and finds them by
search, as if nothing had moved."""

from __future__ import annotations

from tests import test_web_client
from tests.test_archive import run_archive
from tests.test_web_client import (
    Browser,
    WebServer,
    bubbles,
    chat,
    expect,
    screenshot,
    scroll_to_first,
    sign_in,
)
from tests.test_web_search import results, search

# The fixtures of test_web_client.py, by name, for the tests here.
web_server = test_web_client.web_server
browser = test_web_client.browser


async def test_archived_history_scrolls_back_and_is_found(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = f"p:{min(alice.id, bob.id)}-{max(alice.id, bob.id)}"
    for n in range(1, 81):
        await alice_api.send(conversation, f"message {n}" + (" about tea" if n == 7 else ""))
    settings = web_server.settings
    out = run_archive(
        settings.database_url, settings.files_url, "--older-than", "0s", "--segment-rows", "25"
    )
    assert "archived 79 messages" in out, out

    page = await browser.page("bob-archive")
    await sign_in(page, browser.url, "bob")
    await expect(chat(page, "Alice").locator(".chat-preview")).to_have_text("message 80")
    await chat(page, "Alice").click()
    await expect(bubbles(page).last).to_have_text("message 80")
    await scroll_to_first(page, 80)

    await search(page, "tea")
    await expect(results(page)).to_have_count(1)
    await expect(page.locator("#search-list .result-text")).to_contain_text("message 7 about tea")
    await screenshot(page, "archived-search")

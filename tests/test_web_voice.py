"""Voice notes recorded in the web client, end to end in Chromium, and the
attachments on a phone and under axe.

Chromium runs with a fake microphone (``--use-fake-device-for-media-stream``:
a beep, no device needed; ``--use-fake-ui-for-media-stream``: no prompt),
and each context is granted the microphone. The server, the page helpers
and the console watch are those of test_web_client.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests import test_web_client
from tests.backends import services_required
from tests.test_web_client import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    Browser,
    Console,
    WebServer,
    _axe_serious,
    _axe_source,
    _browser_missing,
    chat,
    expect,
    screenshot,
    sign_in,
)
from tests.test_web_files import png, private_id, sent, wav

web_server = test_web_client.web_server

FAKE_MICROPHONE = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture
async def browser(web_server: WebServer) -> AsyncIterator[Browser]:
    """test_web_client's browser, with a fake microphone."""
    missing = _browser_missing()
    if missing:
        if services_required():
            pytest.fail(f"{missing}; TIDINGS_TEST_SERVICES=required", pytrace=False)
        pytest.skip(missing)
    from playwright.async_api import async_playwright
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=8000)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *FAKE_MICROPHONE]
        )
        console = Console()
        try:
            yield Browser(chromium, console, web_server.url)
        finally:
            await chromium.close()
        assert console.errors == [], "errors in the browser console"


async def page_with_microphone(
    browser: Browser, name: str, viewport: dict[str, int] = DESKTOP, **options: Any
) -> Any:
    context = await browser.browser.new_context(
        viewport=viewport, permissions=["microphone"], **options
    )
    return await browser.page(name, context=context)


async def record(page: Any, seconds: int) -> None:
    """Record until the clock shows ``seconds`` whole seconds, then Stop and send."""
    await page.click("#btn-record")
    bar = page.locator("#recorder")
    await expect(bar.get_by_role("button", name="Stop and send")).to_be_focused()
    await expect(bar.locator("#rec-clock")).to_have_text(f"0:{seconds:02d}")
    await bar.get_by_role("button", name="Stop and send").click()
    await expect(bar).to_have_count(0)


async def test_a_recorded_voice_note_is_sent_and_plays_for_the_receiver(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = private_id(alice.id, bob.id)
    await alice_api.send(conversation, "about to talk")
    sender = await page_with_microphone(browser, "alice")
    await sign_in(sender, browser.url, "alice")
    await chat(sender, "Bob").click()
    receiver = await browser.page("bob")
    await sign_in(receiver, browser.url, "bob")
    await chat(receiver, "Alice").click()

    # Escape drops a recording: nothing goes up, the focus is back on the button.
    await sender.click("#btn-record")
    await expect(sender.locator("#recorder.recording")).to_be_visible()
    await sender.keyboard.press("Escape")
    await expect(sender.locator("#recorder")).to_have_count(0)
    await expect(sender.locator("#btn-record")).to_be_focused()
    # ... and so does Cancel.
    await sender.click("#btn-record")
    await sender.locator("#recorder").get_by_role("button", name="Cancel").click()
    await expect(sender.locator("#recorder")).to_have_count(0)

    # Recorded until the clock reads 0:01 (one to two seconds), then sent.
    await record(sender, 1)
    await expect(sender.locator("#compose")).to_be_focused()
    voice = sent(receiver, ".att-voice")
    await expect(voice).to_have_count(1)
    await expect(voice.locator(".att-duration")).to_have_text(re.compile(r"^0:0[1-4]$"))
    await expect(chat(receiver, "Alice").locator(".chat-preview")).to_have_text("[Voice]")
    await expect(sent(receiver, ".bubble")).to_have_count(2)  # the text, the note: no cancelled one
    await expect(sent(sender, ".att-voice")).to_have_count(1)
    [_, message] = await alice_api.messages(conversation)
    assert message.kind == "voice" and message.file is not None
    assert message.file.content_type in ("audio/webm", "audio/ogg")
    assert message.file.duration_ms is not None and 1000 <= message.file.duration_ms < 5000

    audio = voice.locator("audio")
    src = await audio.get_attribute("src")
    assert src and "sig=" in src
    status = await receiver.evaluate("(src) => fetch(src).then((r) => r.status)", src)
    assert status == 200
    # The player loads it (a live WebM has no length in its header: the label is the client's).
    state = await audio.evaluate(
        """(audio) => new Promise((resolve, reject) => {
            audio.addEventListener("loadedmetadata", () => resolve(audio.readyState));
            audio.addEventListener("error", () => reject(new Error("audio did not load")));
            audio.preload = "metadata";
            audio.load();
        })"""
    )
    assert state >= 1  # HAVE_METADATA
    await screenshot(receiver, "voice-received")


async def test_a_refused_microphone_says_why_and_no_recorder_means_no_button(
    web_server: WebServer, browser: Browser
) -> None:
    alice, _ = await web_server.account("alice", "Alice")
    bob, bob_api = await web_server.account("bob", "Bob")
    await bob_api.send(private_id(alice.id, bob.id), "hello")

    refused = await page_with_microphone(browser, "alice-refused")
    await refused.add_init_script(
        """navigator.mediaDevices.getUserMedia = () =>
             Promise.reject(new DOMException("Permission denied", "NotAllowedError"));"""
    )
    await sign_in(refused, browser.url, "alice")
    await chat(refused, "Bob").click()
    await refused.click("#btn-record")
    alert = refused.get_by_role("alert")
    await expect(alert).to_contain_text("The microphone is blocked")
    await alert.get_by_role("button", name="Dismiss").click()
    await expect(refused.locator("#recorder")).to_have_count(0)
    await expect(refused.locator("#btn-record")).to_be_focused()

    # A browser with no MediaRecorder shows no microphone button at all.
    bare = await page_with_microphone(browser, "alice-bare")
    await bare.add_init_script("delete window.MediaRecorder;")
    await sign_in(bare, browser.url, "alice")
    await chat(bare, "Bob").click()
    await expect(bare.locator("#btn-attach")).to_be_visible()
    await expect(bare.locator("#btn-record")).to_be_hidden()


async def test_the_phone_layout_with_an_image_a_file_and_a_voice_note(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = private_id(alice.id, bob.id)
    await alice_api.send_image(conversation, png(1600, 900), name="wide.png")
    await alice_api.send_file(
        conversation, b"%PDF-1.4 " * 100, name="a-very-long-name-of-a-report-" * 4 + ".pdf"
    )
    await alice_api.send_voice(conversation, wav(2.0), name="note.wav")

    page = await page_with_microphone(browser, "bob-phone", PHONE)
    await sign_in(page, browser.url, "bob")
    await chat(page, "Alice").click()
    await expect(sent(page, ".att-image")).to_have_count(1)
    await expect(sent(page, ".att-file")).to_have_count(1)
    await expect(sent(page, ".att-voice")).to_have_count(1)
    # Bob answers with a note of his own, recorded on the phone.
    await page.click("#btn-record")
    await expect(page.locator("#recorder.recording")).to_be_visible()
    await expect(page.locator("#rec-clock")).to_have_text("0:01")
    await screenshot(page, "voice-phone-recording")
    await assert_fits(page)
    await page.locator("#recorder").get_by_role("button", name="Stop and send").click()
    await expect(sent(page, ".att-voice")).to_have_count(2)
    await expect(sent(page, ".att-image img")).to_have_js_property("complete", True)
    await assert_fits(page)
    await screenshot(page, "voice-phone-timeline")

    await sent(page, ".att-image").click()
    viewer = page.locator("dialog.viewer")
    await expect(viewer).to_be_visible()
    await expect(viewer.locator("img")).to_have_js_property("naturalWidth", 1600)
    await assert_fits(page)
    await viewer.get_by_role("button", name="Close").click()
    await expect(viewer).to_have_count(0)
    await expect(sent(page, ".att-image")).to_be_focused()

    # Back to the list drops a recording under way (its chat is no longer open).
    await page.click("#btn-record")
    await expect(page.locator("#recorder.recording")).to_be_visible()
    await page.click("#btn-back")
    await expect(page.locator("#recorder")).to_have_count(0)
    await chat(page, "Alice").click()
    await expect(sent(page, ".att-voice")).to_have_count(2)


async def assert_fits(page: Any) -> None:
    """Nothing on the page reaches past the screen's width (no sideways scroll),
    and nothing in a bubble past the bubble."""
    wider = await page.evaluate(
        """() => {
            const width = document.documentElement.clientWidth;
            const out = [];
            if (document.documentElement.scrollWidth > width) out.push("the page scrolls sideways");
            for (const node of document.querySelectorAll("#messages *, #composer *, dialog *")) {
              const box = node.getBoundingClientRect();
              if (box.width && (box.right > width + 0.5 || box.left < -0.5)) {
                const name = `${node.tagName.toLowerCase()}.${node.className}`;
                out.push(`${name}: ${box.left}-${box.right}`);
              }
            }
            for (const bubble of document.querySelectorAll("#messages .bubble")) {
              const outer = bubble.getBoundingClientRect();
              for (const node of bubble.querySelectorAll("*")) {
                const box = node.getBoundingClientRect();
                if (box.width && (box.right > outer.right + 0.5 || box.left < outer.left - 0.5)) {
                  out.push(`${node.tagName.toLowerCase()}.${node.className} leaves its bubble`);
                }
              }
            }
            return out;
        }"""
    )
    assert wider == [], "\n".join(wider)


async def test_attachments_and_the_recorder_have_no_serious_axe_violations(
    web_server: WebServer, browser: Browser, tmp_path: Path
) -> None:
    axe = await _axe_source(tmp_path)
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    conversation = private_id(alice.id, bob.id)
    await alice_api.send_image(conversation, png(320, 200), name="photo.png")
    await alice_api.send_file(conversation, b"hello notes", name="notes.txt", caption="the notes")
    await alice_api.send_voice(conversation, wav(1.0), name="note.wav")
    problems: list[str] = []
    for width, viewport in [("desktop", DESKTOP), ("phone", PHONE)]:
        # The page's CSP rightly refuses an injected script: bypassed for this check only.
        page = await page_with_microphone(browser, f"bob-{width}", viewport, bypass_csp=True)
        await sign_in(page, browser.url, "bob")
        await chat(page, "Alice").click()
        await expect(sent(page, ".att-voice")).to_have_count(1)
        await expect(sent(page, ".att-image img")).to_have_js_property("complete", True)
        problems += await _axe_serious(page, axe, f"{width} attachments")
        await page.click("#btn-record")
        await expect(page.locator("#recorder.recording")).to_be_visible()
        problems += await _axe_serious(page, axe, f"{width} recording")
        await page.keyboard.press("Escape")
        await expect(page.locator("#recorder")).to_have_count(0)
        await sent(page, ".att-image").click()
        await expect(page.locator("dialog.viewer img")).to_have_js_property("complete", True)
        problems += await _axe_serious(page, axe, f"{width} viewer")
        await page.keyboard.press("Escape")
        await page.context.close()
    assert problems == []


async def test_opening_another_chat_drops_a_recording(
    web_server: WebServer, browser: Browser
) -> None:
    """A recording belongs to its chat: leaving that chat drops it, unsent."""
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    carol, carol_api = await web_server.account("carol", "Carol")
    with_bob = private_id(alice.id, bob.id)
    await alice_api.send(with_bob, "hi Bob")
    await carol_api.send(private_id(alice.id, carol.id), "hi Alice")
    page = await page_with_microphone(browser, "alice")
    await sign_in(page, browser.url, "alice")
    await chat(page, "Bob").click()
    await page.click("#btn-record")
    await expect(page.locator("#recorder.recording")).to_be_visible()
    await chat(page, "Carol").click()
    await expect(page.locator("#recorder")).to_have_count(0)
    await chat(page, "Bob").click()
    # The next note is the only one sent.
    await record(page, 1)
    await expect(sent(page, ".att-voice")).to_have_count(1)
    kinds = [message.kind for message in await alice_api.messages(with_bob)]
    assert kinds == ["text", "voice"]

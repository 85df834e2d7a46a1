"""Images, files and voice notes in the web client (PROTOCOL-v2 §1-3), end to end in Chromium.

The server, the browser and the page helpers are those of test_web_client.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import wave
from pathlib import Path
from typing import Any

from PIL import Image

from tests import test_web_client
from tests.test_web_client import Browser, WebServer, chat, expect, screenshot, sign_in

# The fixtures of test_web_client.py, by name, for the tests here.
web_server = test_web_client.web_server
browser = test_web_client.browser


def private_id(a: int, b: int) -> str:
    return f"p:{min(a, b)}-{max(a, b)}"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 140, 200)).save(out, format="PNG")
    return out.getvalue()


def sent(page: Any, selector: str) -> Any:
    return page.locator(f"#messages .msg:not(.pending) {selector}")


async def box_of(locator: Any) -> dict[str, float]:
    """The attachment's box once laid out (a node just added can measure 0 x 0
    for a frame; seen once in CI): waits up to 5 s for a width."""
    size: dict[str, float] = {}
    for _ in range(50):
        size = await locator.evaluate(
            "(node) => ({width: node.offsetWidth, height: node.offsetHeight,"
            " loaded: node.querySelector('img').naturalWidth})"
        )
        if size["width"]:
            break
        await asyncio.sleep(0.1)
    return size


async def test_an_image_and_a_file_go_up_show_and_open(
    web_server: WebServer, browser: Browser, tmp_path: Path
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    await alice_api.send(private_id(alice.id, bob.id), "a picture coming")

    sender = await browser.page("alice")
    await sign_in(sender, browser.url, "alice")
    await chat(sender, "Bob").click()
    receiver = await browser.page("bob")
    # The receiver's thumbnail is held back: its box has its size before it loads.
    released = asyncio.Event()

    async def hold(route: Any) -> None:
        await released.wait()
        await route.continue_()

    await receiver.route(lambda url: "thumbnail=1" in url, hold)
    await sign_in(receiver, browser.url, "bob")
    await chat(receiver, "Alice").click()

    photo = tmp_path / "photo.png"
    await asyncio.to_thread(photo.write_bytes, png(640, 480))
    await sender.fill("#compose", "the view")
    await sender.set_input_files("#attach-input", str(photo))

    # 640 x 480 fits a 240 px box as 240 x 180, on both sides.
    shown = sent(receiver, ".att-image")
    await expect(shown).to_have_count(1)
    assert await box_of(shown) == {"width": 240, "height": 180, "loaded": 0}
    released.set()
    await expect(shown.locator("img")).to_have_js_property("complete", True)
    assert (await box_of(shown))["width"] == 240
    mine = sent(sender, ".att-image")
    await expect(mine).to_have_count(1)
    assert (await box_of(mine))["height"] == 180
    await expect(sent(receiver, ".caption")).to_have_text("the view")
    await expect(sender.locator("#compose")).to_have_value("")
    await expect(chat(receiver, "Alice").locator(".chat-preview")).to_have_text("[Image] the view")
    await expect(chat(sender, "Bob").locator(".chat-preview")).to_have_text("[Image] the view")

    # The viewer: the full image, closed by Escape, the focus back on the thumbnail.
    await shown.click()
    viewer = receiver.locator("dialog.viewer")
    await expect(viewer).to_be_visible()
    full = viewer.locator("img")
    await expect(full).to_have_js_property("naturalWidth", 640)
    assert "thumbnail" not in (await full.get_attribute("src") or "")
    await screenshot(receiver, "files-viewer")
    await receiver.keyboard.press("Escape")
    await expect(viewer).to_have_count(0)
    await expect(shown).to_be_focused()
    # ... and by a click.
    await shown.click()
    await expect(viewer).to_be_visible()
    await viewer.click()
    await expect(viewer).to_have_count(0)

    # Any other file: a card with its name, its size and a download link.
    notes = tmp_path / "notes.txt"
    await asyncio.to_thread(notes.write_bytes, b"hello notes")
    await sender.set_input_files("#attach-input", str(notes))
    card = sent(receiver, ".att-file")
    await expect(card.locator(".att-name")).to_have_text("notes.txt")
    await expect(card.locator(".att-size")).to_have_text("11 B")
    link = card.locator("a.att-download")
    await expect(link).to_have_attribute("download", "notes.txt")
    href = await link.get_attribute("href")
    assert href and href.startswith("/api/v1/files/")
    answer = await receiver.evaluate(
        "(href) => fetch(href).then(async (r) => [r.status, await r.text()])", href
    )
    assert answer == [200, "hello notes"]
    await expect(chat(receiver, "Alice").locator(".chat-preview")).to_have_text("[File] notes.txt")
    await screenshot(receiver, "files-timeline")

    # An empty file is refused (422): a quiet line with a retry, nothing sent.
    browser.console.server_down = True  # Chromium logs the 422 as a failed resource
    await sender.set_input_files(
        "#attach-input", files=[{"name": "empty.txt", "mimeType": "text/plain", "buffer": b""}]
    )
    failed = sender.locator("#uploads .upload.failed")
    await expect(failed).to_contain_text("empty.txt: The file cannot be sent: the file is empty.")
    await expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    await failed.get_by_role("button", name="Dismiss").click()
    await expect(sender.locator("#uploads")).to_be_hidden()
    await expect(sent(receiver, ".bubble")).to_have_count(3)


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(rate)
        sound.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


async def test_history_shows_a_tall_image_and_a_voice_note_with_its_length(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    private = private_id(alice.id, bob.id)
    await alice_api.send_image(private, png(100, 400), name="tall.png")
    await alice_api.send_voice(private, wav(1.5), name="note.wav")

    page = await browser.page("bob")
    await sign_in(page, browser.url, "bob")
    await expect(chat(page, "Alice").locator(".chat-preview")).to_have_text("[Voice]")
    await chat(page, "Alice").click()
    # 100 x 400 fits 240 px as 60 x 240, from the history page as from a live frame.
    shown = sent(page, ".att-image")
    await expect(shown).to_have_count(1)
    size = await box_of(shown)
    assert (size["width"], size["height"]) == (60, 240)
    voice = sent(page, ".att-voice")
    await expect(voice.locator("audio")).to_have_attribute("controls", "")
    await expect(voice.locator(".att-duration")).to_have_text("0:02")
    src = await voice.locator("audio").get_attribute("src")
    assert src and "sig=" in src
    status = await page.evaluate("(src) => fetch(src).then((r) => r.status)", src)
    assert status == 200
    # The player itself loads it (the page's policy allows media from its origin).
    seconds = await voice.locator("audio").evaluate(
        """(audio) => new Promise((resolve, reject) => {
            audio.addEventListener("loadedmetadata", () => resolve(audio.duration));
            audio.addEventListener("error", () => reject(new Error("audio did not load")));
            audio.preload = "metadata";
            audio.load();
        })"""
    )
    assert abs(seconds - 1.5) < 0.05  # the 1.5-second note sent above


# Builds a File of the given bytes (base64) in the page, in a DataTransfer as
# a clipboard or a drag carries it, and dispatches the events a real paste
# or drop fires on their targets.
PASTE = """([data, name, type]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const carried = new DataTransfer();
    carried.items.add(new File([bytes], name, {type}));
    const event = new ClipboardEvent(
      "paste", {clipboardData: carried, bubbles: true, cancelable: true});
    document.querySelector("#compose").dispatchEvent(event);
    return event.defaultPrevented;
}"""
DROP = """([data, name, type]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const carried = new DataTransfer();
    carried.items.add(new File([bytes], name, {type}));
    const target = document.querySelector("#messages");
    const fire = (kind) => {
      const event = new DragEvent(kind, {dataTransfer: carried, bubbles: true, cancelable: true});
      target.dispatchEvent(event);
      return event.defaultPrevented;
    };
    const entered = fire("dragenter");
    const marked = document.querySelector("#pane-chat").classList.contains("dropping");
    return [entered, marked, fire("dragover"), fire("drop")];
}"""


async def test_a_pasted_image_and_a_dropped_file_go_up_and_are_sent(
    web_server: WebServer, browser: Browser
) -> None:
    alice, alice_api = await web_server.account("alice", "Alice")
    bob, _ = await web_server.account("bob", "Bob")
    await alice_api.send(private_id(alice.id, bob.id), "hello")
    sender = await browser.page("alice")
    await sign_in(sender, browser.url, "alice")
    await chat(sender, "Bob").click()
    receiver = await browser.page("bob")
    await sign_in(receiver, browser.url, "bob")
    await chat(receiver, "Alice").click()

    # A pasted image (a screenshot from the clipboard) goes with the text as its caption.
    await sender.fill("#compose", "pasted")
    image = base64.b64encode(png(300, 150)).decode()
    taken = await sender.evaluate(PASTE, [image, "image.png", "image/png"])
    assert taken  # the page took the paste: no file name pasted as text
    shown = sent(receiver, ".att-image")
    await expect(shown).to_have_count(1)
    assert (await box_of(shown))["width"] == 240
    await expect(sent(receiver, ".caption")).to_have_text("pasted")
    await expect(shown.locator("img")).to_have_js_property("naturalWidth", 300)

    # A file dropped on the chat: the pane is marked while it is dragged over.
    notes = base64.b64encode(b"dropped notes").decode()
    entered, marked, over, dropped = await sender.evaluate(DROP, [notes, "drop.txt", "text/plain"])
    assert (entered, marked, over, dropped) == (True, True, True, True)
    await expect(sender.locator("#pane-chat")).not_to_have_class(re.compile(r"\bdropping\b"))
    card = sent(receiver, ".att-file")
    await expect(card.locator(".att-name")).to_have_text("drop.txt")
    await expect(card.locator(".att-size")).to_have_text("13 B")
    await expect(chat(receiver, "Alice").locator(".chat-preview")).to_have_text("[File] drop.txt")
    # A text paste is left to the browser (it types the text): nothing goes up.
    taken = await sender.evaluate(
        """() => {
            const carried = new DataTransfer();
            carried.setData("text/plain", "just words");
            const event = new ClipboardEvent("paste",
              {clipboardData: carried, bubbles: true, cancelable: true});
            document.querySelector("#compose").dispatchEvent(event);
            return [event.defaultPrevented, document.querySelector("#uploads").hidden];
        }"""
    )
    assert taken == [False, True]
    await expect(sent(receiver, ".bubble")).to_have_count(3)

// Unit tests of the file helpers in tidings/web/format.js: node --test tests/web/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  attachmentLabel, durationText, fileKindFor, fileSize, fitBox, preview, uploadProblem,
} from "../../tidings/web/format.js";

const file = { id: "f1", name: "report.pdf", size: 2048, content_type: "application/octet-stream",
  url: "/api/v1/files/f1?exp=1&sig=x" };

/**
 * @param {string} type
 * @param {object} last
 */
const entry = (type, last) => /** @type {any} */ ({ type, last_seq: 1, last_message: last });

test("the chat list previews an image, a file and a voice note, with the caption", () => {
  const names = (/** @type {number} */ id) => (id === 2 ? "Bob" : "?");
  const image = { sender: 2, kind: "image", body: "", attachment: { ...file, name: "a.png" } };
  assert.equal(preview(entry("private", image), 1, names), "[Image]");
  assert.equal(preview(entry("private", { ...image, body: "the  view\nat dusk" }), 1, names),
    "[Image] the view at dusk");
  assert.equal(preview(entry("private", { sender: 2, kind: "file", body: "", attachment: file }), 1, names),
    "[File] report.pdf");
  assert.equal(preview(entry("private", { sender: 2, kind: "voice", body: "", attachment: file }), 1, names),
    "[Voice]");
  assert.equal(preview(entry("group", image), 1, names), "Bob: [Image]");
  assert.equal(preview(entry("group", { ...image, sender: 1 }), 1, names), "You: [Image]");
  // Recalled: no attachment, no body.
  assert.equal(preview(entry("private", { sender: 2, kind: "image", body: null, attachment: null,
    recalled: true }), 1, names), "[Recalled]");
  // Text stays text.
  assert.equal(preview(entry("private", { sender: 2, kind: "text", body: "hi" }), 1, names), "hi");
});

test("a label needs no attachment for its kind, and a file without one reads [File]", () => {
  assert.equal(attachmentLabel({ kind: "file", attachment: null }, ""), "[File]");
  assert.equal(attachmentLabel({ kind: "text" }, "hello "), "hello ");
  assert.equal(attachmentLabel({}, "plain"), "plain");
});

test("sizes read as B, KB, MB", () => {
  assert.equal(fileSize(0), "0 B");
  assert.equal(fileSize(1023), "1023 B");
  assert.equal(fileSize(1536), "1.5 KB");
  assert.equal(fileSize(12 * 1024 + 300), "12 KB");
  assert.equal(fileSize(3.4 * 1024 * 1024), "3.4 MB");
  assert.equal(fileSize(25 * 1024 * 1024), "25 MB");
  assert.equal(fileSize(null), "");
  assert.equal(fileSize(-1), "");
});

test("durations read as m:ss or h:mm:ss", () => {
  assert.equal(durationText(7000), "0:07");
  assert.equal(durationText(65_400), "1:05");
  assert.equal(durationText(3_723_000), "1:02:03");
  assert.equal(durationText(null), "");
  assert.equal(durationText(undefined), "");
});

test("an image's box keeps its ratio, scales down to the max, never up", () => {
  assert.deepEqual(fitBox(640, 480, 240), { width: 240, height: 180 });
  assert.deepEqual(fitBox(480, 640, 240), { width: 180, height: 240 });
  assert.deepEqual(fitBox(100, 50, 240), { width: 100, height: 50 });
  assert.deepEqual(fitBox(10000, 10, 240), { width: 240, height: 1 });
  assert.deepEqual(fitBox(null, null, 240, 160), { width: 160, height: 160 });
  assert.deepEqual(fitBox(0, 100, 240, 160), { width: 160, height: 160 });
});

test("a file's type picks the kind it is sent as", () => {
  assert.equal(fileKindFor("image/png"), "image");
  assert.equal(fileKindFor("image/JPEG"), "image");
  assert.equal(fileKindFor("image/svg+xml"), "file"); // not an image the server thumbnails
  assert.equal(fileKindFor("audio/ogg"), "voice");
  assert.equal(fileKindFor("application/pdf"), "file");
  assert.equal(fileKindFor(""), "file");
  assert.equal(fileKindFor(undefined), "file");
});

test("upload failures read as quiet sentences", () => {
  assert.match(uploadProblem(413, "too_large", "a file may have at most 26214400 bytes"), /too large/);
  assert.match(uploadProblem(422, "bad_request", "the file is empty"), /cannot be sent: the file is empty/);
  assert.match(uploadProblem(0, "network"), /cannot be reached/);
  assert.match(uploadProblem(429, "rate_limited"), /Too many uploads/);
});

// Unit tests of the voice recorder's decisions (tidings/web/recorder.js) and the
// upload's path (tidings/web/upload.js): node --test tests/web/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  clockText, microphoneProblem, recordingName, recordingType, recordingUnavailable, statedDuration,
} from "../../tidings/web/recorder.js";
import { uploadPath } from "../../tidings/web/upload.js";

test("Ogg Opus is preferred, WebM Opus next, nothing else", () => {
  assert.equal(recordingType(() => true), "audio/ogg;codecs=opus");
  assert.equal(recordingType((type) => type.startsWith("audio/webm")), "audio/webm;codecs=opus");
  // Safari records MP4 only; a browser that offers Ogg or WebM too records those.
  assert.equal(recordingType((type) => type === "audio/mp4"), "audio/mp4");
  assert.equal(recordingType((type) => type !== "audio/ogg;codecs=opus"), "audio/webm;codecs=opus");
  assert.equal(recordingType(() => false), null);
  // A recorder that throws on a type it does not know is asked the next one.
  assert.equal(recordingType((type) => {
    if (type.includes("ogg")) throw new Error("unknown");
    return true;
  }), "audio/webm;codecs=opus");
});

test("a page that cannot record says why", () => {
  const recorder = { isTypeSupported: (/** @type {string} */ t) => t.includes("webm") };
  const devices = { getUserMedia: () => Promise.resolve() };
  assert.equal(recordingUnavailable({ mediaDevices: devices, MediaRecorder: recorder }), null);
  assert.match(String(recordingUnavailable({ MediaRecorder: recorder })), /no microphone.*https/);
  assert.match(String(recordingUnavailable({ mediaDevices: {}, MediaRecorder: recorder })), /no microphone/);
  assert.equal(recordingUnavailable({ mediaDevices: devices }), "This browser cannot record audio.");
  assert.equal(recordingUnavailable({ mediaDevices: devices, MediaRecorder: { isTypeSupported: () => false } }),
    "This browser cannot record Opus audio.");
});

test("a refused microphone reads as what to do about it", () => {
  const named = (/** @type {string} */ name) => Object.assign(new Error("x"), { name });
  assert.match(microphoneProblem(named("NotAllowedError")), /blocked: allow it/);
  assert.match(microphoneProblem(named("SecurityError")), /blocked/);
  assert.equal(microphoneProblem(named("NotFoundError")), "No microphone was found.");
  assert.match(microphoneProblem(named("NotReadableError")), /in use/);
  assert.equal(microphoneProblem("odd"), "The microphone could not be started.");
  assert.equal(microphoneProblem(null), "The microphone could not be started.");
});

test("the clock counts whole seconds as m:ss, then h:mm:ss", () => {
  assert.equal(clockText(0), "0:00");
  assert.equal(clockText(999), "0:00");
  assert.equal(clockText(1000), "0:01");
  assert.equal(clockText(59_999), "0:59");
  assert.equal(clockText(61_000), "1:01");
  assert.equal(clockText(3_600_000), "1:00:00");
  assert.equal(clockText(3_725_000), "1:02:05");
  assert.equal(clockText(-5), "0:00");
  assert.equal(clockText(Number.NaN), "0:00");
});

test("a note is named by when it was recorded, with its container's extension", () => {
  const when = new Date(2026, 11, 4, 9, 5, 7);
  assert.equal(recordingName("audio/webm;codecs=opus", when), "voice-2026-12-04-090507.webm");
  assert.equal(recordingName("audio/ogg;codecs=opus", when), "voice-2026-12-04-090507.ogg");
  assert.equal(recordingName("audio/mp4", when), "voice-2026-12-04-090507.m4a");
  assert.equal(recordingName("", when), "voice-2026-12-04-090507.webm");
});

test("the stated length is whole milliseconds within the server's bounds", () => {
  assert.equal(statedDuration(1530.4), 1530);
  assert.equal(statedDuration(1), 1);
  assert.equal(statedDuration(0.4), null);
  assert.equal(statedDuration(0), null);
  assert.equal(statedDuration(Number.NaN), null);
  assert.equal(statedDuration(5_000_000), 3_600_000);
});

test("the upload's path carries the name, and the length when there is one", () => {
  assert.equal(uploadPath("a b&c.png", null), "/api/v1/files?name=a%20b%26c.png");
  assert.equal(uploadPath("voice.webm", 1530), "/api/v1/files?name=voice.webm&duration_ms=1530");
  assert.equal(uploadPath("x", 0), "/api/v1/files?name=x");
  assert.equal(uploadPath("x", 12.6, "/api/v2"), "/api/v2/files?name=x&duration_ms=13");
});

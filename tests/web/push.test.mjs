// Unit tests of push-rules.js (Web Push's parts with no browser) and badge.js's title.
import assert from "node:assert/strict";
import { test } from "node:test";

import { titleFor } from "../../tidings/web/badge.js";
import {
  keyBytes, notificationFor, openTarget, openUrl, parseRoute, pickWindow, pushErrorText, pushState,
  pushStateText, readPayload, routeHash, shouldShow, windowsInFront,
} from "../../tidings/web/push-rules.js";

const SCOPE = "https://chat.example/";
const payload = { conversation: "p:1-2", seq: 7, title: "Bob", body: "hi there", total_unread: 3 };
/** @param {string} url @param {boolean} focused @param {string} [visibilityState] */
const win = (url, focused, visibilityState = focused ? "visible" : "hidden") => ({ url, focused, visibilityState });

test("a route is a chat, or a chat at a message; anything else is none", () => {
  assert.deepEqual(parseRoute("#/p:1-2"), { id: "p:1-2", seq: null });
  assert.deepEqual(parseRoute("#/g:5/12"), { id: "g:5", seq: 12 });
  for (const hash of ["", "#", "#/", "#/x:1", "#/p:1-2/0", "#/p:1-2/-3", "#/p:1-2/", "#/p:1-2/3/4", "#c=p:1-2"]) {
    assert.equal(parseRoute(hash), null, hash);
  }
  assert.equal(routeHash("p:1-2", null), "#/p:1-2");
  assert.equal(routeHash("g:5", 12), "#/g:5/12");
  assert.deepEqual(parseRoute(routeHash("g:5", 12)), { id: "g:5", seq: 12 });
});

test("a push's body is read as the server sends it, and nothing else", () => {
  assert.deepEqual(readPayload(payload), payload);
  assert.deepEqual(readPayload({ ...payload, total_unread: undefined }), { ...payload, total_unread: 0 });
  assert.equal(readPayload({ ...payload, title: "" })?.title, "tidings");
  for (const bad of [null, "text", [], { ...payload, conversation: "../x" }, { ...payload, seq: 0 },
    { ...payload, seq: "7" }, { ...payload, body: null }, { ...payload, title: 3 }]) {
    assert.equal(readPayload(bad), null, JSON.stringify(bad));
  }
});

test("one notification per conversation: a newer message replaces it and alerts again", () => {
  assert.deepEqual(notificationFor(payload, null), {
    title: "Bob",
    options: { body: "hi there", tag: "p:1-2", renotify: false, data: { conversation: "p:1-2", seq: 7 } },
  });
  assert.equal(notificationFor(payload, 5)?.options.renotify, true);
  assert.equal(notificationFor(payload, 7), null); // the same push twice
  assert.equal(notificationFor(payload, 9), null); // a late push of an older message
});

test("no notification when a window in front shows that conversation", () => {
  const front = win(SCOPE, true);
  const background = win(SCOPE, false);
  const hidden = win(SCOPE, true, "hidden");
  const file = win(`${SCOPE}files/x`, true);
  assert.deepEqual(windowsInFront([background, front, hidden, file], SCOPE), [front]);
  assert.deepEqual(windowsInFront([], SCOPE), []);
  assert.equal(shouldShow(payload, []), true);
  assert.equal(shouldShow(payload, ["p:1-2"]), false);
  assert.equal(shouldShow(payload, [null, "p:1-2"]), false);
  assert.equal(shouldShow(payload, ["p:1-3"]), true); // another chat
  assert.equal(shouldShow(payload, [null]), true); // the list only, or no answer
});

test("a click goes to the app's window in front, else a visible one, else any, else a new one", () => {
  const file = win(`${SCOPE}files/abc`, true);
  const hidden = win(`${SCOPE}#/g:4`, false);
  const visible = win(SCOPE, false, "visible");
  const front = win(`${SCOPE}#/p:1-3`, true);
  assert.equal(pickWindow([file, hidden, visible, front], SCOPE), 3);
  assert.equal(pickWindow([file, hidden, visible], SCOPE), 2);
  assert.equal(pickWindow([file, hidden], SCOPE), 1);
  assert.equal(pickWindow([file], SCOPE), -1);
  assert.equal(pickWindow([], SCOPE), -1);
  assert.equal(openUrl(SCOPE, "p:1-2", 7), "https://chat.example/#/p:1-2/7");
  assert.deepEqual(openTarget({ conversation: "p:1-2", seq: 7 }), { id: "p:1-2", seq: 7 });
  assert.equal(openTarget({ conversation: "p:1-2" }), null);
  assert.equal(openTarget(null), null);
});

test("the server's key becomes the 65 bytes subscribe takes", () => {
  const key = "BF8FgoEL__VFhWgqruFQDKvPM6hTml4h0cMNet9aK9-ZF8vG3QLPaSzIthU1t5r-LE6UtVB2a60JZEc1RU_-XFs";
  const bytes = keyBytes(key);
  assert.equal(bytes.length, 65);
  assert.equal(bytes[0], 4); // an uncompressed point
  assert.equal(Buffer.from(bytes).toString("base64url"), key);
});

test("the profile says what this browser can do and how to undo a block", () => {
  assert.equal(pushState({ supported: false, permission: "granted", subscribed: true }), "unsupported");
  assert.equal(pushState({ supported: true, permission: "denied", subscribed: true }), "denied");
  assert.equal(pushState({ supported: true, permission: "granted", subscribed: true }), "on");
  assert.equal(pushState({ supported: true, permission: "default", subscribed: true }), "off");
  assert.equal(pushState({ supported: true, permission: "granted", subscribed: false }), "off");
  assert.equal(pushStateText("unsupported").button, null);
  assert.equal(pushStateText("denied").button, null);
  assert.match(pushStateText("denied").text, /settings.*Allow/);
  assert.equal(pushStateText("off").button, "Turn on");
  assert.equal(pushStateText("on").button, "Turn off");
  assert.match(pushErrorText({ status: 422, code: "bad_request" }), /does not accept/);
  assert.match(pushErrorText({ status: 0, code: "network" }), /cannot be reached/);
  assert.match(pushErrorText({ name: "NotAllowedError" }), /not allowed/);
  assert.match(pushErrorText({ name: "AbortError" }), /not available/);
});

test("the title counts the unread, and says only the name with none", () => {
  assert.equal(titleFor(0), "tidings");
  assert.equal(titleFor(3), "(3) tidings");
  assert.equal(titleFor(120), "(120) tidings");
});

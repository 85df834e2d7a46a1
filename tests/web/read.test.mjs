// Unit tests of store.js's read rules: only what was on screen is read.
import assert from "node:assert/strict";
import { test } from "node:test";

import { addToHistory, newHistory, readUpTo, unreadAfter } from "../../tidings/web/store.js";

function message(seq, sender = 2) {
  return { id: `p:1-2#${seq}`, conversation: "p:1-2", seq, sender, body: `m${seq}`,
    client_msg_id: null, sent_at: "2026-12-02T10:00:00.000Z", time_separator: false };
}

test("a read goes up to the highest seq on screen, only in a visible tab", () => {
  assert.equal(readUpTo([3, 5, 4], 2, true), 5);
  assert.equal(readUpTo([3, 5, 4], 2, false), 0);
  assert.equal(readUpTo([1, 2], 2, true), 0);
  assert.equal(readUpTo([], 0, true), 0);
  assert.equal(readUpTo(new Set([7]), 6, true), 7);
});

test("what is left unread counts others' messages after the read position", () => {
  const history = newHistory();
  history.loaded = true;
  addToHistory(history, [message(1), message(2, 1), message(3), message(4)], true);
  assert.equal(unreadAfter(history, 1, 4, 1), 2); // 3 and 4; 2 is mine
  assert.equal(unreadAfter(history, 4, 4, 1), 0);
  assert.equal(unreadAfter(history, 3, 6, 1), 3); // 4, and 5-6 not loaded yet
  assert.equal(unreadAfter(undefined, 3, 6, 1), 3);
});

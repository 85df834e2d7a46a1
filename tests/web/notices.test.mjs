// Unit tests of format.js's background notices.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_NOTICES, noticeFor, noticeText } from "../../tidings/web/format.js";

test("sound and notification are off by default, and only for others' messages in a hidden tab", () => {
  assert.deepEqual(DEFAULT_NOTICES, { sound: false, notify: false });
  const on = { sound: true, notify: true };
  assert.deepEqual(noticeFor(DEFAULT_NOTICES, { hidden: true, own: false }), { sound: false, notify: false });
  assert.deepEqual(noticeFor(on, { hidden: true, own: false }), { sound: true, notify: true });
  assert.deepEqual(noticeFor(on, { hidden: false, own: false }), { sound: false, notify: false });
  assert.deepEqual(noticeFor(on, { hidden: true, own: true }), { sound: false, notify: false });
  assert.deepEqual(noticeFor(on, { hidden: true, own: false, removed: true }),
    { sound: false, notify: false });
  assert.deepEqual(noticeFor({ sound: true, notify: false }, { hidden: true, own: false }),
    { sound: true, notify: false });
});

test("a notification names the group's sender and shortens only itself", () => {
  assert.deepEqual(noticeText("Tea", "group", "Bob", "hi\n there"), { title: "Tea", body: "Bob: hi there" });
  assert.deepEqual(noticeText("Bob", "private", "Bob", "hi"), { title: "Bob", body: "hi" });
  const long = noticeText("Bob", "private", "Bob", "x".repeat(200)).body;
  assert.equal([...long].length, 140);
  assert.ok(long.endsWith("…"));
});

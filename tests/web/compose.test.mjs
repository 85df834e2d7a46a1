// Unit tests of the composer's pure rules (format.js): the length check.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_BODY_CHARS, bodyLength, composerCheck } from "../../tidings/web/format.js";

test("a body is counted in code points, as the server counts it", () => {
  assert.equal(bodyLength("abc"), 3);
  assert.equal(bodyLength("😀😀"), 2);
  assert.equal(bodyLength(""), 0);
});

test("the count shows near the limit and a longer text is refused, never cut", () => {
  assert.equal(MAX_BODY_CHARS, 4000);
  assert.deepEqual(composerCheck("hi"), { length: 2, count: null, over: false, sendable: true });
  assert.equal(composerCheck("x".repeat(3599)).count, null);
  assert.equal(composerCheck("x".repeat(3600)).count, "3600 / 4000");
  const atLimit = composerCheck("x".repeat(4000));
  assert.equal(atLimit.sendable, true);
  const over = composerCheck("x".repeat(5000));
  assert.deepEqual(over, { length: 5000, count: "5000 / 4000", over: true, sendable: false });
  assert.equal(composerCheck("😀".repeat(4000)).sendable, true); // 8000 UTF-16 units
  assert.equal(composerCheck("   ").sendable, false);
  assert.equal(composerCheck("x".repeat(11), 10).over, true);
});

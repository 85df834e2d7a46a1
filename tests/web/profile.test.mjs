// Unit tests of api.js's profile calls and their checks.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  changePassword, displayNameProblem, newPasswordProblem, updateMe,
} from "../../tidings/web/api.js";

test("a display name is 1 to 64 characters once trimmed", () => {
  assert.equal(displayNameProblem("  Ann  "), null);
  assert.equal(displayNameProblem("   "), "A display name is 1 to 64 characters.");
  assert.equal(displayNameProblem("x".repeat(64)), null);
  assert.equal(displayNameProblem("x".repeat(65)), "A display name is 1 to 64 characters.");
});

test("a new password is 8 to 256 characters, typed twice alike", () => {
  assert.equal(newPasswordProblem("long enough", "long enough"), null);
  assert.equal(newPasswordProblem("short", "short"), "Choose a password of 8 to 256 characters.");
  assert.equal(newPasswordProblem("x".repeat(257), "x".repeat(257)),
    "Choose a password of 8 to 256 characters.");
  assert.equal(newPasswordProblem("long enough", "long enougH"), "The two new passwords differ.");
});

test("the profile calls follow the contract", async () => {
  const calls = [];
  const api = async (method, path, body) => {
    calls.push([method, path, body]);
    return path === "/me" ? { id: 1, username: "ann", display_name: body.display_name } : null;
  };
  assert.deepEqual(await updateMe(api, "  Ann B "), { id: 1, username: "ann", display_name: "Ann B" });
  assert.equal(await changePassword(api, "old password", "new password"), null);
  assert.deepEqual(calls, [
    ["PATCH", "/me", { display_name: "Ann B" }],
    ["POST", "/me/password", { current: "old password", new: "new password" }],
  ]);
});

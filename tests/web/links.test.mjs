// Unit tests of format.js's links and sign-up sentences.
import assert from "node:assert/strict";
import { test } from "node:test";

import { fieldMessage, linkParts } from "../../tidings/web/format.js";

test("only http and https addresses become links, without trailing punctuation", () => {
  assert.deepEqual(linkParts("see https://example.com/a?b=1. ok"), [
    { text: "see " }, { text: "https://example.com/a?b=1", href: "https://example.com/a?b=1" },
    { text: ". ok" },
  ]);
  assert.deepEqual(linkParts("javascript:alert(1) data:text/html,x ftp://h/x"),
    [{ text: "javascript:alert(1) data:text/html,x ftp://h/x" }]);
  assert.deepEqual(linkParts("<b>http://h.test</b>"), [
    { text: "<b>" }, { text: "http://h.test", href: "http://h.test/" }, { text: "</b>" },
  ]);
  assert.deepEqual(linkParts("(https://en.wikipedia.org/wiki/Tea_(drink))"), [
    { text: "(" },
    { text: "https://en.wikipedia.org/wiki/Tea_(drink)", href: "https://en.wikipedia.org/wiki/Tea_(drink)" },
    { text: ")" },
  ]);
  assert.deepEqual(linkParts("HTTPS://X.TEST, then"), [
    { text: "HTTPS://X.TEST", href: "https://x.test/" }, { text: ", then" },
  ]);
  assert.deepEqual(linkParts(""), [{ text: "" }]);
  assert.deepEqual(linkParts("https://"), [{ text: "https://" }]);
});

test("the API's field errors read as sentences", () => {
  assert.equal(fieldMessage("username: 3 to 32 characters of A-Z a-z 0-9 _ . -"),
    "Choose a username of 3 to 32 characters, using only letters, digits, dots, dashes and underscores.");
  assert.equal(fieldMessage("password: 8 to 256 characters"), "Choose a password of 8 to 256 characters.");
  assert.equal(fieldMessage("display_name: 1 to 64 characters"), "A display name is 1 to 64 characters.");
  assert.equal(fieldMessage("The server cannot be reached."), "The server cannot be reached.");
});

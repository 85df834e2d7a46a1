// Unit tests of tidings/web/format.js: node --test tests/web/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  daysAgo, hash, initials, lineTime, listTime, preview, privateId, randomId,
} from "../../tidings/web/format.js";

const now = new Date(2026, 11, 2, 18, 30); // a Wednesday, local time

test("the chat list shows today's time, Yesterday, a weekday, then the date", () => {
  assert.equal(listTime(new Date(2026, 11, 2, 9, 5).toISOString(), now), "09:05");
  assert.equal(listTime(new Date(2026, 11, 1, 23, 59).toISOString(), now), "Yesterday");
  assert.equal(listTime(new Date(2026, 10, 27, 8, 0).toISOString(), now), "Friday");
  assert.equal(listTime(new Date(2026, 10, 20, 8, 0).toISOString(), now), "2026-11-20");
  assert.equal(listTime(null, now), "");
});

test("a time line adds the time of day after the day", () => {
  assert.equal(lineTime(new Date(2026, 11, 1, 7, 3).toISOString(), now), "Yesterday 07:03");
  assert.equal(lineTime(new Date(2026, 10, 28, 12, 0).toISOString(), now), "Saturday 12:00");
  assert.equal(lineTime(new Date(2025, 0, 2, 1, 2).toISOString(), now), "2025-01-02 01:02");
});

test("days are counted in local calendar days, not 24-hour spans", () => {
  assert.equal(daysAgo(new Date(2026, 11, 1, 23, 59), new Date(2026, 11, 2, 0, 1)), 1);
  assert.equal(daysAgo(new Date(2026, 11, 2, 0, 0), now), 0);
});

test("initials take the first letters of two words, or one of one word", () => {
  assert.equal(initials("Alice Liddell"), "AL");
  assert.equal(initials("bob"), "B");
  assert.equal(initials("  "), "?");
  assert.equal(initials(null), "?");
  assert.equal(initials("张 伟"), "张伟");
});

test("a private conversation's id names the smaller user first", () => {
  assert.equal(privateId(17, 3), "p:3-17");
  assert.equal(privateId(3, 17), "p:3-17");
});

test("hash is stable and random ids are 32 hex digits, different each time", () => {
  assert.equal(hash("u17"), hash("u17"));
  assert.notEqual(hash("u17"), hash("u18"));
  const a = randomId();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, randomId());
});

test("a preview names a group message's sender, and 'You' for one's own", () => {
  const message = { id: "g:1#2", conversation: "g:1", seq: 2, sender: 5, body: "hi\n  there",
    client_msg_id: null, sent_at: "", time_separator: false };
  const entry = { id: "g:1", type: "group", title: "Team", peer_id: null, group_id: 1, unread: 0,
    last_seq: 2, read_seq: 2, last_message: message, updated_at: "" };
  const names = (/** @type {number} */ id) => `User ${id}`;
  assert.equal(preview(entry, 9, names), "User 5: hi there");
  assert.equal(preview(entry, 5, names), "You: hi there");
  assert.equal(preview({ ...entry, last_message: null, last_seq: 0 }, 9, names), "No messages yet");
  // Added after messages were sent: none of them is for this member.
  assert.equal(preview({ ...entry, last_message: null }, 9, names),
    "You joined: new messages show here");
  assert.equal(preview({ ...entry, type: "private", last_message: null }, 9, names), "Say hello");
});

test("a count takes the singular for one only", async () => {
  const { plural } = await import("../../tidings/web/format.js");
  assert.equal(plural(1, "member"), "1 member");
  assert.equal(plural(2, "member"), "2 members");
  assert.equal(plural(0, "member"), "0 members");
  assert.equal(plural(3, "new message"), "3 new messages");
  assert.equal(plural(2, "person", "people"), "2 people");
});

test("the chat filter matches every word, ignoring case and accents", async () => {
  const { filterMatches } = await import("../../tidings/web/format.js");
  assert.equal(filterMatches(["Carol Jones", "carol"], ""), true);
  assert.equal(filterMatches(["Carol Jones", "carol"], "car"), true);
  assert.equal(filterMatches(["Carol Jones", "carol"], "JONES car"), true);
  assert.equal(filterMatches(["Carol Jones", "carol"], "bob"), false);
  assert.equal(filterMatches(["Zoë", ""], "zoe"), true);
  assert.equal(filterMatches(["Weekend hike", ""], "hike  "), true);
});

test("who is typing, for the header", async () => {
  const { typingText } = await import("../../tidings/web/format.js");
  assert.equal(typingText([]), "");
  assert.equal(typingText(["Alice"]), "Alice is typing…");
  assert.equal(typingText(["Alice", "Bob"]), "Alice and Bob are typing…");
  assert.equal(typingText(["Alice", "Bob", "Carol"]), "3 people are typing…");
});

test("who read one's own group message, in a few words", async () => {
  const { readByText } = await import("../../tidings/web/format.js");
  assert.equal(readByText({ read: 2, unread: 3 }), "2 read · 3 unread");
  assert.equal(readByText({ read: 4, unread: 0 }), "All read");
  assert.equal(readByText({ read: 0, unread: 4 }), "Unread");
  assert.equal(readByText({ read: 0, unread: 0 }), "");
});

test("when something ends: today's time, tomorrow, a weekday, then the date", async () => {
  const { untilTime } = await import("../../tidings/web/format.js");
  assert.equal(untilTime(new Date(2026, 11, 2, 18, 40), now), "18:40");
  assert.equal(untilTime(new Date(2026, 11, 3, 18, 30), now), "tomorrow 18:30");
  assert.equal(untilTime(new Date(2026, 11, 5, 9, 0), now), "Saturday 09:00");
  assert.equal(untilTime(new Date(2026, 11, 31, 9, 0), now), "2026-12-31 09:00");
});

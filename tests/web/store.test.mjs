// Unit tests of tidings/web/store.js, the pure state updates.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addToHistory, applyMessage, applyOwnRead, goneEntries, mergeEntry, newHistory, sortEntries,
} from "../../tidings/web/store.js";

const ME = 1;

function message(seq, sender = 2, conversation = "p:1-2") {
  return { id: `${conversation}#${seq}`, conversation, seq, sender, body: `m${seq}`,
    client_msg_id: null, sent_at: `2026-12-02T10:00:${String(seq).padStart(2, "0")}.000Z`,
    time_separator: false };
}

function entry(fields = {}) {
  return { id: "p:1-2", type: "private", title: "Bob", peer_id: 2, group_id: null, unread: 0,
    last_seq: 0, read_seq: 0, last_message: null, updated_at: "2026-12-02T09:00:00.000Z",
    local: false, clock: 0, ...fields };
}

test("the list is newest first, ties by id", () => {
  const sorted = sortEntries([
    entry({ id: "p:1-3", updated_at: "2026-12-02T09:00:00.000Z" }),
    entry({ id: "g:7", updated_at: "2026-12-02T11:00:00.000Z" }),
    entry({ id: "p:1-2", updated_at: "2026-12-02T09:00:00.000Z" }),
  ]);
  assert.deepEqual(sorted.map((e) => e.id), ["g:7", "p:1-2", "p:1-3"]);
});

test("a list fetched before a live event cannot move its positions back", () => {
  const live = entry({ last_seq: 5, read_seq: 5, unread: 0, last_message: message(5, ME),
    updated_at: "2026-12-02T10:00:05.000Z", clock: 3 });
  const older = entry({ last_seq: 4, read_seq: 2, unread: 2 });
  const merged = mergeEntry(live, older, false, 0);
  assert.equal(merged.last_seq, 5);
  assert.equal(merged.read_seq, 5);
  assert.equal(merged.unread, 0);
  assert.equal(merged.clock, 3, "a fetched list keeps the live clock");
  assert.equal(mergeEntry(live, older, true, 9).clock, 9);
});

test("a local entry (no message yet) takes the server's as it is", () => {
  const local = entry({ local: true, last_seq: 0 });
  assert.equal(mergeEntry(local, entry({ last_seq: 1, unread: 1 }), true, 1).unread, 1);
});

test("a message from the peer adds one unread; one's own marks everything read", () => {
  const e = entry({ last_seq: 3, read_seq: 1, unread: 2 });
  assert.equal(applyMessage(e, message(4), ME, 1), true);
  assert.deepEqual([e.last_seq, e.unread], [4, 3]);
  assert.equal(applyMessage(e, message(4), ME, 2), false, "the same seq twice counts once");
  assert.equal(applyMessage(e, message(5, ME), ME, 3), true);
  assert.deepEqual([e.read_seq, e.unread, e.clock], [5, 0, 3]);
});

test("an own read from another device: exact when caught up, else ask for the count", () => {
  const e = entry({ last_seq: 10, read_seq: 2, unread: 8 });
  assert.equal(applyOwnRead(e, 2), "ignored");
  assert.equal(applyOwnRead(e, 6), "refetch");
  assert.equal(e.read_seq, 6);
  assert.equal(applyOwnRead(e, 10), "exact");
  assert.equal(e.unread, 0);
});

test("history dedupes by seq and reports a gap until it is filled", () => {
  const h = newHistory();
  h.loaded = true;
  assert.equal(addToHistory(h, [message(1), message(2)], true), false);
  assert.equal(h.maxSeq, 2);
  assert.equal(addToHistory(h, [message(5)], false), true, "3 and 4 are missing");
  assert.equal(h.maxSeq, 2);
  assert.equal(addToHistory(h, [message(3), message(4), message(2)], false), false);
  assert.equal(h.maxSeq, 5);
  assert.equal(h.msgs.size, 5);
});

test("entries gone from a fresh list are dropped, unless local or touched since", () => {
  const entries = new Map([
    ["p:1-2", entry({ id: "p:1-2" })],
    ["p:1-3", entry({ id: "p:1-3", local: true })],
    ["g:4", entry({ id: "g:4", clock: 7 })],
    ["g:5", entry({ id: "g:5", clock: 2 })],
  ]);
  assert.deepEqual(goneEntries(entries, new Set(["p:1-2"]), 5), ["g:5"]);
});

test("a draft is kept per conversation, and a blank one is dropped", async () => {
  const { withDraft } = await import("../../tidings/web/store.js");
  const first = withDraft({}, "p:1-2", "half a thought");
  assert.deepEqual(first, { "p:1-2": "half a thought" });
  const second = withDraft(first, "g:7", "for the group");
  assert.deepEqual(second, { "p:1-2": "half a thought", "g:7": "for the group" });
  assert.deepEqual(first, { "p:1-2": "half a thought" }); // not changed in place
  assert.deepEqual(withDraft(second, "p:1-2", "  \n"), { "g:7": "for the group" });
  assert.deepEqual(withDraft(second, "g:7", ""), { "p:1-2": "half a thought" });
});

test("pinned entries come first; a draft's time counts (PROTOCOL-v2 §5)", async () => {
  const { entryTime } = await import("../../tidings/web/store.js");
  const draft = { body: "later", updated_at: "2026-12-02T12:00:00.000Z" };
  const sorted = sortEntries([
    entry({ id: "p:1-3", updated_at: "2026-12-02T10:00:00.000Z" }),
    entry({ id: "g:7", updated_at: "2026-12-02T11:00:00.000Z" }),
    entry({ id: "p:1-2", updated_at: "2026-12-02T09:00:00.000Z", pinned: true }),
    entry({ id: "p:1-4", updated_at: "2026-12-02T08:00:00.000Z", draft }),
    entry({ id: "g:9", updated_at: "2026-12-02T07:00:00.000Z", pinned: true, draft }),
  ]);
  assert.deepEqual(sorted.map((e) => e.id), ["g:9", "p:1-2", "p:1-4", "g:7", "p:1-3"]);
  assert.equal(entryTime(entry({ updated_at: "2026-12-02T13:00:00.000Z", draft })),
    "2026-12-02T13:00:00.000Z");
});

test("the total leaves muted entries out and counts a marked one as 1", async () => {
  const { totalUnread, badgeOf } = await import("../../tidings/web/store.js");
  const entries = [
    entry({ id: "a", unread: 3 }),
    entry({ id: "b", unread: 5, muted: true }),
    entry({ id: "c", unread: 0, marked_unread: true }),
    entry({ id: "d", unread: 2, marked_unread: true }),
    entry({ id: "e", unread: 0, marked_unread: true, muted: true }),
  ];
  assert.equal(totalUnread(entries), 6);
  assert.deepEqual(badgeOf(entries[1]), { text: "5", label: "5 unread, muted", muted: true });
  assert.deepEqual(badgeOf(entries[2]), { text: "", label: "marked unread", muted: false });
  assert.equal(badgeOf(entry({ unread: 0 })), null);
  assert.equal(badgeOf(entry({ unread: 120 }))?.text, "99+");
});

test("a message unhides an entry; one's own send clears the draft and the mark", () => {
  const e = entry({ last_seq: 1, read_seq: 1, hidden: true, marked_unread: true,
    draft: { body: "x", updated_at: "2026-12-02T09:00:00.000Z" } });
  applyMessage(e, { ...message(2), kind: "edit", target_seq: 1 }, ME, 1);
  assert.equal(e.hidden, true, "a notice does not bring it back");
  applyMessage(e, message(3), ME, 2);
  assert.equal(e.hidden, false);
  assert.equal(e.marked_unread, true, "a peer's message keeps the mark");
  assert.notEqual(e.draft, null, "a peer's message keeps the draft");
  applyMessage(e, message(4, ME), ME, 3);
  assert.deepEqual([e.draft, e.marked_unread], [null, false]);
});

test("an own read from another device clears the mark", () => {
  const e = entry({ last_seq: 4, read_seq: 2, unread: 2, marked_unread: true });
  assert.equal(applyOwnRead(e, 4), "exact");
  assert.equal(e.marked_unread, false);
});

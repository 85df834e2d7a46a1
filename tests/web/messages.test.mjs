// PROTOCOL-v2 §1, §2, §4 in the web client's pure modules: notices applied to the
// loaded copy, what is drawn, who may recall or edit, counts, the @ picker.
import assert from "node:assert/strict";
import test from "node:test";

import { sendFrame } from "../../tidings/web/frames.js";
import { preview } from "../../tidings/web/format.js";
import {
  applyNotice, canEdit, canRecall, drawn, mentionChoices, mentionQuery, mentionsIn, mentionsMe,
  quoteText, recallLine,
} from "../../tidings/web/messages.js";
import { addToHistory, applyMessage, newHistory, unreadAfter } from "../../tidings/web/store.js";

const at = (seconds) => new Date(Date.UTC(2026, 11, 3, 12, 0, seconds)).toISOString();
const msg = (seq, sender, body, extra = {}) => ({
  id: `g:1#${seq}`, conversation: "g:1", seq, sender, body, client_msg_id: null,
  sent_at: at(seq), time_separator: false, kind: "text", mentions: [], mention_all: false,
  target_seq: null, recalled: false, edited_at: null, ...extra,
});
const notice = (seq, sender, kind, target, body = "x") => msg(seq, sender, body, { kind, target_seq: target });

test("a recall blanks its target and an edit replaces the text, the newest edit winning", () => {
  const msgs = new Map([[1, msg(1, 2, "helo")], [2, msg(2, 2, "oops")]]);
  assert.equal(applyNotice(msgs, notice(4, 2, "edit", 1, "hello!")), 1);
  assert.equal(applyNotice(msgs, notice(3, 2, "edit", 1, "hello")), 0); // older: ignored
  assert.equal(msgs.get(1).body, "hello!");
  assert.equal(msgs.get(1).edited_at, at(4));
  assert.equal(applyNotice(msgs, notice(5, 1, "recall", 2)), 2);
  assert.deepEqual([msgs.get(2).recalled, msgs.get(2).body, msgs.get(2).recalled_by], [true, null, 1]);
  assert.equal(applyNotice(msgs, notice(6, 2, "edit", 2, "back")), 0); // recalled stays blank
  assert.equal(applyNotice(msgs, notice(7, 2, "recall", 99)), 0); // target not loaded
});

test("edit and recall notices are applied, not drawn; the rest in seq order", () => {
  const list = [msg(3, 1, "c"), notice(4, 1, "edit", 3), msg(1, 1, "a"), notice(5, 1, "recall", 1),
    msg(6, 1, "sys", { kind: "system" })];
  assert.deepEqual(drawn(list).map((m) => m.seq), [1, 3, 6]);
});

test("a history page applies its notices to targets loaded before or with them", () => {
  const history = newHistory();
  addToHistory(history, [msg(1, 2, "a"), msg(2, 2, "b")], true);
  addToHistory(history, [notice(3, 2, "recall", 2), notice(4, 2, "edit", 1, "A")], true);
  assert.equal(history.msgs.get(2).recalled, true);
  assert.equal(history.msgs.get(1).body, "A");
});

test("an older page's targets take the edits and recalls that came live before it", () => {
  // loadOlder: the newest page is loaded, a live edit and recall for older
  // messages arrive (their targets not loaded yet), then the older page comes.
  const history = newHistory();
  addToHistory(history, [msg(51, 2, "new")], true);
  addToHistory(history, [notice(52, 2, "edit", 10, "fixed"), notice(53, 2, "recall", 11)], true);
  addToHistory(history, [msg(10, 2, "typo"), msg(11, 2, "oops"), msg(12, 2, "fine")], false);
  assert.deepEqual([history.msgs.get(10).body, history.msgs.get(10).edited_at], ["fixed", at(52)]);
  assert.equal(history.msgs.get(11).recalled, true);
  assert.equal(history.msgs.get(12).body, "fine");
});

test("unread skips notices, recalled messages and one's own; mentions count apart", () => {
  const history = newHistory();
  addToHistory(history, [msg(1, 2, "a"), msg(2, 2, "b", { recalled: true, body: null }),
    notice(3, 2, "recall", 2), msg(4, 1, "mine"), msg(5, 3, "c")], true);
  history.loaded = true;
  assert.equal(unreadAfter(history, 0, 5, 1), 2);
  const entry = { id: "g:1", type: "group", unread: 0, mentioned: 0, last_seq: 5, read_seq: 5,
    last_message: msg(5, 3, "c"), updated_at: at(5), local: false, clock: 0 };
  applyMessage(entry, msg(6, 2, "@you", { mentions: [1] }), 1, 1);
  applyMessage(entry, notice(7, 2, "edit", 5, "c!"), 1, 2);
  applyMessage(entry, msg(8, 3, "@all", { mention_all: true }), 1, 3);
  assert.deepEqual([entry.unread, entry.mentioned, entry.last_seq, entry.last_message.seq],
    [2, 2, 8, 8]);
  applyMessage(entry, notice(9, 2, "edit", 8, "changed"), 1, 4);
  assert.deepEqual([entry.last_message.seq, entry.last_message.body, entry.updated_at],
    [8, "changed", at(8)]); // an edit does not move the chat
  // A group change's notice (PROTOCOL-v2 §6) moves the chat and counts for no one;
  // it reads up to it only for its actor, not for the owner it is sent as.
  const change = (seq, actor) => msg(seq, 1, "Bob was muted for 1 hour",
    { kind: "system", system: { event: "muted", actor, users: [2], name: null, text: null } });
  applyMessage(entry, change(10, null), 1, 5);
  assert.deepEqual([entry.unread, entry.mentioned, entry.read_seq, entry.last_message.seq],
    [2, 2, 5, 10]);
  applyMessage(entry, change(11, 3), 1, 6);
  assert.deepEqual([entry.unread, entry.read_seq], [2, 5]);
  applyMessage(entry, change(12, 1), 1, 7);
  assert.deepEqual([entry.unread, entry.mentioned, entry.read_seq], [0, 0, 12]);
  applyMessage(entry, msg(13, 1, "mine"), 1, 8);
  assert.deepEqual([entry.unread, entry.mentioned], [0, 0]);
});

test("who may recall and edit, and when", () => {
  const now = Date.parse(at(0)) + 60_000;
  const mine = msg(0, 1, "x");
  assert.equal(canRecall(mine, 1, false, now, 120), true);
  assert.equal(canRecall(mine, 1, false, now, 30), false); // past the window
  assert.equal(canRecall(msg(0, 2, "x"), 1, false, now, 120), false); // not mine
  assert.equal(canRecall(msg(0, 2, "x"), 1, true, now, 1), true); // the group's owner or admin, any time
  assert.equal(canRecall(notice(0, 1, "recall", 1), 1, true, now, 120), false);
  assert.equal(canEdit(mine, 1, now, 86400), true);
  assert.equal(canEdit(mine, 1, now, 0), false); // edits off
  assert.equal(canEdit(msg(0, 2, "x"), 1, now, 86400), false);
  assert.equal(canEdit({ ...mine, recalled: true }, 1, now, 86400), false);
});

test("recall lines, quotes and chat-list previews read as WeChat's", () => {
  const names = (id) => ({ 1: "Ann", 2: "Bob" })[id];
  assert.equal(recallLine(msg(1, 1, null, { recalled: true }), 1, names), "You recalled a message");
  assert.equal(recallLine(msg(1, 2, null, { recalled: true, recalled_by: 2 }), 1, names),
    "Bob recalled a message");
  assert.equal(quoteText(msg(1, 2, "x".repeat(150))), "x".repeat(100));
  assert.equal(quoteText(msg(1, 2, null, { recalled: true })), null);
  assert.equal(quoteText(msg(1, 2, "", { kind: "file", attachment: { name: "a.pdf" } })), "[File] a.pdf");
  assert.equal(quoteText(msg(1, 2, "cap", { kind: "image" })), "[Image]");
  const entry = { type: "group", last_seq: 3, last_message: notice(3, 2, "recall", 1, "Bob recalled a message") };
  assert.equal(preview(entry, 1, names), "Bob recalled a message");
  assert.equal(preview({ ...entry, last_message: notice(3, 1, "recall", 1) }, 1, names),
    "You recalled a message");
});

test("the @ picker: the word at the caret, members by name, All for the owner", () => {
  assert.deepEqual(mentionQuery("hi @bo", 6), { start: 3, query: "bo" });
  assert.equal(mentionQuery("mail a@b", 8), null); // not a word start
  assert.equal(mentionQuery("hi @bob there", 13), null);
  const names = (id) => ({ 1: "Ann", 2: "Bob Stone", 3: "Carol" })[id];
  assert.deepEqual(mentionChoices([1, 2, 3], "st", names, 1, false), [{ id: 2, name: "Bob Stone" }]);
  assert.deepEqual(mentionChoices([1, 2, 3], "", names, 1, true).map((c) => c.id), [0, 2, 3]);
  assert.deepEqual(mentionChoices([1, 2, 3], "", names, 2, false).map((c) => c.id), [1, 3]);
  const picked = new Map([[2, "Bob Stone"], [3, "Carol"], [0, "All"]]);
  assert.deepEqual(mentionsIn("@Bob Stone and @All", picked), { mentions: [2], mention_all: true });
  assert.equal(mentionsMe(msg(1, 2, "x", { mentions: [1] }), 1), true);
  assert.equal(mentionsMe(msg(1, 1, "x", { mention_all: true }), 1), false); // one's own
});

test("a send frame carries a quote and mentions only when there are any", () => {
  const plain = sendFrame({ cmid: "c1", conversation: "g:1", body: "hi" });
  assert.deepEqual(Object.keys(plain).sort(), ["body", "client_msg_id", "conversation", "ref", "type"]);
  const rich = sendFrame({ cmid: "c2", conversation: "g:1", body: "hi", reply_to: 3,
    mentions: [2], mention_all: true });
  assert.deepEqual([rich.reply_to, rich.mentions, rich.mention_all], [3, [2], true]);
});

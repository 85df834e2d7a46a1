// Unit tests of group-rules.js: the panel offers what the server accepts.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  adminsWith, memberActions, messageRights, mutedUntil, nextMuteEnd, refusalLine, roleOf, runs, sendBlock,
} from "../../tidings/web/group-rules.js";

const NOW = Date.parse("2026-12-04T10:00:00.000Z");
const time = (/** @type {Date} */ d) => d.toISOString().slice(11, 16);

function group(extra = {}) {
  return {
    id: 1, name: "Team", owner_id: 1, member_ids: [1, 2, 3, 4], admin_ids: [2],
    announcement: null, muted_all: false, muted_ids: [], mutes: {}, dissolved: false,
    ...extra,
  };
}

test("roles: the owner, its admins, everyone else", () => {
  assert.equal(roleOf(group(), 1), "owner");
  assert.equal(roleOf(group(), 2), "admin");
  assert.equal(roleOf(group(), 3), "member");
  assert.equal(roleOf(group({ admin_ids: undefined }), 2), "member"); // a v1 group object
  assert.ok(runs(group(), 1) && runs(group(), 2) && !runs(group(), 3));
  assert.ok(!runs(group({ dissolved: true }), 1));
});

test("a mute holds until its time, then is gone", () => {
  const muted = group({ mutes: { 3: "2026-12-04T10:10:00.000Z" }, muted_ids: [3] });
  assert.equal(mutedUntil(muted, 3, NOW), Date.parse("2026-12-04T10:10:00.000Z"));
  assert.equal(mutedUntil(muted, 3, NOW + 11 * 60_000), 0);
  assert.equal(mutedUntil(muted, 4, NOW), 0);
});

test("the composer is closed for a dissolved group, a muted member, and plain members under mute-all", () => {
  assert.equal(sendBlock(group(), 3, NOW, time), null);
  assert.match(sendBlock(group({ dissolved: true }), 1, NOW, time) || "", /dissolved/);
  const muted = group({ mutes: { 3: "2026-12-04T10:10:00.000Z" } });
  assert.equal(sendBlock(muted, 3, NOW, time), "You are muted in this group until 10:10.");
  assert.equal(sendBlock(muted, 3, NOW + 11 * 60_000, time), null);
  const all = group({ muted_all: true });
  assert.match(sendBlock(all, 3, NOW, time) || "", /Only the owner and admins/);
  assert.equal(sendBlock(all, 2, NOW, time), null);
  assert.equal(sendBlock(all, 1, NOW, time), null);
});

test("who may do what to whom", () => {
  const g = group();
  // The owner: everything to anyone else.
  assert.deepEqual(memberActions(g, 1, 2, NOW), ["mute", "unadmin", "make-owner", "remove"]);
  assert.deepEqual(memberActions(g, 1, 3, NOW), ["mute", "make-admin", "make-owner", "remove"]);
  // An admin: plain members only, and no roles.
  assert.deepEqual(memberActions(g, 2, 3, NOW), ["mute", "remove"]);
  assert.deepEqual(memberActions(g, 2, 1, NOW), []);
  assert.deepEqual(memberActions(group({ admin_ids: [2, 4] }), 2, 4, NOW), []);
  // A member: nothing; nobody acts on itself; nothing in a dissolved group.
  assert.deepEqual(memberActions(g, 3, 4, NOW), []);
  assert.deepEqual(memberActions(g, 1, 1, NOW), []);
  assert.deepEqual(memberActions(group({ dissolved: true }), 1, 3, NOW), []);
  // A muted member is offered an unmute instead.
  const muted = group({ mutes: { 3: "2026-12-04T10:10:00.000Z" } });
  assert.deepEqual(memberActions(muted, 2, 3, NOW), ["unmute", "remove"]);
});

test("the admins after a change", () => {
  assert.deepEqual(adminsWith(group(), 3, true), [2, 3]);
  assert.deepEqual(adminsWith(group(), 2, false), []);
  assert.deepEqual(adminsWith(group(), 2, true), [2]);
});

test("the next mute to run out, so the panel and composer look again then", () => {
  const mutes = { 3: "2026-12-04T10:10:00.000Z", 4: "2026-12-04T10:05:00.000Z", 2: "2026-12-04T09:00:00.000Z" };
  const g = group({ mutes });
  assert.equal(nextMuteEnd(g, NOW), Date.parse("2026-12-04T10:05:00.000Z"));
  assert.equal(nextMuteEnd(g, Date.parse("2026-12-04T10:06:00.000Z")), Date.parse("2026-12-04T10:10:00.000Z"));
  assert.equal(nextMuteEnd(g, Date.parse("2026-12-04T10:10:00.000Z")), 0);
  assert.equal(nextMuteEnd(group({ mutes: undefined }), NOW), 0); // a v1 group object
});

test("a refused send closes the composer with its reason until the group is read again", () => {
  assert.match(refusalLine("muted") || "", /you are muted/);
  assert.match(refusalLine("group_dissolved") || "", /dissolved/);
  assert.equal(refusalLine("too_large"), null);
  assert.equal(refusalLine("not_member"), null);
});

test("what each may do to messages: write while the composer is open, recall until dissolved", () => {
  const g = group({ mutes: { 3: "2026-12-04T10:10:00.000Z" } });
  assert.deepEqual(messageRights(g, 1, NOW), { write: true, recall: true, runs: true });
  assert.deepEqual(messageRights(g, 2, NOW), { write: true, recall: true, runs: true });
  assert.deepEqual(messageRights(g, 3, NOW), { write: false, recall: true, runs: false });
  assert.deepEqual(messageRights(g, 4, NOW), { write: true, recall: true, runs: false });
  assert.deepEqual(messageRights(group({ muted_all: true }), 4, NOW).write, false);
  assert.deepEqual(messageRights(group({ muted_all: true }), 2, NOW).write, true);
  assert.deepEqual(messageRights(group({ dissolved: true }), 1, NOW),
    { write: false, recall: false, runs: false });
});

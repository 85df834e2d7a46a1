// @ts-check
// Who may do what in a group (PROTOCOL-v2 §6), as the server decides it, so
// the panel offers only what will be accepted and the composer says why it
// is closed. Pure: tested under node --test.

/**
 * @typedef {import("./types.js").Group} Group
 * @typedef {"owner" | "admin" | "member"} Role
 * @typedef {"mute" | "unmute" | "remove" | "make-admin" | "unadmin" | "make-owner"} MemberAction
 */

/** The mute choices offered, in seconds. */
export const MUTE_CHOICES = /** @type {const} */ ([
  [600, "10 minutes"],
  [3600, "1 hour"],
  [86400, "1 day"],
]);

/**
 * @param {Group} group
 * @param {number} user
 * @returns {Role}
 */
export function roleOf(group, user) {
  if (group.owner_id === user) return "owner";
  return (group.admin_ids || []).includes(user) ? "admin" : "member";
}

/** The owner and admins run the group: rename, announce, mute, add. */
export function runs(/** @type {Group} */ group, /** @type {number} */ user) {
  return !group.dissolved && roleOf(group, user) !== "member";
}

/**
 * Until when a member is muted (epoch ms), or 0.
 * @param {Group} group
 * @param {number} user
 * @param {number} now  epoch ms
 */
export function mutedUntil(group, user, now) {
  const until = (group.mutes || {})[String(user)];
  const at = until ? Date.parse(until) : 0;
  return at > now ? at : 0;
}

/**
 * Why this user cannot send here now, or null: dissolved, muted, or
 * everyone muted but the owner and admins.
 * @param {Group} group
 * @param {number} user
 * @param {number} now  epoch ms
 * @param {(d: Date) => string} time  "HH:MM"
 * @returns {string | null}
 */
export function sendBlock(group, user, now, time) {
  if (group.dissolved) return "This group was dissolved. You can read it, not write.";
  const until = mutedUntil(group, user, now);
  if (until) return `You are muted in this group until ${time(new Date(until))}.`;
  if (group.muted_all && roleOf(group, user) === "member") {
    return "Only the owner and admins can send while the group is muted.";
  }
  return null;
}

/**
 * The next moment a mute in this group runs out (epoch ms), or 0: the server
 * sends no notice then, so the client looks again at that time.
 * @param {Group} group
 * @param {number} now  epoch ms
 */
export function nextMuteEnd(group, now) {
  let next = 0;
  for (const until of Object.values(group.mutes || {})) {
    const at = Date.parse(until);
    if (at > now && (!next || at < next)) next = at;
  }
  return next;
}

/**
 * The composer's line after the server refused a send (403 ``muted`` or
 * ``group_dissolved``), until the group is fetched again; null for any other code.
 * @param {string} code
 * @returns {string | null}
 */
export function refusalLine(code) {
  if (code === "group_dissolved") return "This group was dissolved. You can read it, not write.";
  if (code === "muted") return "You cannot send in this group now: you are muted.";
  return null;
}

/**
 * What a user may do to the messages of a group now: write (send, and quote or
 * edit from the composer, closed by sendBlock), recall at all (not in a
 * dissolved group), and recall others' messages and @all (who runs it).
 * @param {Group} group
 * @param {number} user
 * @param {number} now  epoch ms
 * @returns {{write: boolean, recall: boolean, runs: boolean}}
 */
export function messageRights(group, user, now) {
  return {
    write: sendBlock(group, user, now, () => "") === null,
    recall: !group.dissolved,
    runs: runs(group, user),
  };
}

/**
 * What ``actor`` may do to member ``target`` (the server's rules).
 * @param {Group} group
 * @param {number} actor
 * @param {number} target
 * @param {number} now  epoch ms
 * @returns {MemberAction[]}
 */
export function memberActions(group, actor, target, now) {
  if (group.dissolved || actor === target || !group.member_ids.includes(target)) return [];
  const mine = roleOf(group, actor);
  const theirs = roleOf(group, target);
  if (mine === "member" || theirs === "owner") return [];
  if (mine === "admin" && theirs === "admin") return [];
  /** @type {MemberAction[]} */
  const actions = [mutedUntil(group, target, now) ? "unmute" : "mute"];
  if (mine === "owner") {
    actions.push(theirs === "admin" ? "unadmin" : "make-admin", "make-owner");
  }
  actions.push("remove");
  return actions;
}

/**
 * The admins after adding or removing one (the body of PUT …/admins).
 * @param {Group} group
 * @param {number} user
 * @param {boolean} admin
 */
export function adminsWith(group, user, admin) {
  const now = (group.admin_ids || []).filter((id) => id !== user);
  return admin ? [...now, user] : now;
}

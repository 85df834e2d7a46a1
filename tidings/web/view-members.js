// @ts-check
// A group's panel (PROTOCOL-v2 §6): its announcement; for the owner and admins
// its name, announcement and mute-all; who is in with their roles and mutes,
// and what the viewer may do to each (group-rules.js); leaving, dissolving.

import { ApiError } from "./api.js";
import { $, avatar, el } from "./dom.js";
import { lineTime, untilTime } from "./format.js";
import {
  MUTE_CHOICES, adminsWith, memberActions, mutedUntil, roleOf, runs,
} from "./group-rules.js";
import { api, dropConversation, loadGroup, resolveUser, userName } from "./people.js";
import { render } from "./render.js";
import { confirmDialog } from "./view-dialogs.js";
import { S, me } from "./state.js";

/** @typedef {import("./types.js").Group} Group */

export function renderMembers() {
  const entry = S.openId ? S.entries.get(S.openId) : undefined;
  const panel = $("members");
  if (!entry || entry.type !== "group" || entry.group_id === null) {
    panel.hidden = true;
    S.membersOpen = false;
    return;
  }
  const group = S.groups.get(entry.group_id);
  $("members-title").textContent = group ? `Members (${group.member_ids.length})` : "Members";
  const running = Boolean(group && runs(group, me().id));
  $("members-add").hidden = !running;
  renderGroupInfo(group);
  const now = Date.now();
  const items = (group ? group.member_ids : []).map((id) => {
    const item = el("li", "member");
    item.appendChild(avatar(`u${id}`, userName(id), "small"));
    // The name, and under it the tags: the row keeps room for the actions.
    const main = el("div", "member-main");
    main.appendChild(el("span", "member-name", userName(id)));
    const tags = el("div", "member-tags");
    const role = group ? roleOf(group, id) : "member";
    if (role === "owner") tags.appendChild(el("span", "tag", "Owner"));
    if (role === "admin") tags.appendChild(el("span", "tag admin", "Admin"));
    const until = group ? mutedUntil(group, id, now) : 0;
    if (until) {
      tags.appendChild(el("span", "tag muted", `Muted until ${untilTime(new Date(until))}`));
    }
    if (id === me().id) tags.appendChild(el("span", "tag you", "You"));
    if (tags.childElementCount) main.appendChild(tags);
    item.appendChild(main);
    const actions = group ? memberActions(group, me().id, id, now) : [];
    if (group && actions.some((a) => a !== "remove")) item.appendChild(actionsMenu(group, id, actions));
    if (group && actions.includes("remove")) {
      const remove = el("button", "icon remove", "×");
      remove.type = "button";
      remove.title = `Remove ${userName(id)}`;
      remove.setAttribute("aria-label", `Remove ${userName(id)}`);
      remove.addEventListener("click", async () => {
        const sure = await confirmDialog(
          `Remove ${userName(id)} from “${entry.title}”? They will no longer see new messages.`,
          "Remove");
        if (sure) removeMember(group.id, id);
      });
      item.appendChild(remove);
    }
    return item;
  });
  $("members-list").replaceChildren(...items);
}

/** @param {Event} event */
export async function addMember(event) {
  event.preventDefault();
  const entry = S.openId ? S.entries.get(S.openId) : undefined;
  const input = $("members-add-input");
  $("members-error").textContent = "";
  if (!entry || !input.value.trim()) return;
  try {
    const found = await resolveUser(input.value);
    const group = await api("POST", `/groups/${entry.group_id}/members`, { user_id: found.id });
    S.groups.set(group.id, group);
    input.value = "";
    render({ pane: true, members: true });
  } catch (failure) {
    $("members-error").textContent = failure instanceof Error ? failure.message : String(failure);
  }
}

/**
 * @param {number} groupId
 * @param {number} userId
 */
export async function removeMember(groupId, userId) {
  $("members-error").textContent = "";
  try {
    await api("DELETE", `/groups/${groupId}/members/${userId}`);
    if (userId === me().id) {
      dropConversation(`g:${groupId}`, false);
      return;
    }
    await loadGroup(groupId);
  } catch (failure) {
    $("members-error").textContent = failure instanceof ApiError ? failure.message : String(failure);
  }
}

/** @type {ReturnType<typeof setTimeout> | 0} */
let leaveArmed = 0;

/** Leaving takes two clicks within 4 s. */
export function leaveGroup() {
  const entry = S.openId ? S.entries.get(S.openId) : undefined;
  const button = $("btn-leave");
  if (!entry || entry.type !== "group" || entry.group_id === null) return;
  if (!leaveArmed) {
    button.textContent = "Click again to leave";
    leaveArmed = setTimeout(() => {
      leaveArmed = 0;
      button.textContent = "Leave group";
    }, 4000);
    return;
  }
  clearTimeout(leaveArmed);
  leaveArmed = 0;
  button.textContent = "Leave group";
  removeMember(entry.group_id, me().id);
}

export function toggleMembers() {
  S.membersOpen = !S.membersOpen;
  $("members").hidden = !S.membersOpen;
  if (S.membersOpen) {
    $("members-error").textContent = "";
    const entry = S.openId ? S.entries.get(S.openId) : undefined;
    if (entry && entry.group_id) loadGroup(entry.group_id);
    renderMembers();
    $("btn-members-close").focus();
  } else {
    $("btn-members").focus();
  }
}

/**
 * The announcement for everyone; the settings form for who runs the group;
 * dissolving for its owner.
 * @param {Group | undefined} group
 */
function renderGroupInfo(group) {
  const box = $("group-announcement");
  const note = group && group.announcement;
  box.hidden = !note;
  if (note) {
    $("group-announcement-text").textContent = note.text;
    const by = note.by === null ? "" : `${userName(note.by)}, `;
    $("group-announcement-by").textContent = `${by}${lineTime(note.updated_at)}`;
  }
  const form = /** @type {HTMLFormElement} */ ($("group-settings"));
  const running = Boolean(group && runs(group, me().id));
  form.hidden = !running;
  if (group && running && !form.contains(document.activeElement)) {
    /** @type {HTMLInputElement} */ ($("group-rename")).value = group.name;
    /** @type {HTMLTextAreaElement} */ ($("group-announce")).value = note ? note.text : "";
    /** @type {HTMLInputElement} */ ($("group-mute-all")).checked = Boolean(group.muted_all);
  }
  $("btn-dissolve").hidden = !group || group.dissolved || roleOf(group, me().id) !== "owner";
}

/**
 * A member's actions for the viewer, as a list box: mute for a while,
 * unmute, make or unmake admin, hand the group over.
 * @param {Group} group
 * @param {number} id
 * @param {import("./group-rules.js").MemberAction[]} actions
 */
function actionsMenu(group, id, actions) {
  const select = /** @type {HTMLSelectElement} */ (el("select", "member-actions"));
  select.setAttribute("aria-label", `Actions for ${userName(id)}`);
  /** @param {string} value @param {string} label */
  const option = (value, label) => {
    const found = /** @type {HTMLOptionElement} */ (el("option", null, label));
    found.value = value;
    select.appendChild(found);
  };
  option("", "Manage…");
  for (const action of actions) {
    if (action === "mute") {
      for (const [seconds, label] of MUTE_CHOICES) option(`mute:${seconds}`, `Mute for ${label}`);
    } else if (action === "unmute") option("unmute", "Unmute");
    else if (action === "make-admin") option("make-admin", "Make admin");
    else if (action === "unadmin") option("unadmin", "Remove as admin");
    else if (action === "make-owner") option("make-owner", "Make owner");
  }
  select.addEventListener("change", () => {
    const chosen = select.value;
    select.value = "";
    if (chosen) memberAction(group, id, chosen);
  });
  return select;
}

/**
 * @param {Group} group
 * @param {number} id
 * @param {string} chosen
 */
async function memberAction(group, id, chosen) {
  const base = `/groups/${group.id}`;
  if (chosen === "make-owner") {
    const sure = await confirmDialog(
      `Make ${userName(id)} the owner of “${group.name}”? You will be a plain member.`,
      "Make owner");
    if (!sure) return;
  }
  await changeGroup(async () => {
    if (chosen.startsWith("mute:")) {
      return api("PUT", `${base}/mutes/${id}`, { seconds: Number(chosen.slice(5)) });
    }
    if (chosen === "unmute") return api("DELETE", `${base}/mutes/${id}`);
    if (chosen === "make-admin" || chosen === "unadmin") {
      return api("PUT", `${base}/admins`, { user_ids: adminsWith(group, id, chosen === "make-admin") });
    }
    return api("POST", `${base}/owner`, { user_id: id });
  });
}

/**
 * Run one change and keep the group it answers; its error in the panel.
 * @param {() => Promise<Group | null>} change
 */
async function changeGroup(change) {
  $("members-error").textContent = "";
  try {
    const group = await change();
    if (group) S.groups.set(group.id, group);
    render({ pane: true, members: true, list: true });
  } catch (failure) {
    $("members-error").textContent = failure instanceof Error ? failure.message : String(failure);
  }
}

/** @param {Event} event */
export async function saveGroupSettings(event) {
  event.preventDefault();
  const entry = S.openId ? S.entries.get(S.openId) : undefined;
  const group = entry && entry.group_id !== null ? S.groups.get(entry.group_id) : undefined;
  if (!entry || !group) return;
  const name = /** @type {HTMLInputElement} */ ($("group-rename")).value.trim();
  const text = /** @type {HTMLTextAreaElement} */ ($("group-announce")).value.trim();
  const mutedAll = /** @type {HTMLInputElement} */ ($("group-mute-all")).checked;
  /** @type {Record<string, unknown>} */
  const body = {};
  if (name !== group.name) body.name = name;
  if (text !== (group.announcement ? group.announcement.text : "")) body.announcement = text;
  if (mutedAll !== Boolean(group.muted_all)) body.muted_all = mutedAll;
  if (!Object.keys(body).length) return;
  await changeGroup(async () => {
    const changed = await api("PATCH", `/groups/${group.id}`, body);
    if (body.name !== undefined) entry.title = changed.name;
    return changed;
  });
  /** @type {HTMLElement | null} */ (document.activeElement)?.blur();
}

/** Dissolving: the owner confirms; the history stays, nobody can write. */
export async function dissolveGroup() {
  const entry = S.openId ? S.entries.get(S.openId) : undefined;
  const group = entry && entry.group_id !== null ? S.groups.get(entry.group_id) : undefined;
  if (!group) return;
  const sure = await confirmDialog(
    `Dissolve “${group.name}”? Everyone keeps its history, but nobody can write in it any more.`,
    "Dissolve");
  if (!sure) return;
  await changeGroup(async () => {
    await api("DELETE", `/groups/${group.id}`);
    return loadGroup(group.id);
  });
}

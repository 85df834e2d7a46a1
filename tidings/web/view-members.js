// @ts-check
// A group's members panel: who is in, the owner's add and remove, leaving.

import { ApiError } from "./api.js";
import { $, avatar, el } from "./dom.js";
import { api, dropConversation, loadGroup, resolveUser, userName } from "./people.js";
import { render } from "./render.js";
import { confirmDialog } from "./view-dialogs.js";
import { S, me } from "./state.js";

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
  const owner = Boolean(group && group.owner_id === me().id);
  $("members-add").hidden = !owner;
  const items = (group ? group.member_ids : []).map((id) => {
    const item = el("li", "member");
    item.appendChild(avatar(`u${id}`, userName(id), "small"));
    item.appendChild(el("span", "member-name", userName(id)));
    if (group && group.owner_id === id) item.appendChild(el("span", "tag", "Owner"));
    if (id === me().id) item.appendChild(el("span", "tag you", "You"));
    if (group && owner && id !== me().id) {
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

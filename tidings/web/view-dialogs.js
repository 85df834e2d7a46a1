// @ts-check
// The "new chat" and "new group" dialogs.

import { ApiError } from "./api.js";
import { $ } from "./dom.js";
import { privateId } from "./format.js";
import { openConversation } from "./nav.js";
import { api, fetchEntry, resolveUser } from "./people.js";
import { S, me } from "./state.js";

/**
 * Ask before something that cannot be undone: true when confirmed.
 * @param {string} text
 * @param {string} action  the confirming button's label
 * @returns {Promise<boolean>}
 */
export function confirmDialog(text, action) {
  const dialog = $("dlg-confirm");
  $("dlg-confirm-text").textContent = text;
  $("dlg-confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  $("dlg-confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** @param {unknown} failure */
const messageOf = (failure) => (failure instanceof Error ? failure.message : String(failure));

/** @param {Event} event */
export async function startPrivateChat(event) {
  event.preventDefault();
  const error = $("chat-error");
  error.textContent = "";
  try {
    const peer = await resolveUser($("chat-user").value);
    if (peer.id === me().id) {
      throw new ApiError(422, "bad_request", "That is you. Pick someone else.");
    }
    const id = privateId(me().id, peer.id);
    if (!S.entries.has(id)) {
      // Not on the server until its first message: a local entry until then.
      S.entries.set(id, { id, type: "private", title: peer.display_name, peer_id: peer.id,
        group_id: null, unread: 0, last_seq: 0, read_seq: 0, last_message: null,
        updated_at: new Date().toISOString(), local: true, clock: 0 });
    }
    $("dlg-chat").close();
    openConversation(id);
  } catch (failure) {
    error.textContent = messageOf(failure);
  }
}

/** @param {Event} event */
export async function createGroup(event) {
  event.preventDefault();
  const error = $("group-error");
  error.textContent = "";
  const name = $("group-name").value.trim();
  if (!name) {
    error.textContent = "Give the group a name.";
    return;
  }
  try {
    const wanted = $("group-members").value.split(/[,\s]+/).filter(Boolean);
    /** @type {number[]} */
    const ids = [];
    for (const text of wanted) {
      const found = await resolveUser(text);
      if (found.id !== me().id && !ids.includes(found.id)) ids.push(found.id);
    }
    const group = await api("POST", "/groups", { name, member_ids: ids });
    S.groups.set(group.id, group);
    const id = `g:${group.id}`;
    if (!S.entries.has(id)) await fetchEntry(id);
    $("dlg-group").close();
    openConversation(id);
  } catch (failure) {
    error.textContent = messageOf(failure);
  }
}

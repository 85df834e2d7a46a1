// @ts-check
// Which conversation is open: the URL's #/{id}, kept in step with the pane.

import { $ } from "./dom.js";
import { loadLatest } from "./history.js";
import { markOpenRead, pushDraft } from "./live.js";
import { fetchEntry, loadGroup, user } from "./people.js";
import { render } from "./render.js";
import { S } from "./state.js";
import { sizeComposer } from "./view-chat.js";

export function routeId() {
  const match = /^#\/([pg]:[0-9-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

/** @param {string} id */
export function openConversation(id) {
  if (routeId() !== id) location.hash = `#/${id}`;
  else showConversation(id);
}

/** @param {string} id */
export function showConversation(id) {
  const changed = S.openId !== id;
  if (changed && S.openId) pushDraft(S.openId); // left with text typed: the other devices get it
  if (S.jump && S.jump.id !== id) S.jump = null;
  S.openId = id;
  const entry = S.entries.get(id);
  if (!entry) return;
  if (changed) {
    S.newLine = entry.unread > 0 ? { id, after: entry.read_seq } : null;
    S.membersOpen = false;
    $("members").hidden = true;
    $("compose").value = S.drafts[id] || "";
    sizeComposer();
  }
  if (entry.type === "group" && entry.group_id !== null) loadGroup(entry.group_id);
  else if (entry.peer_id !== null) user(entry.peer_id);
  render({ list: true, pane: true, scroll: S.newLine ? "unread" : "bottom" });
  loadLatest(id);
  markOpenRead();
  const active = /** @type {any} */ (document.activeElement);
  if (changed && window.matchMedia("(min-width: 721px)").matches) {
    $("compose").focus();
  } else if (changed && active && active.closest(".sidebar")) {
    // Phone: the list goes away; keep the keyboard's place without popping one up.
    render({ focus: "messages" });
  }
}

export function closeConversation() {
  if (S.openId) pushDraft(S.openId);
  S.openId = null;
  S.jump = null;
  S.membersOpen = false;
  $("members").hidden = true;
  if (routeId()) history.replaceState(null, "", location.pathname);
  render({ list: true, pane: true });
}

export async function openFromRoute() {
  const id = routeId();
  if (!id) {
    if (S.openId) closeConversation();
    return;
  }
  if (!S.entries.has(id)) {
    const entry = await fetchEntry(id);
    if (!entry) {
      closeConversation();
      return;
    }
  }
  showConversation(id);
}
